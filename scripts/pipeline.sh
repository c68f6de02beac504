#!/usr/bin/env bash
# Set up, then rebuild every artifact from params.yaml (`dvc repro`), and print the results.
# With a DVC remote named by the environment (DVC_REMOTE_URL and credentials, as CI has them:
# docs/remote.md), unchanged stages are restored from it instead (`dvc repro --pull`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
bash scripts/ci_remote.sh repro "$@"
echo
python scripts/results.py
