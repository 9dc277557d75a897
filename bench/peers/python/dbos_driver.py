"""DBOS Transact on its SQLite system database (defaults), driven through the bench shapes
(common.py). Workflows: an N-step sequence of trivial steps, and a gate: prepare -> recv ->
downstream. A workflow waiting at recv holds a thread of the process that hosts it; a decision
is a message (`send`) that the recv notices on its next poll of the database (1 s by default).

usage: python dbos_driver.py <shape> [args]   (see common.py); prints one JSON line
"""
import os
import sys
import time
import uuid

from dbos import DBOS, DBOSClient, SetWorkflowID

from common import clear_effects, effect, effects, emit, measure_crash, measure_race, wait_until

DB = os.path.abspath(os.environ.get("BENCH_DB", "dbos.sqlite"))
AT_GATE = set()


@DBOS.step()
def trivial(x: int) -> int:
    return x + 1


@DBOS.workflow()
def sequence(n: int) -> int:
    x = 0
    for _ in range(n):
        x = trivial(x)
    return x


@DBOS.step()
def logged_step(i: int) -> int:
    effect("step", f"{DBOS.workflow_id}:{i}")
    return i


@DBOS.workflow()
def logged_sequence(n: int) -> int:
    for i in range(n):
        logged_step(i)
    return n


@DBOS.step()
def prepare() -> str:
    return "ready"


@DBOS.step()
def downstream(decision: str) -> str:
    effect("downstream", DBOS.workflow_id)
    return decision


@DBOS.workflow()
def gate_workflow() -> str:
    prepare()
    AT_GATE.add(DBOS.workflow_id)
    decision = DBOS.recv("approval", timeout_seconds=24 * 3600)
    return downstream(decision)


def launch(fresh=True):
    if fresh:
        for s in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(DB + s):
                os.remove(DB + s)
    DBOS(config={"name": "smithers-rs-bench", "system_database_url": "sqlite:///" + DB})
    DBOS.launch()


def park(k, prefix, limit_s=120):
    """Starts k gate workflows and waits until each waits at its recv; per-run start times."""
    ids, times = [], []
    for i in range(k):
        wfid = f"{prefix}-{i}-{uuid.uuid4().hex[:6]}"
        t = time.perf_counter()
        with SetWorkflowID(wfid):
            DBOS.start_workflow(gate_workflow)
        wait_until(lambda: wfid in AT_GATE, limit_s=limit_s)
        times.append((time.perf_counter() - t) * 1000)
        ids.append(wfid)
    return ids, times


class Stalled(Exception):
    """park() stopped: a run did not reach its gate in time (after `parked` runs did)."""

    def __init__(self, parked, times):
        super().__init__(f"stalled after {parked} runs")
        self.parked, self.times = parked, times


def shape_pernode(n, reps):
    launch()
    with SetWorkflowID(f"warm-{uuid.uuid4().hex}"):
        sequence(10)
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        with SetWorkflowID(f"seq-{uuid.uuid4().hex}"):
            assert sequence(n) == n
        walls.append((time.perf_counter() - t) * 1000)
    DBOS.destroy()
    emit({"n": n, "wallMs": walls, "perNodeMs": [w / n for w in walls]})


def shape_approve(k):
    launch()
    clear_effects("downstream")
    ids, park_ms = park(k, "ap")
    to_body = []
    for wfid in ids:
        t0 = time.time()
        DBOS.send(wfid, "approved", topic="approval")
        wait_until(lambda: any(key == wfid for key, _ in effects("downstream")), limit_s=60)
        body_at = next(t for key, t in effects("downstream") if key == wfid)
        to_body.append((body_at - t0) * 1000)
        DBOS.retrieve_workflow(wfid).get_result()
    DBOS.destroy()
    emit({"toBodyMs": to_body, "parkMs": park_ms})


def park_counted(k, prefix, limit_s):
    """park(), but a run that does not reach its gate ends the shape with what was parked."""
    ids, times = [], []
    for i in range(k):
        try:
            one, ms = park(1, f"{prefix}{i}", limit_s)
        except TimeoutError:
            raise Stalled(len(ids), times)
        ids += one
        times += ms
    return ids, times


def shape_park(r):
    launch()
    t = time.perf_counter()
    stalled = None
    try:
        _, per_run = park_counted(r, "pk", 30)
    except Stalled as e:
        # Reported as such; the waiting workflows' threads would keep the process alive, so
        # it ends with os._exit once the line is out.
        stalled, per_run = e.parked, e.times
    total = (time.perf_counter() - t) * 1000
    rss = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS:", "Threads:")):
            k, v = line.split(":", 1)
            rss[k] = int(v.split()[0])
    if stalled is not None:
        emit({"r": r, "stalledAfter": stalled, "totalMs": total, "perRunMs": per_run, "rssKiB": rss.get("VmRSS"), "threads": rss.get("Threads")})
        sys.stdout.flush()
        os._exit(0)
    DBOS.destroy()
    emit({"r": r, "totalMs": total, "perRunMs": per_run, "rssKiB": rss.get("VmRSS"), "threads": rss.get("Threads")})


def shape_crash(n):
    wfid = f"crash-{uuid.uuid4().hex[:8]}"
    emit(measure_crash(__file__, n, [str(n), wfid], [wfid]))

def crash_worker(n, wfid):
    launch()
    with SetWorkflowID(wfid):
        logged_sequence(n)
    time.sleep(3600)  # killed before this


def crash_resume(wfid):
    launch(fresh=False)  # launch() recovers the pending workflow (same code, same executor)
    DBOS.retrieve_workflow(wfid).get_result()
    DBOS.destroy()


def shape_race(k):
    launch()
    clear_effects("downstream")
    ids, _ = park(k, "race")
    result = measure_race(__file__, ids, "send", lambda wfid: DBOS.retrieve_workflow(wfid).get_result())
    DBOS.destroy()
    emit(result)

def send(wfid):
    """An approver process: what an `approve` command is with DBOS (its CLI has no send)."""
    client = DBOSClient(system_database_url="sqlite:///" + DB)
    client.send(wfid, "approved", topic="approval")
    client.destroy()


if __name__ == "__main__":
    shape, args = sys.argv[1], sys.argv[2:]
    {
        "pernode": lambda: shape_pernode(int(args[0]), int(args[1])),
        "approve": lambda: shape_approve(int(args[0])),
        "park": lambda: shape_park(int(args[0])),
        "crash": lambda: shape_crash(int(args[0])),
        "crash-worker": lambda: crash_worker(int(args[0]), args[1]),
        "crash-resume": lambda: crash_resume(args[0]),
        "race": lambda: shape_race(int(args[0])),
        "send": lambda: send(args[0]),
    }[shape]()
