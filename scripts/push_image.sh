#!/usr/bin/env bash
# Push the image the image job built and tested under every tag scripts/image_metadata.py gives the
# ref (GITHUB_REF, IMAGE: the same environment as scripts/build_image.sh, which tagged it so). One
# build: every tag must name the tested image (same image ID), so what the registry serves is bit
# for bit what passed the checks; nothing is rebuilt here. Prints the pushed image by digest
# (IMAGE@sha256:...) on stdout, alone, for scripts/render_manifests.sh; the rest on stderr and in
# the run's summary ($GITHUB_STEP_SUMMARY) when there is one.
# Usage: scripts/push_image.sh TESTED_TAG
set -euo pipefail
tested=${1:?usage: scripts/push_image.sh TESTED_TAG}
scripts=$(cd "$(dirname "$0")" && pwd)
tested_id=$(docker image inspect --format '{{.Id}}' "$tested")
metadata=$("${PYTHON:-python3}" "$scripts/image_metadata.py")
read -ra tags <<<"$(sed -n 's/^tags=//p' <<<"$metadata")"
if [ "${#tags[@]}" -eq 0 ]; then
  echo "error: no tags to push: GITHUB_REF names no branch, pull request or tag" >&2
  exit 2
fi
for tag in "${tags[@]}"; do
  id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null) || id="no image"
  if [ "$id" != "$tested_id" ]; then
    echo "error: $tag is $id, not the tested $tested ($tested_id): refusing to push" >&2
    exit 1
  fi
done
for tag in "${tags[@]}"; do
  docker push --quiet "$tag" >&2
done
repository=${tags[0]%:*}
reference=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tested" | grep -m1 "^$repository@sha256:") || {
  echo "error: pushed, but the engine lists no digest of $repository for $tested: name IMAGE as \`docker images\` does" >&2
  exit 1
}
printf 'pushed %s as:\n' "$tested_id" >&2
printf '  %s\n' "${tags[@]}" >&2
printf 'by digest: %s\n' "$reference" >&2
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  # shellcheck disable=SC2016 # the backquotes are Markdown's
  {
    printf '### Image pushed\n\nThe image tested in this job (%s), under these tags:\n\n' "\`$tested_id\`"
    printf -- '- `%s`\n' "${tags[@]}"
    printf '\nBy digest (exactly this image): `%s`\n' "$reference"
  } >>"$GITHUB_STEP_SUMMARY"
fi
echo "$reference"
