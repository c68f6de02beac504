#!/usr/bin/env bash
# Make URL the default DVC remote, named `storage` (README, "Share the artifacts: a DVC remote").
#   bash scripts/remote.sh s3://BUCKET/PATH [--endpoint URL] [--region NAME] [--local]
#   bash scripts/remote.sh /PATH/TO/A/FOLDER [--local]        a local-directory remote
# Writes .dvc/config (commit it: the team shares one remote), or with --local the git-ignored
# .dvc/config.local (this machine only; what CI does). Safe to re-run: the remote's section is
# replaced, so an option left out is removed. Credentials are never arguments (they would land in
# shell history and CI logs): DVC's S3 plugin reads them from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, an AWS profile, or `dvc remote modify --local storage access_key_id ...`.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
[ ! -x .venv/bin/python ] || source scripts/env.sh

usage="usage: bash scripts/remote.sh URL [--endpoint URL] [--region NAME] [--local]"
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
    [ "${url#/}" != "$url" ] || url=$caller/$url # a folder relative to where the script was called
    ;;
esac

dvc remote add "$level" --force --default "$name" "$url"
# aiobotocore ignores AWS_ENDPOINT_URL, so an S3-compatible store's address must be in DVC's config.
[ -z "$endpoint" ] || dvc remote modify "$level" "$name" endpointurl "$endpoint"
[ -z "$region" ] || dvc remote modify "$level" "$name" region "$region"
echo "default DVC remote '$name': $url${endpoint:+ (endpoint $endpoint)}${region:+ (region $region)}, in $config"
