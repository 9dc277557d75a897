#!/bin/sh
# A stand-in deploy for the examples: "releases" $VERSION to an environment by writing a
# release file, and prints what it did. No network, nothing outside $DEPLOY_DIR.
#   DEPLOY_DIR   where release files go (default: $TMPDIR/smithers-deploys)
#   VERSION      what to release (default: dev)
#   FAIL_ON      an environment whose deploy fails (exit 3), to see a failed step
set -eu
target=${1:?usage: deploy.sh staging|production}
version=${VERSION:-dev}
dir=${DEPLOY_DIR:-${TMPDIR:-/tmp}/smithers-deploys}
echo "deploying $version to $target"
if [ "${FAIL_ON:-}" = "$target" ]; then
  echo "health check failed on $target" >&2
  exit 3
fi
mkdir -p "$dir"
printf '%s %s\n' "$version" "${SMITHERS_RUN_ID:-}" > "$dir/$target"
echo "released $version to $target ($dir/$target)"
