// In-process measurements on the peer (Smithers 0.32), through its public API
// (`runWorkflow`, `approveNode`), the twin of what bench/run.js does with SmithersEngine.
// Run by bench/peer.js with bun, in a fresh working directory (the peer's database is
// ./smithers.db there). Prints one JSON line.
//
//   bun driver.ts pernode <seq|par> <static|compute> <n> <reps>
//       one warm-up run (n = 10), then `reps` runs of n tasks: wall of runWorkflow, and the
//       engine time the peer records (finished_at_ms - started_at_ms)
//   bun driver.ts approve <runs> <warmup>
//       each run parks at the gate; t0 just before approveNode; the run is resumed with
//       runWorkflow({ resume: true }); the body of "after" records when it starts
//   bun driver.ts park <runs> <prefix>
//       start runs that each park at the gate (a database for the CLI figures)
import { Database } from "bun:sqlite";
import { resolve } from "node:path";
import { Effect } from "effect";
import { approveNode, runWorkflow } from "smithers-orchestrator";
import { SmithersDb } from "@smithers-orchestrator/db/adapter";

const HERE = import.meta.dir;
const [mode, ...rest] = process.argv.slice(2);

async function load(name: string) {
  const path = resolve(HERE, name);
  const mod = await import(path);
  return { wf: mod.default, path };
}

function run(wf: any, options: Record<string, unknown>): Promise<any> {
  // 0.32.0: runWorkflow returns an Effect (its docs still show a Promise).
  return Effect.runPromise(runWorkflow(wf, options as any) as any);
}

function engineMs(runId: string): number | null {
  const db = new Database("smithers.db", { readonly: true });
  try {
    const row = db.query("SELECT started_at_ms AS s, finished_at_ms AS f FROM _smithers_runs WHERE run_id = ?").get(runId) as any;
    return row && row.f != null && row.s != null ? row.f - row.s : null;
  } finally {
    db.close();
  }
}

async function pernode(shape: string, kind: string, n: number, reps: number) {
  const { wf, path } = await load(shape === "par" ? "par.tsx" : "seq.tsx");
  const options = (runId: string, size: number) => ({
    input: { n: size, kind },
    runId,
    workflowPath: path,
    // As the CLI figures with `--max-concurrency N`: concurrency never limits the fan-out.
    ...(shape === "par" ? { maxConcurrency: size } : {}),
  });
  const warm = await run(wf, options("warmup", 10));
  if (warm.status !== "finished") throw new Error(`warm-up run ended ${warm.status}`);
  const runs = [];
  for (let r = 0; r < reps; r++) {
    const runId = `r${r}`;
    const t0 = performance.now();
    const result = await run(wf, options(runId, n));
    const wallMs = performance.now() - t0;
    if (result.status !== "finished") throw new Error(`${runId} ended ${result.status}`);
    runs.push({ wallMs, engineMs: engineMs(runId) });
  }
  return { shape, kind, n, runs, rssMB: process.memoryUsage().rss / 2 ** 20 };
}

async function approve(count: number, warmup: number) {
  const { wf, path } = await load("gate.tsx");
  const bodyAt = new Map<string, number>();
  (globalThis as any).__benchAfter = (runId: string) => bodyAt.set(runId, performance.now());
  const adapter = new SmithersDb(wf.db);
  const samples = [];
  for (let i = 0; i < warmup + count; i++) {
    const runId = `a${i}`;
    const p0 = performance.now();
    const parked = await run(wf, { input: {}, runId, workflowPath: path });
    const p1 = performance.now();
    if (parked.status !== "waiting-approval") throw new Error(`${runId} did not park: ${parked.status}`);
    const t0 = performance.now();
    await Effect.runPromise(approveNode(adapter, runId, "gate", 0, undefined, "bench") as any);
    const t1 = performance.now();
    const done = await run(wf, { input: {}, runId, workflowPath: path, resume: true });
    const t2 = performance.now();
    if (done.status !== "finished" || !bodyAt.has(runId)) throw new Error(`${runId} after approve: ${done.status}`);
    if (i >= warmup) {
      samples.push({ parkMs: p1 - p0, recordMs: t1 - t0, toBodyMs: bodyAt.get(runId)! - t0, toDoneMs: t2 - t0 });
    }
  }
  return { runs: count, samples };
}

async function park(count: number, prefix: string) {
  const { wf, path } = await load("gate.tsx");
  const perRunMs = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const s = performance.now();
    const r = await run(wf, { input: {}, runId: `${prefix}${i}`, workflowPath: path });
    if (r.status !== "waiting-approval") throw new Error(`${prefix}${i} did not park: ${r.status}`);
    perRunMs.push(performance.now() - s);
  }
  return { runs: count, totalMs: performance.now() - t0, perRunMs };
}

let out;
if (mode === "pernode") out = await pernode(rest[0], rest[1], Number(rest[2]), Number(rest[3]));
else if (mode === "approve") out = await approve(Number(rest[0]), Number(rest[1] ?? 3));
else if (mode === "park") out = await park(Number(rest[0]), rest[1] ?? "p");
else throw new Error(`usage: bun driver.ts pernode|approve|park ...`);
console.log(JSON.stringify(out));
// Smithers keeps runtime fibers alive after a run; end the process explicitly.
process.exit(0);
