#!/usr/bin/env bash
# Render every kustomization of deploy/ (the base and each overlay) with the image set by digest,
# as pushed: what the workflow keeps as its `manifests` artifact after scripts/push_image.sh, and
# what .ci/run renders with its local registry's digest. `kubectl kustomize` of a kustomization
# made beside a copy of deploy/ whose `images:` names the pushed digest: what `kustomize edit set
# image housing-mlops=IMAGE@sha256:...` writes, without the kustomize binary (kubectl has
# kustomize built in, on GitHub's runners and here). Every rendered container must then run
# exactly that image, or this fails naming the one that does not.
# Usage: scripts/render_manifests.sh IMAGE@sha256:DIGEST OUT_DIR   (writes OUT_DIR/<path>.yaml)
set -euo pipefail
usage="usage: scripts/render_manifests.sh IMAGE@sha256:DIGEST OUT_DIR"
reference=${1:?$usage}
out=${2:?$usage}
if [[ ! "$reference" =~ ^([^@[:space:]]+)@(sha256:[0-9a-f]{64})$ ]]; then
  echo "error: '$reference' is not an image by digest (IMAGE@sha256:<64 hex digits>)" >&2
  exit 2
fi
name=${BASH_REMATCH[1]} digest=${BASH_REMATCH[2]}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R deploy "$work/deploy"
mkdir -p "$out"
mapfile -t kustomizations < <(cd deploy && find . -name kustomization.yaml -printf '%h\n' | sed 's|^\./||' | sort)
if [ "${#kustomizations[@]}" -eq 0 ]; then
  echo "error: no kustomization.yaml under deploy/" >&2
  exit 2
fi
for dir in "${kustomizations[@]}"; do
  flat=${dir//\//-}
  wrapper="$work/set-image-$flat" # beside the copy: kustomize takes only relative paths
  mkdir "$wrapper"
  cat >"$wrapper/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../deploy/$dir
images:
  - name: housing-mlops
    newName: $name
    digest: $digest
EOF
  target="$out/$flat.yaml"
  kubectl kustomize "$wrapper" >"$target"
  # every image of the rendered objects, wherever it stands (a Deployment's containers, an InferenceService's)
  others=$(grep -E '^[[:space:]]*(- )?image:' "$target" | sed -E 's/^[[:space:]]*(- )?image:[[:space:]]*//' | grep -vxF "$reference" || true)
  if [ -n "$others" ]; then
    echo "error: deploy/$dir renders an image other than $reference: $(echo "$others" | head -n 1)" >&2
    exit 1
  fi
  grep -qxE '[[:space:]]*(- )?image: '"${reference//./\\.}" "$target" || {
    echo "error: deploy/$dir renders no container running $reference" >&2
    exit 1
  }
  echo "rendered deploy/$dir with $reference: $target" >&2
done
