"""Shared by the Python peer drivers (DBOS, LangGraph): side-effect files, timing, output.

Each driver is run as `python <driver>.py <shape> [args…]` in a scratch folder and prints one
JSON line with its figures. The shapes are the ones bench/ measures for smithers-rs:
  pernode N REPS      one run of an N-step sequence, in process: wall per step
  approve K           K runs parked at a gate; in-process approve -> downstream body starts
  park R              start R runs that each park at the gate: total and per run
  crash N             kill -9 of an N-step run at about half, then a fresh process resumes it
  race K              K parked runs, each approved by two processes at once: downstream twice?
Side effects are lines appended to files in $BENCH_EFFECTS (one per execution), so the crash
and race shapes count how often each body really ran.
"""
import json
import os
import statistics
import sys
import time

EFFECTS = os.environ.get("BENCH_EFFECTS", os.path.join(os.getcwd(), "effects"))


def effect(kind: str, key: str):
    """Appends `key time` to the effects file `kind` (one write: lines never interleave)."""
    os.makedirs(EFFECTS, exist_ok=True)
    fd = os.open(os.path.join(EFFECTS, kind), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def effects(kind: str):
    """[(key, epoch seconds)] of an effects file, in order."""
    path = os.path.join(EFFECTS, kind)
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path).read().splitlines():
        key, t = line.split()
        out.append((key, float(t)))
    return out


def clear_effects(*kinds):
    for k in kinds:
        p = os.path.join(EFFECTS, k)
        if os.path.exists(p):
            os.remove(p)


def stats(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return {"n": 0, "min": None, "median": None, "max": None, "p50": None, "p99": None}
    pct = lambda p: xs[min(len(xs) - 1, max(0, int(-(-p * len(xs) // 100)) - 1))]
    return {"n": len(xs), "min": xs[0], "median": statistics.median(xs), "max": xs[-1], "p50": pct(50), "p99": pct(99)}


def emit(result: dict):
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def wait_until(predicate, limit_s=120, poll_s=0.002):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(poll_s)
    raise TimeoutError("condition not reached")
