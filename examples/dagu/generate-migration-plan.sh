#!/bin/sh
# Stand-in: prints the migration plan a reviewer approves.
echo "migration plan:"
echo "  1. add column orders.shipped_at (nullable)"
echo "  2. backfill from shipments (about 120k rows)"
echo "plan" >> marks.log
