// 7. The other peers, in the same run, on the same shapes: DBOS (Python, SQLite) and LangGraph
// (SqliteSaver) from PyPI, Dagu from its npm-shipped binary (bench/peers-install.js). Each
// shape runs as a driver process (bench/peers/python/*_driver.py, bench/peers/dagu_driver.py)
// that prints one JSON line. Also here: racing approvers for smithers-rs itself (two
// `smithers approve` processes on one gate at once), the one shape the other sections lack.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, HERE, count, fmt, lastJson, log, startProcess, stats, tempDir } from "../lib.js";
import { DAGU_VERSION, installDagu, installPython } from "../peers-install.js";
import { createParked, pendingRunIds } from "./cli.js";

/** Sizes per mode. Dagu starts a process per step and per run, so its sizes stay smaller. */
function sizes(full) {
  return {
    pernode: { n: 1000, reps: full ? 3 : 2 },
    daguPernode: { n: full ? 1000 : 100, reps: 1 },
    approve: full ? 10 : 5,
    park: full ? 1000 : 200,
    daguPark: full ? 200 : 50,
    crash: 1000,
    daguCrash: 100,
    race: full ? 10 : 5,
  };
}

/** smithers-rs: K parked runs, each approved by two `smithers approve` processes at once. */
async function oursRace(k) {
  const dir = tempDir("race");
  try {
    const db = join(dir, "race.db");
    createParked(db, k);
    const after = join(dir, "after.txt");
    writeFileSync(after, "");
    const env = { ...process.env, BENCH_AFTER_FILE: after };
    let twice = 0;
    const exits = [];
    const losers = new Set();
    for (const runId of pendingRunIds(db, k)) {
      const both = ["alice", "bob"].map((by) => startProcess(process.execPath, [CLI, "approve", runId, "--node", "gate", "--by", by, "--db", db], { env, rss: false }));
      const done = await Promise.all(both.map((p) => p.done));
      for (const d of done) {
        exits.push(d.status);
        const code = /smithers: ([A-Z_]+):/.exec(d.stderr)?.[1];
        if (d.status !== 0 && code) losers.add(code);
      }
      const ran = readFileSync(after, "utf8").split("\n").filter((l) => l.startsWith(`${runId} `)).length;
      if (ran !== 1) twice += ran > 1 ? 1 : 0;
    }
    const out = { k, ranTwice: twice, approverExitCodes: [...new Set(exits)].sort(), loserCodes: [...losers] };
    log(`peers: smithers-rs racing approvers: ${twice}/${k} ran downstream twice; exit codes ${out.approverExitCodes.join("/")} (${out.loserCodes.join(", ")})`);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one driver shape in a scratch folder; its JSON line, or throws with its stderr. A shape
 * that hangs (DBOS once stalled for minutes starting 200 waiting runs on a loaded machine) is
 * stopped after `timeoutMs` and reported as such. */
function driver(cmd, args, { timeoutMs = 5 * 60_000 } = {}) {
  const dir = tempDir("peer");
  try {
    mkdirSync(join(dir, "effects"), { recursive: true });
    // Not through GNU time (measureProcess): a timeout must stop the driver itself.
    const p = spawnSync(cmd, args, { cwd: dir, env: { ...process.env, BENCH_EFFECTS: join(dir, "effects") }, encoding: "utf8", maxBuffer: 64 << 20, timeout: timeoutMs, killSignal: "SIGKILL" });
    if (p.error?.code === "ETIMEDOUT") throw new Error(`timed out after ${timeoutMs / 60_000} min (stopped)`);
    if (p.status !== 0) throw new Error(`${args.slice(0, 3).join(" ")} exited ${p.status ?? p.error?.message}: ${String(p.stderr).slice(-600)}`);
    return lastJson(p.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every shape for one peer; a failing shape is recorded and the next one runs. */
function shapes(name, run, s, { dagu = false } = {}) {
  const out = { errors: [] };
  const step = (shape, fn) => {
    try {
      out[shape] = fn();
    } catch (e) {
      out.errors.push({ shape, message: String(e?.message ?? e).slice(0, 600) });
      log(`peers: ${name} ${shape} failed: ${String(e?.message ?? e).split("\n")[0].slice(0, 200)}`);
    }
  };
  step("pernode", () => {
    const { n, reps } = dagu ? s.daguPernode : s.pernode;
    const r = run(["pernode", String(n), String(reps)]);
    const v = { n, perNode: stats(r.perNodeMs), wall: stats(r.wallMs) };
    log(`peers: ${name} per node, ${count(n)}-step sequence: ${fmt(v.perNode.median)} ms`);
    return v;
  });
  step("approve", () => {
    const r = run(["approve", String(s.approve)]);
    const v = { toBody: stats(r.toBodyMs), park: stats(r.parkMs) };
    log(`peers: ${name} approve -> downstream started: p50 ${fmt(v.toBody.p50)} ms`);
    return v;
  });
  step("park", () => {
    const n = dagu ? s.daguPark : s.park;
    const r = run(["park", String(n)]);
    // A peer that stopped parking (a run not at its gate within 30 s) reports how many it parked.
    const stalledAfter = r.stalledAfter ?? null;
    const v = { n: stalledAfter ?? n, asked: n, stalledAfter, totalMs: r.totalMs, perRun: stats(r.perRunMs), rssMB: r.rssKiB ? r.rssKiB / 1024 : null, threads: r.threads ?? null };
    log(`peers: ${name} start ${count(n)} waiting runs: ${stalledAfter === null ? "" : `stalled after ${count(stalledAfter)}, `}${fmt(v.totalMs / 1000)} s (p50 ${fmt(v.perRun.p50)} ms/run)`);
    return v;
  });
  step("crash", () => {
    const r = run(["crash", String(dagu ? s.daguCrash : s.crash)]);
    log(`peers: ${name} kill -9 at ${r.killedAfter}/${r.n}, resume: first body after ${fmt(r.firstBodyMs)} ms, twice ${r.twice}, missing ${r.missing}`);
    return r;
  });
  step("race", () => {
    const r = run(["race", String(s.race)]);
    log(`peers: ${name} racing approvers: ${r.ranTwice}/${r.k} ran downstream twice`);
    return r;
  });
  return out;
}

export async function run({ full }) {
  const s = sizes(full);
  const res = { sizes: s, peers: {} };
  res.oursRace = await oursRace(s.race);

  const py = installPython({ log });
  for (const name of ["dbos", "langgraph"]) {
    if (!py.ok) {
      res.peers[name] = { available: false, reason: py.reason };
      continue;
    }
    const file = join(HERE, "peers/python", `${name}_driver.py`);
    res.peers[name] = { available: true, version: py.versions[name], python: py.versions.python, sqlite: py.versions.sqlite, ...shapes(name, (args) => driver(py.python, [file, ...args]), s) };
  }
  const dagu = installDagu({ log });
  res.peers.dagu = dagu.ok
    ? { available: true, version: dagu.version ?? DAGU_VERSION, ...shapes("dagu", (args) => driver("python3", [join(HERE, "peers/dagu_driver.py"), dagu.bin, ...args]), s, { dagu: true }) }
    : { available: false, reason: dagu.reason };
  return res;
}
