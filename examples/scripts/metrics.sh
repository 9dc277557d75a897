#!/bin/sh
# A stand-in metrics query for the examples: active users over the last $DAYS days
# (default 7), as one JSON object. The numbers are made up but depend only on DAYS.
set -eu
days=${DAYS:-7}
case $days in
  ''|*[!0-9]*) echo "DAYS must be a whole number, got '$days'" >&2; exit 2 ;;
esac
echo "querying active users over the last $days days" >&2
printf '{"days":%d,"activeUsers":%d,"round":%d}\n' "$days" $((days * 120 + 35)) "${SMITHERS_PUSHBACK_ITERATION:-1}"
