#!/bin/sh
# Stand-in: shows the configuration diff for an environment.
env="${1:?usage: validate-deploy-config.sh <environment>}"
echo "config for ${env}: replicas 3 -> 4, image tag unchanged"
echo "validate ${env}" >> marks.log
