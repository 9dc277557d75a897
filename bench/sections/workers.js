// 8. `smithers worker`: work spread over processes (issue 16).
//
//   a. throughput: 1,000 short runs (two compute tasks each, bench/wf/worker-short.tsx) queued
//      with engine.enqueue, then 1, 2 and 4 `smithers worker` processes (--concurrency 4 each)
//      started on the database; runs/s from the first run a worker took to the last one it
//      finished (both from the workers' own --json log lines), and the wall time from
//      spawning the workers. Every run must finish, each taken once, or the section fails.
//   b. decision latency across processes: one worker drives runs of bench/wf/worker-gate.tsx to
//      their gate; this process approves each (`resume: false`: it only records) and the
//      worker's downstream body writes its start time; p50 / p95 of (body start − approve call).
//      PostgreSQL wakes the worker by LISTEN/NOTIFY; SQLite by its 50 ms poll of data_version.
//
// On PostgreSQL the server is the machine's (scripts/pg-server.sh: initdb + pg_ctl into a temp
// folder, stopped when the suite ends), or $SMITHERS_BENCH_PG_URL. No server binaries: the
// PostgreSQL rows say why and the SQLite ones still run.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { CLI, HERE, ROOT, epochMs, fmt, log, removeDir, sleep, startProcess, stats, tempDir } from "../lib.js";

const SHORT = join(HERE, "wf/worker-short.tsx");
const GATE = join(HERE, "wf/worker-gate.tsx");
const RUNS = 1000;
const WORKERS = [1, 2, 4];
const CONCURRENCY = 4;
const LATENCY_REPS = 30;
const WARMUP = 3;

let schemaN = 0;
function pgUrl() {
  if (process.env.SMITHERS_BENCH_PG_URL) return { url: process.env.SMITHERS_BENCH_PG_URL };
  try {
    const url = execFileSync(join(ROOT, "scripts/pg-server.sh"), [String(process.pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
    return { url };
  } catch (e) {
    return { reason: String(e.stderr ?? e.message).trim().split("\n").pop() };
  }
}
const pgDatabase = (base, tag) => `${base}${base.includes("?") ? "&" : "?"}schema=bench_${tag}_${process.pid}_${schemaN++}`;

const p95 = (values) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] : null;
};

function withEngine(db, fn) {
  const engine = new SmithersEngine({ database: db });
  try {
    return fn(engine);
  } finally {
    engine.close();
  }
}

async function enqueue(db, file, n) {
  const engine = new SmithersEngine({ database: db });
  try {
    for (let i = 0; i < n; i++) await engine.enqueue(file, { input: { n: i } });
  } finally {
    engine.close();
  }
}

function startWorkers(db, count, env = {}) {
  return Array.from({ length: count }, () =>
    startProcess(process.execPath, [CLI, "worker", "--db", db, "--json", "--concurrency", String(CONCURRENCY)], { rss: false, env: { ...process.env, ...env } }),
  );
}

const lines = (w) =>
  w
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));

async function stopWorkers(workers) {
  for (const w of workers) w.child.kill("SIGTERM");
  const ends = await Promise.all(workers.map((w) => w.done));
  ends.forEach((end, i) => {
    if (end.status !== 0) throw new Error(`worker ${i} exited ${end.status ?? end.signal} on SIGTERM: ${end.stderr.slice(-1000)}`);
  });
}

