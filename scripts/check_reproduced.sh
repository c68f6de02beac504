#!/usr/bin/env bash
# The reproducibility gate, run after `dvc repro` (scripts/pipeline.sh) by .ci/run and the GitHub
# workflow: the workspace must be what dvc.lock describes (`dvc status`), and dvc.lock, metrics/,
# plots/ and reports/ bit for bit what is committed (git). Exact, with no tolerance: the pinned
# BLAS kernels (stages/__init__.py) give the same bits on every x86-64 CI runner, and a rebuild
# that differs means the committed numbers are not what the code produces.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
paths=(dvc.lock metrics plots reports)
commit=$(git rev-parse --short HEAD)

report() { # VERDICT MESSAGE: a line (a GitHub annotation on Actions) and the job summary's section
  local level=notice
  [ "$1" = exact ] || level=error
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::$level title=Reproducibility gate::$2"; else echo "$1: $2"; fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then printf '### Reproducibility gate: %s\n\n%s\n' "$1" "$2" >> "$GITHUB_STEP_SUMMARY"; fi
}

if ! dvc status --quiet; then
  dvc status
  report FAILED "the workspace is not what dvc.lock describes: run \`dvc repro\` (scripts/pipeline.sh) before this gate"
  exit 1
fi
changed=$(git status --porcelain --untracked-files=all -- "${paths[@]}")
if [ -n "$changed" ]; then
  echo "$changed"
  git --no-pager diff --stat -- "${paths[@]}"
  dvc metrics diff HEAD --targets metrics --md --precision 17 || true  # every model's figures, the details' too
  git --no-pager diff -- "${paths[@]}"
  report FAILED "\`dvc repro\` does not give what $commit commits in ${paths[*]} (diff above): run \`dvc repro\` and commit them, or find what made the result change"
  exit 1
fi
report exact "\`dvc repro\` rebuilt ${paths[*]} bit for bit as committed in $commit"
