"""Dagu (the binary npm ships in @dagu-org/dagu-linux-x64), driven through the bench shapes of
bench/peers/python/common.py, with Python's standard library only. Every server listens on
127.0.0.1 in a throw-away DAGU_HOME and is stopped by its own pid; every loop is bounded.

  pernode N REPS   `dagu start` (foreground CLI) of an N-step chain of `true`: wall per step
  approve K        K runs of prepare -> gate (type: hitl) -> after, started over REST; once each
                   waits (and its agent process has exited: 1.30 loses earlier approvals), the
                   approve request is sent; -> `after` wrote its start time
  park R           start R runs over REST until all wait at the gate
  crash N          kill -9 of `dagu start` of an N-step chain at about half, then `dagu retry`
  race K           K waiting runs, each approved by two requests at once: did `after` run twice?

usage: python3 dagu_driver.py <dagu binary> <shape> [args]; prints one JSON line
"""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from common import wait_until  # noqa: E402  (standard library only)


def lines(path):
    try:
        return [l for l in open(path).read().splitlines() if l.strip()]
    except OSError:
        return []


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Server:
    def __init__(self, binary, home):
        self.bin, self.home = binary, home
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        cfg = os.path.join(home, "config.yaml")
        with open(cfg, "w") as f:
            f.write(f"host: 127.0.0.1\nport: {self.port}\nskipExamples: true\nauth:\n  mode: none\n")
        self.env = dict(os.environ, DAGU_HOME=home)
        self.base = f"http://127.0.0.1:{self.port}/api/v2"
        self.log = open(os.path.join(home, "server.log"), "w")
        self.proc = subprocess.Popen([binary, "server", "--config", cfg], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.ok("/health"), limit_s=30, poll_s=0.1)
        except TimeoutError:
            self.stop()
            raise RuntimeError("dagu server did not come up")

    def ok(self, path):
        try:
            return self.req("GET", path)[0] == 200
        except OSError:
            return False

    def req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def create(self, name, spec):
        st, body = self.req("POST", "/dags", {"name": name, "spec": spec})
        if st != 201:
            raise RuntimeError(f"create {name}: {st} {body}")

    def start(self, name):
        st, body = self.req("POST", f"/dags/{name}/start", {})
        if st != 200:
            raise RuntimeError(f"start {name}: {st} {body}")
        return body["dagRunId"]

    def status(self, name, run_id):
        st, body = self.req("GET", f"/dag-runs/{name}/{run_id}")
        return body["dagRunDetails"]["statusLabel"] if st == 200 else None

    def settled(self, name, run_id):
        """The agent that parked the run has exited (its status file compacted, its pid gone)."""
        files = sorted(glob.glob(os.path.join(self.home, "data", "dag-runs", name, "dag-runs", "*", "*", "*", f"dag-run_*{run_id}", "attempt_*", "status.jsonl")))
        if not files:
            return False
        rows = lines(files[-1])
        try:
            return len(rows) == 1 and not pid_alive(json.loads(rows[0]).get("pid"))
        except ValueError:
            return False

    def wait_parked(self, name, run_id):
        wait_until(lambda: self.status(name, run_id) == "waiting", limit_s=60)
        wait_until(lambda: self.settled(name, run_id), limit_s=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def gate_spec(marks):
    return f"""type: graph
steps:
  - name: prepare
    command: "true"
  - name: gate
    type: hitl
    depends: [prepare]
  - name: after
    depends: [gate]
    command: sh -c 'echo "$DAG_RUN_ID $(date +%s.%N)" >> {marks}'
"""


def chain_spec(n, marks=None):
    out = ["type: graph", "steps:"]
    for i in range(n):
        out.append(f"  - name: s{i}")
        out.append(f"    command: sh -c 'echo s{i} $(date +%s.%N) >> {marks}'" if marks else '    command: "true"')
        if i:
            out.append(f"    depends: [s{i - 1}]")
    return "\n".join(out) + "\n"


def shape_pernode(binary, home, n, reps):
    path = os.path.join(home, f"chain{n}.yaml")
    open(path, "w").write(chain_spec(n))
    env = dict(os.environ, DAGU_HOME=home)
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        r = subprocess.run([binary, "start", path], env=env, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(f"dagu start exited {r.returncode}: {r.stderr[-500:]}")
        walls.append((time.perf_counter() - t) * 1000)
    return {"n": n, "wallMs": walls, "perNodeMs": [w / n for w in walls]}


def parked(server, marks, k):
    server.create("gate", gate_spec(marks))
    ids, per_run = [], []
    for _ in range(k):
        t = time.perf_counter()
        rid = server.start("gate")
        server.wait_parked("gate", rid)
        per_run.append((time.perf_counter() - t) * 1000)
        ids.append(rid)
    return ids, per_run


def shape_approve(binary, home, k):
    marks = os.path.join(home, "after.marks")
    server = Server(binary, home)
    try:
        ids, park_ms = parked(server, marks, k)
        to_body = []
        for rid in ids:
            t0 = time.time()
            st, body = server.req("POST", f"/dag-runs/gate/{rid}/steps/gate/approve", {})
            if st != 200:
                raise RuntimeError(f"approve: {st} {body}")
            row = wait_until(lambda: next((l for l in lines(marks) if l.startswith(rid + " ")), None), limit_s=60)
            to_body.append((float(row.split()[1]) - t0) * 1000)
            wait_until(lambda: server.status("gate", rid) == "succeeded", limit_s=60)
        return {"toBodyMs": to_body, "parkMs": park_ms}
    finally:
        server.stop()


def shape_park(binary, home, r):
    server = Server(binary, home)
    try:
        t = time.perf_counter()
        _, per_run = parked(server, os.path.join(home, "after.marks"), r)
        return {"r": r, "totalMs": (time.perf_counter() - t) * 1000, "perRunMs": per_run}
    finally:
        server.stop()


def shape_crash(binary, home, n):
    marks = os.path.join(home, "chain.marks")
    path = os.path.join(home, "crashchain.yaml")
    open(path, "w").write(chain_spec(n, marks))
    env = dict(os.environ, DAGU_HOME=home)
    run_id = f"crash{int(time.time())}"
    worker = subprocess.Popen([binary, "start", f"--run-id={run_id}", path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_until(lambda: len(lines(marks)) >= n // 2, limit_s=1800)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_after = len(lines(marks))
    t0 = time.time()
    r = subprocess.run([binary, "retry", f"--run-id={run_id}", path], env=env, capture_output=True, text=True, timeout=1800)
    wall = (time.time() - t0) * 1000
    rows = lines(marks)
    counts = {}
    for row in rows:
        counts[row.split()[0]] = counts.get(row.split()[0], 0) + 1
    later = [float(row.split()[1]) for row in rows[killed_after:]]
    return {
        "n": n, "killedAfter": killed_after, "resumeWallMs": wall, "resumeExit": r.returncode,
        "resumeStderr": r.stderr[-300:] if r.returncode else "",
        "firstBodyMs": (later[0] - t0) * 1000 if later else None, "remaining": n - killed_after,
        "twice": sum(1 for c in counts.values() if c == 2), "more": sum(1 for c in counts.values() if c > 2),
        "missing": n - len(counts),
    }


def shape_race(binary, home, k):
    marks = os.path.join(home, "after.marks")
    server = Server(binary, home)
    try:
        ids, _ = parked(server, marks, k)
        twice, statuses = 0, []
        for rid in ids:
            got = []
            threads = [threading.Thread(target=lambda: got.append(server.req("POST", f"/dag-runs/gate/{rid}/steps/gate/approve", {})[0])) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses.extend(got)
            wait_until(lambda: server.status("gate", rid) in ("succeeded", "failed"), limit_s=60)
            time.sleep(0.2)  # a second resume, if any, would start by now
            twice += sum(1 for l in lines(marks) if l.startswith(rid + " ")) > 1
        return {"k": k, "ranTwice": twice, "approveStatuses": sorted(set(statuses))}
    finally:
        server.stop()


if __name__ == "__main__":
    binary, shape, args = sys.argv[1], sys.argv[2], [int(a) for a in sys.argv[3:]]
    home = tempfile.mkdtemp(prefix="smithers-bench-dagu-")
    try:
        fn = {"pernode": shape_pernode, "approve": shape_approve, "park": shape_park, "crash": shape_crash, "race": shape_race}[shape]
        sys.stdout.write(json.dumps(fn(binary, home, *args)) + "\n")
    finally:
        shutil.rmtree(home, ignore_errors=True)
