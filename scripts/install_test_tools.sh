#!/usr/bin/env bash
# The system tools the slow tests drive, from the distribution's packages (apt-get) when missing:
# HAProxy, the load balancer of tests/test_replace.py. .ci/run and the workflow's test job run this
# before scripts/test.sh; with CI=true a missing tool fails its test, elsewhere the test skips.
set -euo pipefail
if ! command -v haproxy >/dev/null; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "error: haproxy is missing, and installing it with apt-get needs root or sudo" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  if ! command -v apt-get >/dev/null; then
    echo "error: haproxy is missing and there is no apt-get to install it: install HAProxy (2.6 or later)" >&2
    exit 1
  fi
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends haproxy; } >"$log" 2>&1; then
    echo "error: apt-get could not install haproxy: $(grep -v '^\s*$' "$log" | tail -n 1)" >&2
    exit 1
  fi
fi
haproxy -v | sed -n 1p  # (sed reads it all: no SIGPIPE under pipefail)
