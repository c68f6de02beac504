#!/usr/bin/env bash
# CI and the DVC remote (docs/remote.md). The GitHub workflow calls it after scripts/setup.sh;
# tests/test_remote.py runs it against moto's S3 server.
#   bash scripts/ci_remote.sh repro [OPTIONS]
#                                     remote configured: `dvc repro --pull` (every stage whose
#                                     dvc.lock entry is unchanged is restored from the remote, not
#                                     run); otherwise `dvc repro`, as without a remote, with a
#                                     notice in CI. OPTIONS go to dvc repro. scripts/pipeline.sh
#                                     runs this, so the workflow and .ci/run reach it through it.
#   bash scripts/ci_remote.sh push    remote configured: `dvc push --run-cache` (the outputs, and
#                                     the runs of the stages this job ran); otherwise a notice.
#                                     The workflow runs it on a push to the default branch only,
#                                     after the reproducibility gate; in a pull_request run it
#                                     refuses anyway (defence in depth).
# Configured means DVC_REMOTE_URL is set (a workflow variable) and, for an s3:// URL, credentials
# are in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from secrets, or from an OIDC
# role). Pull requests from forks get no secrets, so they run as without a remote.
# DVC_REMOTE_ENDPOINT (S3-compatible stores) and DVC_REMOTE_REGION are optional. The remote goes
# into .dvc/config.local (git-ignored): nothing tracked changes, and no credential is written or
# printed by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
[ ! -x .venv/bin/python ] || source scripts/env.sh

notice() { # MESSAGE: a GitHub notice on Actions (and in the job summary), a plain line elsewhere
  if [ "${GITHUB_ACTIONS:-}" = true ]; then echo "::notice title=DVC remote::$1"; else echo "notice: $1"; fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then echo "DVC remote: $1" >> "$GITHUB_STEP_SUMMARY"; fi
}

# Prints why the remote is not usable, or nothing when it is.
why_not_configured() {
  if [ -z "${DVC_REMOTE_URL:-}" ]; then
    echo "no DVC remote configured (set the variable DVC_REMOTE_URL, and for S3 the secrets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; docs/remote.md, CI)"
  elif [[ $DVC_REMOTE_URL == s3://* ]] && [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then
    echo "DVC_REMOTE_URL is set but no S3 credentials are (pull requests from forks get no secrets)"
  fi
}

configure() {
  local args=("$DVC_REMOTE_URL" --local)
  [ -z "${DVC_REMOTE_ENDPOINT:-}" ] || args+=(--endpoint "$DVC_REMOTE_ENDPOINT")
  [ -z "${DVC_REMOTE_REGION:-}" ] || args+=(--region "$DVC_REMOTE_REGION")
  bash scripts/remote.sh "${args[@]}"
  if [ -n "${DVC_REMOTE_ENDPOINT:-}" ]; then
    # S3-compatible stores may reject the CRC32 checksums newer botocore sends by default (DVC
    # issue 10695); send checksums only where S3 requires them. A value set by the caller wins.
    export AWS_REQUEST_CHECKSUM_CALCULATION=${AWS_REQUEST_CHECKSUM_CALCULATION:-when_required}
    export AWS_RESPONSE_CHECKSUM_VALIDATION=${AWS_RESPONSE_CHECKSUM_VALIDATION:-when_required}
  fi
}

command=${1:-}
case "$#:$command" in
  *:repro | 1:push) shift ;;
  *) echo "usage: bash scripts/ci_remote.sh repro|push" >&2; exit 2 ;;
esac
reason=$(why_not_configured)
if [ "$command" = push ] && [[ ${GITHUB_EVENT_NAME:-} == pull_request* ]]; then
  reason="a pull request never pushes to the DVC remote"
fi
if [ -n "$reason" ]; then
  if [ "$command" = repro ]; then
    # Said in CI, where a remote is expected; a user's own `scripts/pipeline.sh` just runs.
    if [ "${GITHUB_ACTIONS:-}" = true ] || [ "${CI:-}" = true ]; then notice "$reason: every stage runs (dvc repro)"; fi
    dvc repro "$@"
  else
    notice "$reason: nothing pushed"
  fi
  exit 0
fi

configure
if [ "$command" = repro ]; then
  dvc repro --pull "$@"
else
  dvc push --run-cache
fi
