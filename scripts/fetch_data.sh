#!/usr/bin/env bash
# Set up, then put California Housing in scikit-learn's data folder (scripts/fetch_data.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python scripts/fetch_data.py "$@"
