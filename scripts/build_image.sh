#!/usr/bin/env bash
# Build the predictor image from a checkout after `dvc repro`: the one build of the workflow's image
# job and of .ci/run. Its version, revision, source and tags come from scripts/image_metadata.py,
# for the ref in GITHUB_REF (a runner sets it; .ci/run too): tagged TAG and every tag of that ref;
# the Dockerfile turns the build args into its OCI labels and its environment. A release tag that
# is not pyproject.toml's version stops here, before the build, in one line. On another Python 3.11
# base when PYTHON_IMAGE is set (the Dockerfile's default otherwise: what GitHub builds). Prints
# the image ID, the build time and the image's size; on a failed build, the build's last lines.
# `--network host` because some engines have no bridge network (the build itself needs only the
# package index, for `pip install`). No provenance or SBOM attestation (BuildKit adds one by
# default when it can store it): the pushed manifest must be the image that was tested.
# Usage: scripts/build_image.sh TAG [CHECKOUT]    (CHECKOUT: default, this repository)
set -euo pipefail
tag=${1:?usage: scripts/build_image.sh TAG [CHECKOUT]}
scripts=$(cd "$(dirname "$0")" && pwd)
cd "${2:-$scripts/..}"
metadata=$("${PYTHON:-python3}" "$scripts/image_metadata.py" "$PWD") # first: a release tag that is not the version stops here
# The files the build context lets in (.dockerignore is an allowlist: its `!` lines), the artifacts of
# `dvc repro` among them: each must be there.
while IFS= read -r artifact; do
  [ -f "$artifact" ] || { echo "error: $PWD/$artifact is missing: run \`dvc repro\` before building the image" >&2; exit 2; }
done < <(sed -n 's/^!\(.*[^/]\)$/\1/p' .dockerignore)
field() { sed -n "s/^$1=//p" <<<"$metadata"; }
args=(--network host --tag "$tag")
for extra in $(field tags); do
  args+=(--tag "$extra")
done
for name in version revision source; do
  args+=(--build-arg "${name^^}=$(field "$name")")
done
if [ -n "${PYTHON_IMAGE:-}" ]; then
  args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s%N)
if ! BUILDX_NO_DEFAULT_ATTESTATIONS=1 docker build "${args[@]}" . >"$log" 2>&1; then
  echo "error: docker build of $tag failed; its last lines:" >&2
  tail -n 15 "$log" >&2
  exit 1
fi
seconds=$(( ($(date +%s%N) - start) / 1000000 ))
id=$(docker image inspect --format '{{.Id}}' "$tag")
size=$(docker image inspect --format '{{.Size}}' "$tag")
printf 'built %s (%s) from %s in %d.%03d s, %s MiB, on %s; also tagged: %s\n' "$tag" "$id" "$(field revision)" \
  $((seconds / 1000)) $((seconds % 1000)) "$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')" \
  "${PYTHON_IMAGE:-the default base of the Dockerfile}" "$(field tags | sed 's/^$/none/')"
