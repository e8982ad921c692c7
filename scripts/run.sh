#!/usr/bin/env bash
# The main job on an embedded default: set up, then run the scaled-down seed-003 test matrix
# against an embedded Redis and the reference worker, and write the report (capacity bench).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/capacity bench "$@"
