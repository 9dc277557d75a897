#!/bin/sh
# A stand-in notifier for the examples' onWait / onFailure handlers: appends one line per
# call to $NOTIFY_LOG (default: $TMPDIR/smithers-notify.log). A real one would post to chat.
set -eu
log=${NOTIFY_LOG:-${TMPDIR:-/tmp}/smithers-notify.log}
echo "${1:-event} run=${SMITHERS_RUN_ID:-} waiting=${SMITHERS_WAITING_NODES:-} failed=${SMITHERS_FAILED_NODE:-}" >> "$log"
