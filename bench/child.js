// Engine processes for the "many waiting runs" figures, each run by bench/run.js as its own
// process (so its memory is its own) and printing one JSON line:
//
//   node --expose-gc bench/child.js create <db> <n>       start n runs of wf/approval.js; each parks at its gate
//   node --expose-gc bench/child.js hold <db> <n>         an engine on a database where n runs wait: list pages, memory
//   node --expose-gc bench/child.js approve-all <db> <record|resume>   approve every pending gate
//   node bench/child.js resume <db> <runId> <workflow file>   resume a run (the file loaded first, untimed)
//   node bench/child.js live <db> <runs> <after file>    runs that wait at a gate while a task runs beside it
// The live modes print "ready <runId>" when the gate waits; the body of "after" appends
// "<runId> <epoch ms>" to the after file (live) when a decision from elsewhere reaches it.
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { SmithersEngine, loadWorkflow } from "../npm/smithers-rs/src/index.js";
import { HERE, epochMs, stats } from "./lib.js";
import { approvalBesideTask } from "./workflows.js";

const APPROVAL_WF = join(HERE, "wf/approval.js");
const DEADLINE_WF = join(HERE, "wf/deadline.js");
const MB = 2 ** 20;

function memory() {
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rssMB: m.rss / MB, heapTotalMB: m.heapTotal / MB, heapUsedMB: m.heapUsed / MB, externalMB: m.external / MB };
}

/** Repeats fn (after one untimed call) and returns the stats of its duration in ms. */
function timed(reps, fn) {
  fn();
  const ms = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return stats(ms);
}

async function create(db, n, file = APPROVAL_WF) {
  const { default: workflow } = await import(file);
  const engine = new SmithersEngine({ dbPath: db });
  const before = memory();
  // Preallocated: this process's memory is measured, the harness should not grow with n.
  const perRun = new Float64Array(n);
  const samples = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    const { runId, done } = await engine.start(workflow, { workflowPath: file });
    const r = await done;
    perRun[i] = performance.now() - s;
    if (r.status !== "waiting-approval") throw new Error(`run ${runId} did not park: ${r.status}`);
    if ((i + 1) % Math.max(1, Math.floor(n / 5)) === 0) samples.push({ runs: i + 1, ...memory() });
  }
  const totalMs = performance.now() - t0;
  const after = memory();
  const trackedWorkflows = engine.workflows.size;
  engine.close();
  return { n, totalMs, perRun: stats(perRun), before, after, samples, trackedWorkflows };
}

async function hold(db, n) {
  const base = memory();
  const t0 = performance.now();
  const engine = new SmithersEngine({ dbPath: db });
  const openMs = performance.now() - t0;
  const opened = memory();
  const firstPage = engine.pendingApprovals({ limit: 50 });
  if (firstPage.length !== Math.min(50, n)) throw new Error(`first page holds ${firstPage.length} approvals, expected ${Math.min(50, n)}`);
  const reps = 30;
  const out = {
    n,
    openMs,
    pageFirst: timed(reps, () => engine.pendingApprovals({ limit: 50 })),
    pageLast: timed(reps, () => engine.pendingApprovals({ limit: 50, offset: Math.max(0, n - 50) })),
    runsPage: timed(reps, () => engine.listRuns({ status: "waiting-approval", limit: 50 })),
    // Every status at once (the inbox's "all" tab, `GET /v1/approvals?status=all`).
    pageAllFirst: timed(reps, () => engine.pendingApprovals({ status: "all", limit: 50 })),
  };
  // The last page through the keyset cursor (`after`: the row before it), as the inbox and
  // the API page: its cost should not grow with the depth, unlike `offset`.
  const before = n > 50 ? engine.pendingApprovals({ limit: 1, offset: n - 51 })[0] : null;
  if (before) {
    const after = { requestedAtMs: before.requestedAtMs, runId: before.runId, nodeId: before.nodeId, iteration: before.iteration };
    out.pageKeysetLast = timed(reps, () => engine.pendingApprovals({ limit: 50, after }));
    out.pageKeysetLastRows = engine.pendingApprovals({ limit: 50, after }).length;
  }
  out.pageLastRows = engine.pendingApprovals({ limit: 50, offset: Math.max(0, n - 50) }).length;
  out.base = base;
  out.opened = opened;
  out.after = memory();
  engine.close();
  return out;
}

