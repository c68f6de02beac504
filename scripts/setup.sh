#!/usr/bin/env bash
# Create .venv (if missing) and install the exact pins of requirements.txt into it.
# Uses $PYTHON (default python3.11, else python3); must be Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"error: .venv has Python {sys.version.split()[0]}; this project pins Python 3.11 (set PYTHON=python3.11)")
PY
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
