#!/usr/bin/env python3
"""A database of many pending gates for the approvals listing's benchmark, fast.

Creating 100,000 waiting runs through the engine takes tens of minutes with a debug addon
(bench/sections/timers.js does it, with --full). This takes a database in which the engine
parked some runs at a gate (`node --expose-gc bench/child.js create-deadline DB 2000`) and
copies those runs' rows (runs, nodes, approvals, timers, run schemas) under new run ids until
it holds N pending gates; copy k's request times are shifted by k seconds, so the listing's
order interleaves them. Only rows the listing and the stores' indexes see are copied (no
events): it is a fixture for reads, not a database to drive.

usage: bench/approvals-fixture.py DB N
"""
import sqlite3
import sys

db, target = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db)
conn.execute("PRAGMA journal_mode=WAL")
tables = [t for (t,) in conn.execute(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
    "('_smithers_runs', '_smithers_nodes', '_smithers_approvals', '_smithers_timers', '_smithers_run_schemas')")]
base = [r for (r,) in conn.execute("SELECT run_id FROM _smithers_runs WHERE parent_run_id IS NULL")]
have = conn.execute("SELECT COUNT(*) FROM _smithers_approvals WHERE status = 'requested'").fetchone()[0]
if have == 0:
    sys.exit(f"{db}: no pending gates to copy")
conn.execute("CREATE TEMP TABLE seed(run_id TEXT PRIMARY KEY)")
conn.executemany("INSERT INTO seed VALUES (?)", [(r,) for r in base])
shift_cols = {"requested_at_ms", "created_at_ms", "updated_at_ms", "due_at_ms"}
k = 0
while have < target:
    k += 1
    room = target - have
    with conn:
        for t in tables:
            cols = [c[1] for c in conn.execute(f"PRAGMA table_info({t})")]
            exprs = []
            for c in cols:
                if c == "run_id":
                    exprs.append(f"run_id || '-c{k}'")
                elif c in shift_cols:
                    exprs.append(f"{c} + {k * 1000}")
                else:
                    exprs.append(c)
            limit = f"(SELECT run_id FROM seed ORDER BY run_id LIMIT {room})"
            conn.execute(
                f"INSERT INTO {t} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {t} "
                f"WHERE run_id IN {limit}"
            )
    have = conn.execute("SELECT COUNT(*) FROM _smithers_approvals WHERE status = 'requested'").fetchone()[0]
print(f"{db}: {have} pending gates ({k} copies of {len(base)} runs)")
