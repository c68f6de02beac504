#!/usr/bin/env bash
# Make URL the default DVC remote, named `storage` (docs/remote.md).
#   bash scripts/remote.sh s3://BUCKET/PATH [--endpoint URL] [--region NAME] [--local] [--name NAME]
#   bash scripts/remote.sh /PATH/TO/A/FOLDER [--local] [--name NAME]    a local-directory remote
# --name: another name than `storage`, e.g. for a local folder next to a committed S3 remote (DVC
# merges a remote's section in .dvc/config.local into the committed section of the same name).
# Writes .dvc/config (commit it: the team shares one remote), or with --local the git-ignored
# .dvc/config.local (this machine only; what CI does). Safe to re-run: the remote's section is
# replaced, so an option left out is removed. Credentials are never arguments (they would land in
# shell history and CI logs): DVC's S3 plugin reads them from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, an AWS profile, or `dvc remote modify --local storage access_key_id ...`.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
[ ! -x .venv/bin/python ] || source scripts/env.sh

usage="usage: bash scripts/remote.sh URL [--endpoint URL] [--region NAME] [--local] [--name NAME]"
name=storage
url=
endpoint=
region=
level=--project
config=.dvc/config
while [ $# -gt 0 ]; do
  case "$1" in
    --endpoint) [ $# -ge 2 ] || { echo "error: --endpoint needs a URL; $usage" >&2; exit 2; }; endpoint=$2; shift 2 ;;
    --region) [ $# -ge 2 ] || { echo "error: --region needs a name; $usage" >&2; exit 2; }; region=$2; shift 2 ;;
    --local) level=--local; config=.dvc/config.local; shift ;;
    --name) [ $# -ge 2 ] || { echo "error: --name needs a name; $usage" >&2; exit 2; }; name=$2; shift 2 ;;
    -*) echo "error: unknown option $1; $usage" >&2; exit 2 ;;
    *) [ -z "$url" ] || { echo "error: one URL only (got $url and $1); $usage" >&2; exit 2; }; url=$1; shift ;;
  esac
done
[ -n "$url" ] || { echo "error: no remote URL; $usage" >&2; exit 2; }
case "$url" in
  s3://*) ;;
  *://*) echo "error: $url: this script sets up s3:// or local-folder remotes (see \`dvc remote add --help\` for others)" >&2; exit 2 ;;
  *)
    [ -z "$endpoint$region" ] || { echo "error: --endpoint and --region are for s3:// remotes, not the folder $url" >&2; exit 2; }
    # A relative folder is relative to where the script was called: DVC gets it absolute.
    url=$(cd "$caller" && python -c 'import os, sys; print(os.path.abspath(sys.argv[1]))' "$url")
    ;;
esac

dvc remote add "$level" --force --default "$name" "$url"
# aiobotocore ignores AWS_ENDPOINT_URL, so an S3-compatible store's address must be in DVC's config.
[ -z "$endpoint" ] || dvc remote modify "$level" "$name" endpointurl "$endpoint"
[ -z "$region" ] || dvc remote modify "$level" "$name" region "$region"
echo "default DVC remote '$name': $url${endpoint:+ (endpoint $endpoint)}${region:+ (region $region)}, in $config"
