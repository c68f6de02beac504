#!/usr/bin/env bash
# Render deploy/'s kustomizations with the image set by digest, as CI pushed it: what the workflow
# keeps as an artifact, and what `kubectl apply -f` takes. The checkout is not modified: in a copy of
# deploy/, the base's kustomization gets the `images:` entry `kustomize edit set image
# housing-mlops=IMAGE@sha256:...` writes (docs/deploy.md); every overlay builds on the base.
# Needs kubectl only (`kubectl kustomize`).
# Usage: scripts/render_manifests.sh REGISTRY/NAME@sha256:DIGEST OUT_DIR   (writes OUT_DIR/base.yaml, OUT_DIR/kserve.yaml)
set -euo pipefail
image=${1:?usage: scripts/render_manifests.sh REGISTRY/NAME@sha256:DIGEST OUT_DIR}
out=${2:?usage: scripts/render_manifests.sh REGISTRY/NAME@sha256:DIGEST OUT_DIR}
if ! [[ $image =~ ^([^@[:space:]]+)@(sha256:[0-9a-f]{64})$ ]]; then
  echo "error: $image is not an image by digest (REGISTRY/NAME@sha256:<64 hex digits>): a tag can move, a digest cannot" >&2
  exit 2
fi
name=${BASH_REMATCH[1]} digest=${BASH_REMATCH[2]}
deploy=$(cd "$(dirname "$0")/../deploy" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$deploy" "$work/deploy"
if grep -q '^images:' "$work/deploy/base/kustomization.yaml"; then
  echo "error: deploy/base/kustomization.yaml already sets images: render from a checkout without it" >&2
  exit 2
fi
printf 'images:\n  - name: housing-mlops\n    newName: %s\n    digest: %s\n' "$name" "$digest" >> "$work/deploy/base/kustomization.yaml"
mkdir -p "$out"
kubectl kustomize "$work/deploy/base" > "$out/base.yaml"
kubectl kustomize "$work/deploy/overlays/kserve" > "$out/kserve.yaml"
echo "rendered $image: $out/base.yaml $out/kserve.yaml"
