#!/bin/sh
# Stand-in: "applies" the migration with the approver and window given as flags.
echo "migrating: $*"
echo "migrate $*" >> marks.log
