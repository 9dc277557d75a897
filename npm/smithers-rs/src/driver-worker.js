// A worker thread that drives runs, one at a time, for an engine that keeps workflow code off
// its own thread (SmithersEngine `isolate`, used by `smithers serve`; see isolation.js). It is
// started for a workflow file, which it loads before a job comes, so that a decision on a run
// of that workflow does not wait for the module to load; after a drive it says whether the
// workflow left anything running in it (`clean`), and only then may it drive again.
//
// Shared with the main thread, without messages (a render that spins cannot send any):
// WATCH[HEARTBEAT] the last time this thread's event loop turned, WATCH[RENDER] when the
// render under way began (0: none), WATCH[OWNED] 1 once the run is this thread's (claimed or
// created), WATCH[DONE] 1 once the drive's outcome is posted.
import { parentPort, workerData } from "node:worker_threads";
import { DONE, HEARTBEAT, HEARTBEAT_MS, OWNED, RENDER } from "./isolation.js";

const watch = new Float64Array(workerData.watch);
const beat = () => {
  watch[HEARTBEAT] = Date.now();
};
beat();
setInterval(beat, HEARTBEAT_MS).unref();

const { SmithersEngine } = await import("./engine.js");
const { describeThrown } = await import("./values.js");
// What a drive needs, loaded before a job comes (a spare waits with it loaded).
await Promise.all([import("./driver.js"), import("./loader/load.js"), import("./loader/warm.js").then((m) => m.warm())]);
if (workerData.preload) {
  // Its failure is the drive's to report, when a job comes.
  await import("./loader/load.js").then(({ loadWorkflow }) => loadWorkflow(workerData.preload)).catch(() => {});
}

/** What this thread has running when idle: a drive that leaves more behind is not `clean`. */
const idle = () => process.getActiveResourcesInfo().sort().join(",");
let baseline = null;
let engine = null;
parentPort.on("message", (message) => {
  if (message.type === "job") drive(message.job);
  else if (message.type === "poke") {
    for (const entry of engine?.driving.values() ?? []) entry.control.poke?.();
  }
});
baseline = idle();
parentPort.postMessage({ type: "ready" });

/** @param {{ kind: "start" | "resume", runId: string, path?: string, input?: unknown, startedBy?: string, force?: boolean, workflowPath?: string, engine: any }} job */
async function drive(job) {
  const post = (message) => {
    try {
      engine?.close();
    } catch {
      // closed already
    }
    engine = null;
    watch[DONE] = 1;
    parentPort.postMessage({ ...message, clean: idle() === baseline });
  };
  try {
    engine = new SmithersEngine({
      ...job.engine,
      // The serving thread makes the spans (one exporter per process, and spans that outlive
      // a worker it stops): the events this drive commits go there, in order, before `done`.
      tracing: job.engine.tracing === "forward" ? { forward: (events, kinds) => parentPort.postMessage({ type: "trace", events, kinds }) } : false,
      mustExist: job.kind === "resume",
      onRender: (on, owned) => {
        watch[RENDER] = on ? Date.now() : 0;
        if (on && owned) watch[OWNED] = 1;
      },
    });
    let result;
    if (job.kind === "start") {
      const { runId, done } = await engine.start(job.path, { input: job.input, runId: job.runId, startedBy: job.startedBy });
      parentPort.postMessage({ type: "started", runId });
      result = await done;
    } else {
      result = await engine.resume(job.runId, { force: job.force, workflow: job.workflowPath ?? undefined });
    }
    post({ type: "done", result });
  } catch (e) {
    const error = describeThrown(e);
    let details = {};
    try {
      details = structuredClone(e?.details ?? {});
    } catch {
      // not cloneable: left out
    }
    post({ type: "error", error: { ...error, details } });
  }
}
