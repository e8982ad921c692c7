#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install capacity (distribution worker-capacity) into it with every
# extra; EXTRAS=test adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's output (notes about extra index folders, setuptools' editable-install banner) is shown
# only when pip fails
log=$(mktemp)
pip_quietly() {
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
}
pip_quietly --upgrade pip
spec=".[all]"
[ -n "${EXTRAS:-}" ] && spec=".[all,${EXTRAS}]"
pip_quietly -e "$spec"
rm -f "$log"
.venv/bin/python -c "import capacity" # fail loudly if the install did not work
# The reference BullMQ worker (Node): its packages from the lockfile, where Node and npm are present
if command -v npm >/dev/null; then
  if ! npm ci --prefix capacity/workerside/node --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
else
  echo "scripts/setup.sh: npm not found: the BullMQ worker (capacity/workerside/node) is not installed" >&2
fi
