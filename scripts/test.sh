#!/usr/bin/env bash
# The whole test suite: set up with the test tools, then lint, type-check and test (2 workers).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/setup.sh
bash scripts/browser.sh
.venv/bin/ruff check capacity tests benchmarks load_tests
.venv/bin/mypy
.venv/bin/pytest -n 2 -q "$@"
