#!/usr/bin/env bash
# What a change does to the params and metrics, as Markdown on stdout: the committed HEAD against
# BASE (a git revision, e.g. origin/main). The GitHub workflow appends it to a pull request's job
# summary. Both sides are read from git (params.yaml, and metrics/ is kept in git with
# cache: false), so it needs no `dvc pull` and no `dvc repro`: it shows what the change commits,
# and the pipeline job's reproducibility gate proves that `dvc repro` gives those numbers.
# Usage: scripts/pr_report.sh BASE [LABEL]   (LABEL names BASE in the heading; default BASE)
# Needs dvc from the project's venv: run scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/pr_report.sh BASE [LABEL]   e.g. scripts/pr_report.sh origin/main" >&2
  exit 2
fi
label=${2:-$1}
if ! base=$(git rev-parse --verify --quiet "$1^{commit}"); then
  echo "error: '$1' is not a commit in this clone: fetch it first (git fetch origin BRANCH, or check out with fetch-depth: 0)" >&2
  exit 2
fi
head=$(git rev-parse HEAD)
status=0

# section TITLE WHAT COMMAND...: the command's Markdown table, its columns named by LABEL and
# "this change" instead of commit hashes, or a line saying that nothing changed.
section() {
  local title=$1 what=$2 output
  shift 2
  printf '### %s\n\n' "$title"
  if ! output=$("$@" 2>&1); then
    printf '`%s` failed:\n\n```\n%s\n```\n\n' "$*" "$output"
    status=1
  elif [ "$(printf '%s\n' "$output" | grep -c '^|')" -le 2 ]; then  # a header and no row
    printf 'No %s changed.\n\n' "$what"
  else
    local header=${output%%$'\n'*}
    header=${header/"$base"/"$label"}
    printf '%s\n%s\n\n' "${header/"$head"/"this change"}" "${output#*$'\n'}"
  fi
}

printf '## Params and metrics: %s → this change\n\n' "$label"
printf 'Committed values of `%s` (%s, the base) against this change (%s): only what differs is listed.\n' \
  "$label" "$(git rev-parse --short "$base")" "$(git rev-parse --short "$head")"
printf 'Change = this change − base. The pipeline job checks that `dvc repro` reproduces these numbers.\n\n'
section "Params (params.yaml)" "param" dvc params diff "$base" "$head" --md
# Every figure that changed, in every file of metrics/: each model's and the fit's (what `dvc metrics
# diff` lists), and the details saturation.json and sweep.json (plots to DVC, for the run-cache: see
# dvc.yaml).
section "Metrics" "metric" dvc metrics diff "$base" "$head" --targets metrics --md --precision 17
exit "$status"
