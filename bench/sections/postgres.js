// 8. PostgreSQL next to SQLite (issue 16): the per-node overhead of a <Sequence> of 1,000
// static and of 1,000 compute tasks, and in-process approve -> downstream task started, on a
// throwaway PostgreSQL server of the bench's own (scripts/pg-server.sh: initdb into a temporary
// folder, a free loopback port, durability off as for the tests — fsync and synchronous_commit
// off — stopped when this process ends) and on a SQLite file, interleaved repetition by
// repetition so both see the same machine load. Each repetition gets a fresh database (a new
// schema on the server, a new file).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { HERE, fmt, log, removeDir, stats, tempDir } from "../lib.js";
import { approvalThenTask, manyTasks } from "../workflows.js";

const N = 1000;
export const CASES = [
  { kind: "static", shape: "sequence", label: "Sequence, static tasks" },
  { kind: "compute", shape: "sequence", label: "Sequence, compute tasks" },
];

let server = null;
/** The server's URL ($SMITHERS_BENCH_PG_URL, else one started for this process). */
function pgServer() {
  if (server) return server;
  if (process.env.SMITHERS_BENCH_PG_URL) {
    server = { url: process.env.SMITHERS_BENCH_PG_URL, how: "$SMITHERS_BENCH_PG_URL" };
    return server;
  }
  const url = execFileSync(join(HERE, "../scripts/pg-server.sh"), [String(process.pid)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
  server = { url, how: "scripts/pg-server.sh (fsync=off, synchronous_commit=off)" };
  return server;
}

let n = 0;
/** A fresh database of `store`: a new schema, or a new file in `dir`. */
function database(store, dir) {
  n += 1;
  if (store === "sqlite") return join(dir, `bench-${n}.db`);
  const { url } = pgServer();
  return `${url}${url.includes("?") ? "&" : "?"}schema=bench_${process.pid}_${n}`;
}

async function runOnce(store, kind, shape, size) {
  const dir = tempDir("pg-pernode");
  try {
    const engine = new SmithersEngine({ database: database(store, dir) });
    const t0 = performance.now();
    const result = await engine.run(manyTasks(kind, shape, size));
    const ms = performance.now() - t0;
    engine.close();
    if (result.status !== "finished") throw new Error(`${store} ${shape}/${kind} N=${size}: run ended ${result.status} ${JSON.stringify(result.error ?? {})}`);
    return ms;
  } finally {
    removeDir(dir);
  }
}

/** approve -> downstream body started and -> run finished, `runs` times after `warmup`. */
async function approveLatency(store, warmup, runs) {
  const dir = tempDir("pg-approve");
  try {
    const engine = new SmithersEngine({ database: database(store, dir) });
    const bodyAt = new Map();
    const workflow = approvalThenTask((runId) => bodyAt.set(runId, performance.now()));
    const toBody = [];
    const toDone = [];
    for (let i = 0; i < warmup + runs; i++) {
      const { runId, done } = await engine.start(workflow);
      const parked = await done;
      if (parked.status !== "waiting-approval") throw new Error(`${store}: run ${runId} did not park: ${parked.status}`);
      const t0 = performance.now();
      const outcome = await engine.approve(runId, { decidedBy: "bench" });
      const r = await outcome.done;
      const t1 = performance.now();
      if (r.status !== "finished" || !bodyAt.has(runId)) throw new Error(`${store}: run ${runId} did not finish after approve: ${r.status}`);
      if (i >= warmup) {
        toBody.push(bodyAt.get(runId) - t0);
        toDone.push(t1 - t0);
      }
    }
    engine.close();
    return { toBody: stats(toBody), toDone: stats(toDone) };
  } finally {
    removeDir(dir);
  }
}

export async function run({ full }) {
  const { url, how } = pgServer();
  let version = "PostgreSQL (version unknown: no psql)";
  try {
    version = execFileSync("psql", ["--version"], { encoding: "utf8" }).trim();
  } catch {}
  log(`postgres: server ${url.replace(/:[^:@/]*@/, "@")} (${how}); ${version}`);
  const reps = full ? 7 : 3;
  log("postgres: warm-up");
  for (const store of ["sqlite", "postgres"]) await runOnce(store, "compute", "sequence", 100);
  const rows = [];
  for (const c of CASES) {
    const times = { sqlite: [], postgres: [] };
    for (let i = 0; i < reps; i++) {
      for (const store of ["sqlite", "postgres"]) times[store].push(await runOnce(store, c.kind, c.shape, N));
    }
    for (const store of ["sqlite", "postgres"]) {
      const row = { ...c, store, n: N, total: stats(times[store]), perNode: stats(times[store].map((t) => t / N)) };
      rows.push(row);
      log(`postgres: ${c.label} N=${N} on ${store}: ${fmt(row.perNode.median)} ms/node (median of ${reps}, total ${fmt(row.total.median)} ms)`);
    }
  }
  const approveRuns = full ? 200 : 50;
  const approve = {};
  for (const store of ["sqlite", "postgres"]) {
    approve[store] = await approveLatency(store, 10, approveRuns);
    log(`postgres: approve -> downstream body on ${store}: p50 ${fmt(approve[store].toBody.p50)} ms, p99 ${fmt(approve[store].toBody.p99)} ms; -> finished p50 ${fmt(approve[store].toDone.p50)} ms`);
  }
  return { server: how, version, n: N, reps, rows, approveRuns, approve };
}
