#!/usr/bin/env bash
# Set up, then rebuild every artifact from params.yaml (`dvc repro`), and print the results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
dvc repro "$@"
echo
python scripts/results.py
