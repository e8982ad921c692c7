#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install capacity into it; EXTRAS=test adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's notes about unreachable extra index folders on some machines are noise, not errors
quiet() { grep -v -e "^WARNING: Location" -e "^ *$" || true; }
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | quiet
spec="."
[ -n "${EXTRAS:-}" ] && spec=".[${EXTRAS}]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec" 2>&1 | quiet
.venv/bin/python -c "import capacity" # fail loudly if the install did not work