async function waitUntil(fn, what, timeoutMs = 600_000, everyMs = 200) {
  const t0 = performance.now();
  for (;;) {
    if (fn()) return;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function throughput(db, count) {
  await enqueue(db, SHORT, RUNS);
  const t0 = epochMs();
  const workers = startWorkers(db, count);
  try {
    await waitUntil(() => withEngine(db, (e) => e.listRuns({ status: "finished", limit: RUNS + 1 }).length) === RUNS, `${RUNS} runs finished`);
  } finally {
    await stopWorkers(workers);
  }
  const events = workers.map(lines);
  const took = events.flat().filter((e) => e.event === "took");
  const finished = events.flat().filter((e) => e.event === "released" && e.status === "finished");
  if (took.length !== RUNS || new Set(took.map((e) => e.runId)).size !== RUNS) throw new Error(`${took.length} takes for ${RUNS} runs`);
  const first = Math.min(...took.map((e) => Date.parse(e.ts)));
  const last = Math.max(...finished.map((e) => Date.parse(e.ts)));
  return {
    workers: count,
    runs: RUNS,
    wallMs: last - t0,
    busyMs: last - first,
    runsPerS: RUNS / ((last - first) / 1000),
    perWorker: events.map((ev) => ev.filter((e) => e.event === "took").length),
  };
}

async function latency(db, dir) {
  const afterFile = join(dir, `after-${schemaN++}.txt`);
  writeFileSync(afterFile, "");
  const n = LATENCY_REPS + WARMUP;
  await enqueue(db, GATE, n);
  const [worker] = startWorkers(db, 1, { BENCH_AFTER_FILE: afterFile });
  const toBody = [];
  const engine = new SmithersEngine({ database: db });
  try {
    await waitUntil(() => engine.pendingApprovals({ limit: n + 1 }).length === n, `${n} runs at their gate`, 120_000, 50);
    const ids = engine.pendingApprovals({ limit: n }).map((a) => a.runId);
    for (const [i, runId] of ids.entries()) {
      // Parked and let go: the approval below is the only news the worker gets.
      await waitUntil(() => engine.getRun(runId).owner === null, `${runId} released`, 30_000, 5);
      const t0 = epochMs();
      await engine.approve(runId, { decidedBy: "bench", resume: false });
      let at = null;
      await waitUntil(
        () => {
          const line = readFileSync(afterFile, "utf8").split("\n").find((l) => l.startsWith(`${runId} `));
          if (line) at = Number(line.split(" ")[1]);
          return at !== null;
        },
        `the downstream task of ${runId}`,
        30_000,
        1,
      );
      if (i >= WARMUP) toBody.push(at - t0);
    }
  } finally {
    engine.close();
    await stopWorkers([worker]);
  }
  const s = stats(toBody);
  return { reps: toBody.length, p50: s.p50, p95: p95(toBody), max: s.max };
}

export async function run() {
  const dir = tempDir("workers");
  const pg = pgUrl();
  const out = { runs: RUNS, concurrency: CONCURRENCY, stores: {} };
  try {
    for (const store of ["postgres", "sqlite"]) {
      if (store === "postgres" && !pg.url) {
        out.stores.postgres = { available: false, reason: pg.reason };
        log(`workers: PostgreSQL unavailable (${pg.reason})`);
        continue;
      }
      const db = (tag) => (store === "postgres" ? pgDatabase(pg.url, tag) : join(dir, `${tag}-${schemaN++}.db`));
      const rows = [];
      for (const count of WORKERS) {
        log(`workers: ${store}: ${RUNS} short runs, ${count} worker process(es) x ${CONCURRENCY}`);
        const r = await throughput(db(`w${count}`), count);
        log(`workers: ${store}: ${count} worker(s): ${fmt(r.runsPerS)} runs/s (busy ${fmt(r.busyMs)} ms, taken ${r.perWorker.join("/")})`);
        rows.push(r);
      }
      log(`workers: ${store}: ${WARMUP} + ${LATENCY_REPS} decisions in this process -> downstream body in a worker`);
      const lat = await latency(db("lat"), dir);
      log(`workers: ${store}: decision -> downstream body p50 ${fmt(lat.p50)} p95 ${fmt(lat.p95)} ms`);
      out.stores[store] = { available: true, throughput: rows, latency: lat };
    }
    return out;
  } finally {
    removeDir(dir);
  }
}

/** `## 8.` of BENCHMARKS.md. */
export function render(w) {
  const out = ["\n## 9. Workers: runs spread over `smithers worker` processes\n"];
  out.push(
    `${w.runs.toLocaleString("en-US")} short runs (two compute tasks each) queued with \`engine.enqueue\`, then N \`smithers worker\` processes (\`--concurrency ${w.concurrency}\`) on the database. ` +
      "runs/s: from the first run a worker took to the last it finished (the workers' log lines); wall: from spawning the workers. " +
      "Decision → downstream: this process records an approval (`resume: false`), a worker process starts the downstream task (p50 / p95).\n",
  );
  const rows = [];
  for (const [store, s] of Object.entries(w.stores)) {
    if (!s.available) {
      rows.push([store, "–", "–", "–", "–", `unavailable: ${s.reason}`]);
      continue;
    }
    for (const r of s.throughput) rows.push([store, String(r.workers), fmt(r.runsPerS), fmt(r.wallMs / 1000), r.perWorker.join(" / "), ""]);
    rows.push([store, "1", "", "", "", `decision → downstream p50 ${fmt(s.latency.p50)} ms, p95 ${fmt(s.latency.p95)} ms (${s.latency.reps})`]);
  }
  out.push(["| store | workers | runs/s | wall s | runs taken per worker | |", "|---|---|---|---|---|---|", ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n"));
  return out.join("\n");
}
