// The run driver: renders the workflow, submits graphs to the core, runs compute task
// bodies, reports their results. The core decides everything else (ARCHITECTURE.md).
import { join } from "node:path";
import { runAgentTask } from "./agents/task.js";
import { SmithersError } from "./errors.js";
import { runCommand } from "./native.js";
import { renderWorkflow } from "./render.js";
import { ensureWorktree } from "./worktree.js";

const TERMINAL = new Set(["finished", "failed", "cancelled"]);
/** How often a driver with bodies in flight looks for decisions made by other processes. */
const DECISION_POLL_MS = 25;
/** A wait/failure handler that runs longer than this is stopped (and logged as failed). */
const HANDLER_TIMEOUT_MS = 60_000;

/**
 * Records a new run of a workflow, owned by this engine, and returns its first snapshot. A
 * dry render comes first: a malformed workflow is refused before anything is written.
 * @param {import("./native.js").NativeEngine} native
 * @param {any} workflow
 * @param {{ runId?: string, input: unknown, workflowPath: string | null }} options
 */
export function createRun(native, workflow, { runId, input, workflowPath, startedBy }) {
  const probe = renderWorkflow(workflow, { runId: runId ?? "", input, loops: {}, nodeLoops: {}, outputs: [], workflowPath });
  native.call("validateGraph", JSON.stringify(probe.graph));
  return native.call(
    "createRun",
    JSON.stringify({ runId, workflowName: probe.graph.workflow.name, workflowPath, input, inputSchema: workflow.inputSchema ?? undefined, startedBy }),
  );
}

/**
 * Drives one claimed run until it finishes, fails, is cancelled, or waits for a decision.
 * @param {import("./native.js").NativeEngine} native
 * @param {any} workflow value of `smithers(build)`
 * @param {any} snapshot from createRun / claimRun
 * @param {{ afterCall?: () => void, control?: { poke?: () => void } }} [hooks]
 * @returns {Promise<{ runId: string, status: string, error?: any }>}
 */
export async function driveRun(native, workflow, snapshot, hooks = {}) {
  const outcome = await drive(native, workflow, snapshot, hooks);
  const handlers = outcome.rendered?.handlers ?? {};
  const { runId, status, error } = outcome.result;
  // Each time the run starts waiting (this driver parked it), and once when it fails.
  if (status === "waiting-approval" && handlers.onWait) {
    await runHandler(native, outcome.rendered, "onWait", handlers.onWait, runId, {
      SMITHERS_WAITING_NODES: (outcome.waiting ?? []).join(","),
    }, { runId, status, waitingNodes: outcome.waiting ?? [] });
  } else if (status === "failed" && outcome.observedEnd && handlers.onFailure) {
    await runHandler(native, outcome.rendered, "onFailure", handlers.onFailure, runId, {
      SMITHERS_RUN_ERROR: JSON.stringify(error ?? null),
      SMITHERS_FAILED_NODE: error?.nodeId ?? "",
    }, { runId, status, error });
  }
  return outcome.result;
}

