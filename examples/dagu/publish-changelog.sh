#!/bin/sh
# Stand-in: publishes the approved changelog.
echo "published changelog${CHANGELOG:+: ${CHANGELOG}}"
echo "publish ${FEEDBACK:-}" >> marks.log
