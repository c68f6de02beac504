#!/usr/bin/env bash
# Build the predictor image from a checkout after `dvc repro`, with the build args the workflow's
# image job gives docker/build-push-action: REVISION the checkout's commit, VERSION pyproject.toml's,
# SOURCE its origin. On another Python 3.11 base when PYTHON_IMAGE is set (the Dockerfile's default
# otherwise: what GitHub builds). Prints the image ID, the build time and the image's size.
# Used by .ci/run and tests/test_image.py; `--network host` because some engines have no bridge
# network (the build itself needs only the package index, for `pip install`).
# Usage: scripts/build_image.sh TAG [CHECKOUT]    (CHECKOUT: default, this repository)
set -euo pipefail
tag=${1:?usage: scripts/build_image.sh TAG [CHECKOUT]}
cd "${2:-$(dirname "$0")/..}"
for artifact in models/float.safetensors models/q8.safetensors models/q16.safetensors models/q8int.safetensors \
  models/selfcheck.csv metrics/float.json metrics/q8.json metrics/q16.json metrics/q8int.json; do
  [ -f "$artifact" ] || { echo "error: $PWD/$artifact is missing: run \`dvc repro\` before building the image" >&2; exit 2; }
done
python=${PYTHON:-python3}
revision=$(git rev-parse HEAD)
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
source=$(git remote get-url origin 2>/dev/null || echo unknown)
args=(--network host --tag "$tag" --build-arg "REVISION=$revision" --build-arg "VERSION=$version" --build-arg "SOURCE=$source")
if [ -n "${PYTHON_IMAGE:-}" ]; then
  args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
fi
start=$(date +%s%N)
docker build "${args[@]}" . >&2
seconds=$(( ($(date +%s%N) - start) / 1000000 ))
id=$(docker image inspect --format '{{.Id}}' "$tag")
size=$(docker image inspect --format '{{.Size}}' "$tag")
base=${PYTHON_IMAGE:-the default base of the Dockerfile}
printf 'built %s (%s) from %s in %d.%03d s, %s MiB, on %s\n' "$tag" "$id" "$revision" $((seconds / 1000)) $((seconds % 1000)) \
  "$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')" "$base"