async function drive(native, workflow, snapshot, hooks) {
  const runId = snapshot.runId;
  if (TERMINAL.has(snapshot.status)) return { result: result(runId, snapshot.status, snapshot.error) };
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
        workflowPath: snapshot.workflowPath ?? null,
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

  let logDir;
  const runTask = (task) => {
    const fn = rendered?.computeFns.get(task.nodeId);
    return task.command
      ? runCommandTask(task)
      : fn?.subWorkflow
        ? runSubWorkflow(native, fn.subWorkflow, runId, task, taskCtx(rendered?.ctx, task), hooks)
        : fn?.agentTask
          ? runAgentTask({
              native,
              runId,
              task,
              spec: fn.agentTask,
              jsonSchema: workflow.jsonSchemas[fn.agentTask.outputKey],
              logDir: (logDir ??= native.call("logDir")),
            })
          : runBody(fn, rendered?.ctx, task);
  };
  const start = (task) => {
    inFlight += 1;
    const worktree = rendered?.worktrees.get(task.nodeId);
    const running = worktree
      ? inWorktree(worktree, task, () => runTask(task), {
          rootDir: rendered.baseDir,
          logDir: (logDir ??= native.call("logDir")),
          runId,
          record: (type, payload) => recordEvent(native, runId, type, payload),
        })
      : runTask(task);
    running.then((r) => {
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
      return { result: result(runId, step.status, step.error), rendered, waiting: step.waiting, observedEnd: true };
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
          return { result: result(runId, "running", { code: "RUN_IDLE", message: "the run has nothing to do" }), rendered };
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

/** Runs a task once its <Worktree> exists; a worktree that cannot be made fails the attempt. */
async function inWorktree(spec, task, run, where) {
  try {
    await ensureWorktree(spec, where);
  } catch (e) {
    return {
      nodeId: task.nodeId,
      iteration: task.iteration,
      attempt: task.attempt,
      ok: false,
      error: { code: e?.code ?? "WORKTREE_CREATE_FAILED", message: String(e?.message ?? e) },
    };
  }
  return run();
}

/** An event the driver adds to the run (the engine may have been closed meanwhile). */
function recordEvent(native, runId, type, payload) {
  try {
    native.call("recordDriverEvent", runId, type, JSON.stringify(payload));
  } catch {
    // The engine was closed meanwhile: nothing to record into.
  }
}

/** A command task: the core's runner starts the process on a thread of its own. */
async function runCommandTask(task) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  try {
    const command = await runCommand(task.command);
    return { ...base, ok: command.exitCode === 0 && !command.timedOut && !command.spawnError, command };
  } catch (e) {
    return { ...base, ok: false, error: { code: "COMMAND_NOT_STARTED", message: String(e?.message ?? e) } };
  }
}

/**
 * A task that calls another workflow file: the sub-run (id `<run>.<node>.<iteration>`, plus
 * `.r<round>` after a push-back) is created or resumed and driven here, on the same
 * database. Its result `{subRunId, status, outputs}` is the task's output. A sub-run that
 * stops to wait for its own approval fails the task (SUBRUN_WAITING): put the gate on the
 * calling task (`approval={{…}}`) instead.
 */
async function runSubWorkflow(native, sub, runId, task, ctx, hooks) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  const round = task.pushBack?.iteration ? `.r${task.pushBack.iteration}` : "";
  const childId = `${runId}.${task.nodeId}.${task.iteration}${round}`.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 128);
  try {
    const { loadWorkflow } = await import("./loader/load.js");
    const workflow = await loadWorkflow(sub.path);
    const input = typeof sub.input === "function" ? await sub.input(ctx) : sub.input;
    let snapshot;
    try {
      snapshot = native.call("claimRun", childId, false);
    } catch (e) {
      if (e?.code !== "RUN_NOT_FOUND") throw e;
      snapshot = createRun(native, workflow, { runId: childId, input, workflowPath: sub.path });
    }
    let result;
    try {
      result = await driveRun(native, workflow, snapshot, { afterCall: hooks.afterCall });
    } finally {
      native.call("releaseRun", childId);
    }
    if (result.status === "finished") {
      const outputs = {};
      for (const row of native.call("inspect", childId).outputs) {
        outputs[row.iteration ? `${row.nodeId}#${row.iteration}` : row.nodeId] = row.value;
      }
      return { ...base, ok: true, value: { subRunId: childId, status: "finished", outputs } };
    }
    const [code, message] =
      result.status === "waiting-approval"
        ? ["SUBRUN_WAITING", `sub-run ${childId} waits for its own approval; gate the calling task instead`]
        : ["SUBRUN_FAILED", `sub-run ${childId} ${result.status}${result.error ? `: ${result.error.message}` : ""}`];
    return { ...base, ok: false, error: { code, message } };
  } catch (e) {
    return { ...base, ok: false, error: { code: e?.code ?? "SUBRUN_FAILED", message: String(e?.message ?? e) } };
  }
}

/**
 * The ctx a compute body receives: the render's ctx plus what reaches this task only, the
 * approver inputs of upstream gates and, when a reviewer sent it back, the push-back.
 */
function taskCtx(ctx, task) {
  if (!task.inputs && !task.pushBack) return ctx;
  return Object.assign(Object.create(ctx ?? null), {
    approvalInputs: task.inputs ?? {},
    pushBack: task.pushBack ?? null,
  });
}

/**
 * Runs a wait or failure handler: a shell command (through the core's runner, logged next
 * to the run's task logs) or a function. Its failure is recorded and changes nothing else.
 */
async function runHandler(native, rendered, name, handler, runId, env, info) {
  const record = (kind, payload) => recordEvent(native, runId, kind, { handler: name, ...payload });
  record("HandlerStarted", {});
  try {
    if (typeof handler === "function") {
      await Promise.race([
        Promise.resolve().then(() => handler(info)),
        new Promise((_, reject) => {
          const t = setTimeout(() => reject(new Error(`timed out after ${HANDLER_TIMEOUT_MS} ms`)), HANDLER_TIMEOUT_MS);
          t.unref?.();
        }),
      ]);
      record("HandlerFinished", {});
      return;
    }
    const dir = join(native.call("logDir"), runId);
    const stamp = `${name}.${Date.now()}`;
    const outcome = await runCommand({
      program: "/bin/sh",
      args: ["-c", handler],
      cwd: rendered?.baseDir ?? null,
      env: Object.entries({ ...env, SMITHERS_RUN_ID: runId }),
      timeoutMs: HANDLER_TIMEOUT_MS,
      stdoutPath: join(dir, `${stamp}.stdout.log`),
      stderrPath: join(dir, `${stamp}.stderr.log`),
    });
    if (outcome.exitCode === 0 && !outcome.timedOut && !outcome.spawnError) {
      record("HandlerFinished", { exitCode: 0, stdoutPath: join(dir, `${stamp}.stdout.log`) });
    } else {
      const why = outcome.spawnError ?? (outcome.timedOut ? "timed out" : `exited with code ${outcome.exitCode}`);
      record("HandlerFailed", { exitCode: outcome.exitCode ?? null, error: why, stderr: outcome.stderr.slice(-2000) });
    }
  } catch (e) {
    record("HandlerFailed", { error: String(e?.message ?? e) });
  }
}

async function runBody(fn, ctx, task) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  if (typeof fn !== "function") {
    return { ...base, ok: false, error: { code: "TASK_BODY_MISSING", message: `no compute body for ${task.nodeId}` } };
  }
  let timer;
  try {
    let value = fn(taskCtx(ctx, task));
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
