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
import signal
import statistics
import subprocess
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


def measure_crash(script: str, n: int, worker_args: list, resume_args: list) -> dict:
    """kill -9 of `script crash-worker …` once half of its n logged steps ran, then a fresh
    `script crash-resume …`; how long, when the first resumed step ran, what ran twice or never."""
    clear_effects("step")
    worker = subprocess.Popen([sys.executable, script, "crash-worker", *worker_args])
    wait_until(lambda: len(effects("step")) >= n // 2, limit_s=300)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_after = len(effects("step"))
    t0 = time.time()
    resume = subprocess.run([sys.executable, script, "crash-resume", *resume_args], capture_output=True, text=True)
    wall = (time.time() - t0) * 1000
    if resume.returncode != 0:
        raise RuntimeError(f"crash-resume exited {resume.returncode}: {resume.stderr[-800:]}")
    steps = effects("step")
    counts = {}
    for key, _ in steps:
        counts[key] = counts.get(key, 0) + 1
    later = [t for _, t in steps[killed_after:]]
    return {
        "n": n, "killedAfter": killed_after, "resumeWallMs": wall,
        "firstBodyMs": (later[0] - t0) * 1000 if later else None,
        "remaining": n - killed_after,
        "twice": sum(1 for c in counts.values() if c == 2), "more": sum(1 for c in counts.values() if c > 2),
        "missing": n - len(counts),
    }


def measure_race(script: str, ids: list, approver: str, settle) -> dict:
    """For each parked run, two `script <approver> <id>` processes at once; `settle(id)` waits
    for the run to end. Counts runs whose downstream ran more than once."""
    twice, exits = 0, []
    for run_id in ids:
        both = [subprocess.Popen([sys.executable, script, approver, run_id], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
        exits.extend(p.wait() for p in both)
        settle(run_id)
        twice += sum(1 for key, _ in effects("downstream") if key == run_id) > 1
    return {"k": len(ids), "ranTwice": twice, "approverExitCodes": sorted(set(exits))}
