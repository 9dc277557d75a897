// The run driver: renders the workflow, submits graphs to the core, runs compute task
// bodies, reports their results. The core decides everything else (ARCHITECTURE.md).
import { SmithersError } from "./errors.js";
import { computeArgs, renderWorkflow } from "./render.js";

const TERMINAL = new Set(["finished", "failed", "cancelled"]);
/** How often a driver with bodies in flight looks for decisions made by other processes. */
const DECISION_POLL_MS = 25;

/**
 * Drives one claimed run until it finishes, fails, is cancelled, or waits for a decision.
 * @param {import("./native.js").NativeEngine} native
 * @param {any} workflow value of `smithers(build)`
 * @param {any} snapshot from createRun / claimRun
 * @param {{ afterCall?: () => void, control?: { poke?: () => void } }} [hooks]
 * @returns {Promise<{ runId: string, status: string, error?: any }>}
 */
export async function driveRun(native, workflow, snapshot, hooks = {}) {
  const runId = snapshot.runId;
  if (TERMINAL.has(snapshot.status)) return result(runId, snapshot.status, snapshot.error);
  const after = hooks.afterCall ?? (() => {});
  const call = (method, ...args) => {
    try {
      return native.call(method, ...args);
    } finally {
      after();
    }
  };

  const outputs = new Map();
  const keyOf = (row) => `${row.table}\u0000${row.nodeId}\u0000${row.iteration}`;
  for (const row of snapshot.outputs ?? []) outputs.set(keyOf(row), row);
  const loops = { ...(snapshot.loops ?? {}) };
  const nodeLoops = { ...(snapshot.nodeLoops ?? {}) };
  let rendered = null;

  const render = () => {
    try {
      rendered = renderWorkflow(workflow, {
        runId,
        input: snapshot.input,
        loops,
        nodeLoops,
        outputs: [...outputs.values()],
      });
      collectNodeLoops(rendered.graph.root, null, nodeLoops);
      return call("submitGraph", runId, JSON.stringify(rendered.graph));
    } catch (e) {
      // A workflow that cannot be rendered (or whose graph the core refuses) fails the run,
      // with the code of the error; nothing else is written.
      const error = { code: e?.code ?? "RENDER_FAILED", message: String(e?.message ?? e) };
      call("failRun", runId, JSON.stringify(error));
      throw e instanceof SmithersError ? e : new SmithersError(error.code, error.message);
    }
  };

  // Results of finished task bodies, reported to the core in batches.
  const results = [];
  let inFlight = 0;
  let wake = null;
  let poked = false;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  if (hooks.control) {
    hooks.control.poke = () => {
      poked = true;
      notify();
    };
  }

  const start = (task) => {
    const fn = rendered?.computeFns.get(task.nodeId);
    inFlight += 1;
    runBody(fn, rendered?.ctx, task).then((r) => {
      inFlight -= 1;
      results.push(r);
      notify();
    });
  };

  let step = render();
  for (;;) {
    for (const row of step.outputs) {
      outputs.set(keyOf(row), row);
      rendered?.addOutput(row);
    }
    Object.assign(loops, step.loops);
    for (const task of step.tasks) start(task);
    if (TERMINAL.has(step.status) || step.status === "waiting-approval") {
      return result(runId, step.status, step.error);
    }
    if (step.needsRender) {
      step = render();
      continue;
    }
    if (results.length === 0 && !poked) {
      if (inFlight === 0) {
        // Nothing runs and the core asks for nothing: only a decision can move the run.
        step = call("advance", runId);
        if (step.tasks.length === 0 && !step.needsRender && step.status === "running") {
          return result(runId, "running", { code: "RUN_IDLE", message: "the run has nothing to do" });
        }
        continue;
      }
      // While bodies run, watch for commits by other processes (a CLI decision on one of
      // this run's gates): PRAGMA data_version changes only then, and costs microseconds.
      const seen = native.raw.dataVersion();
      const watch = setInterval(() => {
        if (native.raw.dataVersion() !== seen) {
          poked = true;
          notify();
        }
      }, DECISION_POLL_MS);
      watch.unref?.();
      await new Promise((resolve) => {
        wake = resolve;
      });
      clearInterval(watch);
    }
    // Let bodies that settle in the same turn join this batch.
    await new Promise((resolve) => setImmediate(resolve));
    poked = false;
    const batch = results.splice(0);
    step = batch.length > 0 ? call("completeTasks", runId, JSON.stringify(batch)) : call("advance", runId);
  }
}

function result(runId, status, error) {
  return error ? { runId, status, error } : { runId, status };
}

async function runBody(fn, ctx, task) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  if (typeof fn !== "function") {
    return { ...base, ok: false, error: { code: "TASK_BODY_MISSING", message: `no compute body for ${task.nodeId}` } };
  }
  let timer;
  try {
    let value = fn(...computeArgs(ctx));
    if (task.timeoutMs != null) {
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new SmithersError("TASK_TIMEOUT", `${task.nodeId} timed out after ${task.timeoutMs} ms`)),
          task.timeoutMs,
        );
      });
      value = await Promise.race([value, timeout]);
    } else {
      value = await value;
    }
    return { ...base, ok: true, value: value === undefined ? null : value };
  } catch (e) {
    return {
      ...base,
      ok: false,
      error: { code: e?.code ?? null, name: e?.name ?? null, message: String(e?.message ?? e), stack: e?.stack ?? null },
    };
  } finally {
    clearTimeout(timer);
  }
}

function collectNodeLoops(node, loopId, out) {
  if (node.kind === "task") {
    if (loopId) out[node.id] = loopId;
    return;
  }
  const inner = node.kind === "loop" ? node.id : loopId;
  for (const child of node.children ?? []) collectNodeLoops(child, inner, out);
}
