#!/usr/bin/env bash
# The reproducibility gate: run after `dvc repro` (scripts/pipeline.sh), by .ci/run and the GitHub
# workflow. The committed dvc.lock, metrics/, plots/ and reports/ (everything kept in git) must be what the pipeline just rebuilt.
#   1. `dvc status` must be clean: every output is the one dvc.lock describes (repro did run).
#   2. Exact: git sees no change in dvc.lock, metrics/ or reports/: pass.
#   3. Otherwise print the difference (git diff, dvc metrics diff) and run the tolerance check,
#      scripts/compare_reproduced.py: pass with a warning when the only differences are the hashes
#      of produced files in dvc.lock and floats within rel 1e-9 / abs 1e-12 (another CPU's BLAS
#      kernels); fail on anything else. README "CI" states the policy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
paths=(dvc.lock metrics plots reports)
commit=$(git rev-parse --short HEAD)

annotate() { # LEVEL MESSAGE: a GitHub annotation on Actions, a plain line elsewhere
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::$1 title=Reproducibility gate::$2"; else echo "$1: $2"; fi
}
summary() { # Markdown on stdin, appended to the job summary on Actions
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat >> "$GITHUB_STEP_SUMMARY"; else cat > /dev/null; fi
}

changed=$(git status --porcelain --untracked-files=all -- "${paths[@]}")
if ! dvc status --quiet; then
  dvc status
  [ -z "$changed" ] || { echo "$changed"; git --no-pager diff -- "${paths[@]}"; }
  annotate error "the workspace is not what dvc.lock describes: run \`dvc repro\` (scripts/pipeline.sh) before this gate"
  printf '### Reproducibility gate: FAILED\n\n`dvc status` is not clean: the outputs are not what dvc.lock describes.\n' | summary
  exit 1
fi

if [ -z "$changed" ]; then
  echo "reproduced exactly: dvc.lock, metrics/, plots/ and reports/ are bit for bit those of $commit"
  printf '### Reproducibility gate: exact\n\n`dvc repro` rebuilt dvc.lock, metrics/, plots/ and reports/ bit for bit as committed in %s.\n' "$commit" | summary
  exit 0
fi

echo "the rebuild differs from $commit:"
echo "$changed"
echo "--- git diff"
git --no-pager diff -- "${paths[@]}"
echo "--- dvc metrics diff HEAD (HEAD: committed, workspace: rebuilt)"
metrics_diff=$(dvc metrics diff HEAD --md --precision 17 2>&1) || true
echo "${metrics_diff:-(no declared metric differs)}"
echo "--- tolerance check"
if python scripts/compare_reproduced.py HEAD; then
  annotate warning "reproduced within tolerance, not bit for bit: floats differ from $commit within rel 1e-9 / abs 1e-12 (see the log); commit numbers made with the pinned BLAS kernels (README, CI) to make it exact"
  verdict="within tolerance (not bit for bit)"
  status=0
else
  annotate error "not reproduced: dvc repro does not give the dvc.lock and metrics committed in $commit (diff above); run \`dvc repro\` and commit dvc.lock, metrics/ and reports/, or find what made the result change"
  verdict="FAILED"
  status=1
fi
{
  printf '### Reproducibility gate: %s\n\nChanged after `dvc repro` on %s:\n\n```\n%s\n```\n\n' "$verdict" "$commit" "$changed"
  printf '%s\n' "${metrics_diff:-No declared metric differs.}"
} | summary
exit "$status"
