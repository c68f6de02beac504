#!/usr/bin/env bash
# Push the image the workflow built and tested, under every tag docker/metadata-action chose, and
# report its digest. One build: every tag must name the tested image (same image ID), so what the
# registry serves is bit for bit what passed the checks; nothing is rebuilt here.
# Usage: scripts/push_image.sh TESTED_TAG   with the tags to push in $TAGS, one per line.
set -euo pipefail
tested=${1:?usage: scripts/push_image.sh TESTED_TAG (tags to push in \$TAGS, one per line)}
tested_id=$(docker image inspect --format '{{.Id}}' "$tested")
mapfile -t tags < <(printf '%s\n' "${TAGS:-}" | sed '/^[[:space:]]*$/d')
if [ "${#tags[@]}" -eq 0 ]; then
  echo "error: no tags to push (TAGS is empty)" >&2
  exit 2
fi
for tag in "${tags[@]}"; do
  id=$(docker image inspect --format '{{.Id}}' "$tag")
  if [ "$id" != "$tested_id" ]; then
    echo "error: $tag is image $id, not the tested $tested ($tested_id): refusing to push it" >&2
    exit 1
  fi
done
for tag in "${tags[@]}"; do
  docker push --quiet "$tag"
done
digests=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tested" | sed '/^$/d')
echo "pushed $tested_id as:"
printf '  %s\n' "${tags[@]}"
echo "digests:"
printf '  %s\n' "$digests"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    printf '### Image pushed\n\nThe image tested in this job (%s), under these tags:\n\n' "\`$tested_id\`"
    printf -- '- `%s`\n' "${tags[@]}"
    printf '\nDigest (pull by digest for exactly this image):\n\n'
    printf -- '- `%s`\n' $digests
  } >> "$GITHUB_STEP_SUMMARY"
fi
