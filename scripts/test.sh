#!/usr/bin/env bash
# The whole test suite: set up with the test tools, then lint, type-check and test (2 workers).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/setup.sh
bash scripts/browser.sh
bash scripts/rabbitmq.sh
.venv/bin/ruff check capacity tests benchmarks load_tests
.venv/bin/mypy
# the docs: a broken link or anchor fails (tests/docs runs every command they show)
docs_log=$(mktemp)
if ! .venv/bin/mkdocs build --strict --site-dir "$(mktemp -d)" >"$docs_log" 2>&1; then
  cat "$docs_log" >&2
  exit 1
fi
# the parallel phase, then the serial one: the interference tests measure what else takes the CPU,
# so nothing of ours may run beside them (pytest's exit 5 is "no test selected" for a narrowed run)
.venv/bin/pytest -n 2 -q -m "not serial" "$@" || [ $? -eq 5 ]
.venv/bin/pytest -q -m serial "$@" || [ $? -eq 5 ]
