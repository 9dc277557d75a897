// 2a. In-process decision latency: engine.approve(runId) -> the downstream task's body starts,
// and -> the run finished; with the breakdown record-only / resume.
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { fmt, log, removeDir, stats, tempDir } from "../lib.js";
import { approvalThenTask } from "../workflows.js";

export async function run() {
  const dir = tempDir("approve");
  try {
    const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
    const bodyAt = new Map();
    const workflow = approvalThenTask((runId) => bodyAt.set(runId, performance.now()));
    const park = async () => {
      const { runId, done } = await engine.start(workflow);
      const r = await done;
      if (r.status !== "waiting-approval") throw new Error(`run ${runId} did not park: ${r.status}`);
      return runId;
    };
    const WARMUP = 20;
    const N = 200;
    const toBody = [];
    const toDone = [];
    const parkMs = [];
    log(`approve: ${WARMUP} warm-up + ${N} runs, approve with resume`);
    for (let i = 0; i < WARMUP + N; i++) {
      const p0 = performance.now();
      const runId = await park();
      const p1 = performance.now();
      const t0 = performance.now();
      const outcome = await engine.approve(runId, { decidedBy: "bench" });
      const r = await outcome.done;
      const t1 = performance.now();
      if (r.status !== "finished" || !bodyAt.has(runId)) throw new Error(`run ${runId} did not finish after approve: ${r.status}`);
      if (i >= WARMUP) {
        parkMs.push(p1 - p0);
        toBody.push(bodyAt.get(runId) - t0);
        toDone.push(t1 - t0);
      }
    }
    const M = 100;
    const recordMs = [];
    const resumeToBody = [];
    log(`approve: ${M} runs, record only then engine.resume (breakdown)`);
    for (let i = 0; i < M; i++) {
      const runId = await park();
      const t0 = performance.now();
      await engine.approve(runId, { decidedBy: "bench", resume: false });
      const t1 = performance.now();
      const r = await engine.resume(runId);
      if (r.status !== "finished") throw new Error(`run ${runId}: ${r.status} after resume`);
      recordMs.push(t1 - t0);
      resumeToBody.push(bodyAt.get(runId) - t1);
    }
    engine.close();
    const out = { n: N, toBody: stats(toBody), toDone: stats(toDone), park: stats(parkMs), record: stats(recordMs), resumeToBody: stats(resumeToBody) };
    log(`approve: approve -> downstream body p50 ${fmt(out.toBody.p50)} ms, p99 ${fmt(out.toBody.p99)} ms; -> run finished p50 ${fmt(out.toDone.p50)} ms`);
    return out;
  } finally {
    removeDir(dir);
  }
}
