#!/usr/bin/env bash
# The main job on an embedded default: set up, then size a worker (seed 002's medium instance).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/capacity recommend --instance medium "$@"