async function approveAll(db, mode) {
  const engine = new SmithersEngine({ dbPath: db });
  const before = memory();
  // Every pending gate, a page of 10,000 at a time (the core's largest page).
  const ids = [];
  const t0 = performance.now();
  for (let offset = 0; ; offset += 10_000) {
    const page = engine.pendingApprovals({ limit: 10_000, offset });
    for (const a of page) ids.push(a.runId);
    if (page.length < 10_000) break;
  }
  const listMs = performance.now() - t0;
  const resume = mode === "resume";
  const recordMs = new Float64Array(ids.length);
  const doneMs = new Float64Array(resume ? ids.length : 0);
  const samples = [];
  const t1 = performance.now();
  for (const [i, runId] of ids.entries()) {
    if ((i + 1) % Math.max(1, Math.floor(ids.length / 5)) === 0) samples.push({ runs: i + 1, ...memory() });
    const s = performance.now();
    const outcome = await engine.approve(runId, { decidedBy: "bench", resume });
    const r = performance.now();
    recordMs[i] = r - s;
    if (resume) {
      const result = await outcome.done;
      if (result.status !== "finished") throw new Error(`run ${runId}: ${result.status} after approve`);
      doneMs[i] = performance.now() - s;
    }
  }
  const totalMs = performance.now() - t1;
  const after = memory();
  const left = engine.pendingApprovals({ limit: 10 }).length;
  const trackedWorkflows = engine.workflows.size;
  engine.close();
  return { mode, n: ids.length, listMs, totalMs, record: stats(recordMs), done: stats(doneMs), before, after, samples, left, trackedWorkflows };
}

async function resume(db, runId, file) {
  const workflow = await loadWorkflow(file);
  const engine = new SmithersEngine({ dbPath: db });
  const t0 = performance.now();
  const startedAt = performance.timeOrigin + t0;
  const result = await engine.resume(runId, { workflow });
  const resumeMs = performance.now() - t0;
  engine.close();
  return { runId, status: result.status, resumeMs, startedAt, pid: process.pid };
}

async function live(db, runs, afterFile) {
  const release = new Map();
  const workflow = approvalBesideTask(
    (runId) => {
      appendFileSync(afterFile, `${runId} ${epochMs().toFixed(3)}\n`);
      release.get(runId)?.();
    },
    // "hold" ends when "after" has run, or after 20 s (the run then finishes without it). The
    // timer is what keeps this process alive meanwhile: the driver's own poll timer does not.
    (runId) => new Promise((resolve) => {
      const timer = setTimeout(resolve, 20_000);
      release.set(runId, () => {
        clearTimeout(timer);
        resolve();
      });
    }),
  );
  const engine = new SmithersEngine({ dbPath: db });
  engine.on("ApprovalRequested", (e) => process.stdout.write(`ready ${e.runId}\n`));
  const statuses = {};
  for (let i = 0; i < runs; i++) {
    const r = await engine.run(workflow, { runId: `live${i}` });
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  }
  engine.close();
  return { runs, statuses };
}

/**
 * Fires every due timer of the database (run with SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS past the
 * deadlines), without resuming the runs: the cost of the fires alone, in batches of 100.
 */
async function fireAll(db, n) {
  const engine = new SmithersEngine({ dbPath: db });
  const before = memory();
  const batches = [];
  let fired = 0;
  const t0 = performance.now();
  for (;;) {
    const s = performance.now();
    const batch = engine.native.fireDueTimers(100);
    if (batch.length === 0) break;
    batches.push((performance.now() - s) / batch.length);
    fired += batch.length;
    if (fired % Math.max(100, Math.floor(n / 5)) < 100) globalThis.gc?.();
  }
  const totalMs = performance.now() - t0;
  const after = memory();
  const left = engine.native.nextTimerDue();
  const denied = engine.listRuns({ status: "running", limit: 1 }).length;
  engine.close();
  return { n, fired, totalMs, perTimer: stats(batches), before, after, left, denied };
}

const [mode, db, arg, arg2] = process.argv.slice(2);
let out;
if (mode === "create") out = await create(db, Number(arg));
else if (mode === "create-deadline") out = await create(db, Number(arg), DEADLINE_WF);
else if (mode === "fire-all") out = await fireAll(db, Number(arg));
else if (mode === "hold") out = await hold(db, Number(arg));
else if (mode === "approve-all") out = await approveAll(db, arg ?? "resume");
else if (mode === "resume") out = await resume(db, arg, arg2);
else if (mode === "live") out = await live(db, Number(arg), arg2);
else {
  console.error("usage: node --expose-gc bench/child.js create|hold|approve-all <db> <arg>");
  process.exit(4);
}
console.log(JSON.stringify(out));
