#!/bin/sh
# Stand-in for a real deployment script: says what it would deploy, and leaves a line in
# marks.log (next to the DAG) so a test can see it ran, with which version.
target="${1:-production}"
echo "deploying ${DEPLOY_VERSION:-current} to ${target}"
echo "deploy ${target} ${DEPLOY_VERSION:-}" >> marks.log
echo "deployed to ${target}"
