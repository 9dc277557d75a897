#!/bin/sh
# Stand-in for a metrics query: the summary depends on the window and the grouping.
SINCE="${SINCE:-7d}"
GROUPING="${GROUPING:-daily}"
echo "Querying error rates (since=$SINCE, grouping=$GROUPING)"
echo "error rate ${SINCE}/${GROUPING}: 0.4%"
echo "metrics ${SINCE} ${GROUPING}" >> marks.log
