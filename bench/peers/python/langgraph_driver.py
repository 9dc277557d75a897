"""LangGraph with its SQLite checkpointer (SqliteSaver), driven through the bench shapes
(common.py). Sequences use the functional API (an @entrypoint calling N @tasks: LangGraph's
cheaper form for long step lists; a StateGraph chain of N nodes writes a checkpoint with every
channel per node). The gate is a StateGraph prepare -> gate (interrupt) -> downstream, resumed
with Command(resume=…). Nothing runs between invocations: whoever resumes a run executes its
rest, and nothing keeps two resumers apart.

usage: python langgraph_driver.py <shape> [args]   (see common.py); prints one JSON line
"""
import os
import sqlite3
import sys
import time
import uuid
from typing import TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from common import clear_effects, effect, effects, emit, measure_crash, measure_race, wait_until

DB = os.path.abspath(os.environ.get("BENCH_DB", "langgraph.sqlite"))


def saver():
    return SqliteSaver(sqlite3.connect(DB, check_same_thread=False))


def fresh():
    for s in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(DB + s):
            os.remove(DB + s)


def cfg(thread_id):
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 100_000}


@task
def trivial(x: int) -> int:
    return x + 1


@task
def logged(i: int, key: str) -> int:
    effect("step", f"{key}:{i}")
    return i


def sequence_app(checkpointer):
    @entrypoint(checkpointer=checkpointer)
    def run(n: int) -> int:
        x = 0
        for _ in range(n):
            x = trivial(x).result()
        return x

    return run


def logged_app(checkpointer):
    @entrypoint(checkpointer=checkpointer)
    def run(inp: dict) -> int:
        for i in range(inp["n"]):
            logged(i, inp["key"]).result()
        return inp["n"]

    return run


class Gate(TypedDict, total=False):
    prepared: str
    decision: str


def gate_app(checkpointer):
    def prepare(state, config):
        return {"prepared": "ready"}

    def gate(state, config):
        return {"decision": interrupt({"question": "approve?"})}

    def downstream(state, config):
        effect("downstream", config["configurable"]["thread_id"])
        return {}

    b = StateGraph(Gate)
    b.add_node("prepare", prepare)
    b.add_node("gate", gate)
    b.add_node("downstream", downstream)
    b.add_edge(START, "prepare")
    b.add_edge("prepare", "gate")
    b.add_edge("gate", "downstream")
    b.add_edge("downstream", END)
    return b.compile(checkpointer=checkpointer)


def park(app, k, prefix):
    ids, times = [], []
    for i in range(k):
        tid = f"{prefix}-{i}-{uuid.uuid4().hex[:6]}"
        t = time.perf_counter()
        out = app.invoke({}, cfg(tid))
        assert "__interrupt__" in out
        times.append((time.perf_counter() - t) * 1000)
        ids.append(tid)
    return ids, times


def shape_pernode(n, reps):
    fresh()
    app = sequence_app(saver())
    app.invoke(10, cfg(f"warm-{uuid.uuid4().hex}"))
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        assert app.invoke(n, cfg(f"seq-{uuid.uuid4().hex}")) == n
        walls.append((time.perf_counter() - t) * 1000)
    emit({"n": n, "wallMs": walls, "perNodeMs": [w / n for w in walls]})


def shape_approve(k):
    fresh()
    clear_effects("downstream")
    app = gate_app(saver())
    ids, park_ms = park(app, k, "ap")
    to_body = []
    for tid in ids:
        t0 = time.time()
        app.invoke(Command(resume="approved"), cfg(tid))
        body_at = next(t for key, t in effects("downstream") if key == tid)
        to_body.append((body_at - t0) * 1000)
    emit({"toBodyMs": to_body, "parkMs": park_ms})


def shape_park(r):
    fresh()
    app = gate_app(saver())
    t = time.perf_counter()
    _, per_run = park(app, r, "pk")
    emit({"r": r, "totalMs": (time.perf_counter() - t) * 1000, "perRunMs": per_run})


def shape_crash(n):
    fresh()
    key = f"crash-{uuid.uuid4().hex[:8]}"
    emit(measure_crash(__file__, n, [str(n), key], [str(n), key]))

def crash_worker(n, key):
    logged_app(saver()).invoke({"n": n, "key": key}, cfg(key))
    time.sleep(3600)


def crash_resume(n, key):
    # No recovery loop: the application continues the thread it knows about.
    assert logged_app(saver()).invoke(None, cfg(key)) == n


def shape_race(k):
    fresh()
    clear_effects("downstream")
    ids, _ = park(gate_app(saver()), k, "race")
    # Each approver resumes the run itself, so it has ended when both processes have.
    emit(measure_race(__file__, ids, "resume", lambda tid: None))

def resume(tid):
    """An approver process: with LangGraph, approving is resuming (this process runs the rest)."""
    gate_app(saver()).invoke(Command(resume="approved"), cfg(tid))


if __name__ == "__main__":
    shape, args = sys.argv[1], sys.argv[2:]
    {
        "pernode": lambda: shape_pernode(int(args[0]), int(args[1])),
        "approve": lambda: shape_approve(int(args[0])),
        "park": lambda: shape_park(int(args[0])),
        "crash": lambda: shape_crash(int(args[0])),
        "crash-worker": lambda: crash_worker(int(args[0]), args[1]),
        "crash-resume": lambda: crash_resume(int(args[0]), args[1]),
        "race": lambda: shape_race(int(args[0])),
        "resume": lambda: resume(args[0]),
    }[shape]()
