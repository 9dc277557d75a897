// 2b. Decision latency across processes: from starting `smithers approve` in one process to
// the downstream task's body starting, p50/p99. Times are epoch milliseconds taken in each
// process (performance.timeOrigin + performance.now()), the same clock on one machine.
//
//   a. `smithers approve <run>` with resume: the approving process itself resumes the run
//      (loads the workflow file recorded on the run) - what works today with nothing else running.
//   b. an engine process still drives the run (a task runs beside the gate) and the decision
//      is recorded by `smithers approve --no-resume` in another process: the driver sees the
//      commit (PRAGMA data_version, polled every 25 ms) and moves on.
//   c. the run is parked (nothing runs) and `smithers serve` runs on the database: serve's
//      watcher sees the commit (PRAGMA data_version on a connection of its own, polled every
//      20 ms), finds the run running with no owner, and resumes it.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, HERE, epochMs, fmt, log, measureProcess, removeDir, sleep, startProcess, stats, tempDir, waitForLine } from "../lib.js";
import { createParked, pendingRunIds } from "./cli.js";

const CHILD = join(HERE, "child.js");

function afterTimes(file) {
  const m = new Map();
  if (!existsSync(file)) return m;
  for (const line of readFileSync(file, "utf8").split("\n").filter(Boolean)) {
    const [runId, at] = line.split(" ");
    m.set(runId, Number(at));
  }
  return m;
}

async function waitFor(fn, timeoutMs = 10_000) {
  const t0 = performance.now();
  for (;;) {
    const v = fn();
    if (v != null) return v;
    if (performance.now() - t0 > timeoutMs) return null;
    await sleep(1);
  }
}

export async function run() {
  const REPS = 20;
  const WARMUP = 2;
  const dir = tempDir("crossproc");
  try {
    // a. approve with resume, in its own process.
    const db = join(dir, "a.db");
    const afterFile = join(dir, "after-a.txt");
    writeFileSync(afterFile, "");
    createParked(db, REPS + WARMUP);
    const ids = pendingRunIds(db, REPS + WARMUP);
    const withResume = [];
    log(`crossproc: ${WARMUP} + ${REPS} x smithers approve (with resume) -> downstream body`);
    for (const [i, runId] of ids.entries()) {
      const t0 = epochMs();
      const p = measureProcess(process.execPath, [CLI, "approve", runId, "--by", "bench", "--db", db], { env: { ...process.env, BENCH_AFTER_FILE: afterFile } });
      if (p.status !== 0) throw new Error(`smithers approve ${runId} exited ${p.status}: ${p.stderr}`);
      const at = afterTimes(afterFile).get(runId);
      if (at == null) throw new Error(`the downstream task of ${runId} did not run`);
      if (i >= WARMUP) withResume.push({ toBody: at - t0, wall: p.wallMs });
    }

    // b. a live engine drives the run; the decision comes from another process.
    const dbB = join(dir, "b.db");
    const afterB = join(dir, "after-b.txt");
    writeFileSync(afterB, "");
    log(`crossproc: ${WARMUP} + ${REPS} x smithers approve --no-resume while an engine process drives the run`);
    const live = startProcess(process.execPath, [CHILD, "live", dbB, String(REPS + WARMUP), afterB], { rss: false });
    const toLive = [];
    for (let i = 0; i < REPS + WARMUP; i++) {
      const runId = `live${i}`;
      await waitForLine(live, new RegExp(`^ready ${runId}$`, "m"));
      const t0 = epochMs();
      const p = measureProcess(process.execPath, [CLI, "approve", runId, "--no-resume", "--by", "bench", "--db", dbB]);
      if (p.status !== 0) throw new Error(`smithers approve ${runId} --no-resume exited ${p.status}: ${p.stderr}`);
      const at = await waitFor(() => afterTimes(afterB).get(runId));
      if (at == null) throw new Error(`the live engine did not pick up the decision on ${runId} within 10 s`);
      if (i >= WARMUP) toLive.push({ toBody: at - t0, wall: p.wallMs, printed: p.stdout.trim().split("\n").pop() });
    }
    const liveEnd = await live.done;
    if (liveEnd.status !== 0) throw new Error(`live engine process exited ${liveEnd.status}: ${liveEnd.stderr}`);

    // c. parked runs, and `smithers serve` on the database.
    const dbC = join(dir, "c.db");
    const afterC = join(dir, "after-c.txt");
    writeFileSync(afterC, "");
    createParked(dbC, REPS + WARMUP);
    const idsC = pendingRunIds(dbC, REPS + WARMUP);
    log(`crossproc: ${WARMUP} + ${REPS} x smithers approve --no-resume while smithers serve runs on the database`);
    const serve = startProcess(process.execPath, [CLI, "serve", "--db", dbC, "--port", "0", "--quiet"], {
      rss: false,
      env: { ...process.env, BENCH_AFTER_FILE: afterC },
    });
    const toServe = [];
    try {
      await waitForLine(serve, /^smithers serve: http/m);
      for (const [i, runId] of idsC.entries()) {
        const t0 = epochMs();
        const p = measureProcess(process.execPath, [CLI, "approve", runId, "--no-resume", "--by", "bench", "--db", dbC]);
        if (p.status !== 0) throw new Error(`smithers approve ${runId} --no-resume exited ${p.status}: ${p.stderr}`);
        const at = await waitFor(() => afterTimes(afterC).get(runId));
        if (at == null) throw new Error(`smithers serve did not pick up the decision on ${runId} within 10 s: ${serve.output()}`);
        if (i >= WARMUP) toServe.push({ toBody: at - t0, wall: p.wallMs });
      }
    } finally {
      serve.child.kill("SIGTERM");
    }
    const serveEnd = await serve.done;
    if (serveEnd.status !== 0) throw new Error(`smithers serve exited ${serveEnd.status} on SIGTERM: ${serveEnd.stderr}`);

    const out = {
      reps: REPS,
      withResume: { toBody: stats(withResume.map((x) => x.toBody)), wall: stats(withResume.map((x) => x.wall)) },
      liveEngine: { toBody: stats(toLive.map((x) => x.toBody)), wall: stats(toLive.map((x) => x.wall)), printed: toLive[0]?.printed },
      serve: { toBody: stats(toServe.map((x) => x.toBody)), wall: stats(toServe.map((x) => x.wall)) },
    };
    log(`crossproc: approve (resume) -> body p50 ${fmt(out.withResume.toBody.p50)} p99 ${fmt(out.withResume.toBody.p99)} ms; live engine: p50 ${fmt(out.liveEngine.toBody.p50)} p99 ${fmt(out.liveEngine.toBody.p99)} ms; serve: p50 ${fmt(out.serve.toBody.p50)} p99 ${fmt(out.serve.toBody.p99)} ms`);
    return out;
  } finally {
    removeDir(dir);
  }
}
