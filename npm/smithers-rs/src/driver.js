// The run driver: renders the workflow, submits graphs to the core, runs compute task
// bodies, reports their results. The core decides everything else (ARCHITECTURE.md).
import { dirname, join } from "node:path";
import { runAgentTask } from "./agents/task.js";
import { SmithersError } from "./errors.js";
import { isTerminal } from "./contract.js";
import { DAGU_RUN_STATUS } from "./dagu/status.js";
import { logger } from "./log.js";
import { runCommand } from "./native.js";
import { SEAL, newRenderMemo, outputIndex, renderWorkflow } from "./render.js";
import { expandEnvTemplates, expandTemplate, substituteDaguVars } from "./templates.js";
import { describeThrown, encodeResult, isSmithersError } from "./values.js";

/** The run's log next to its task logs (the core's RUN_LOG_FILE, DAG_RUN_LOG_FILE). */
const RUN_LOG = "run.log";
/** How often a driver with bodies in flight looks for decisions made by other processes. */
const DECISION_POLL_MS = 25;
/** The longest setTimeout delay. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** A wait/failure handler that runs longer than this is stopped (and logged as failed). */
const HANDLER_TIMEOUT_MS = 60_000;
const log = logger("smithers_js::driver");
/** Per-task lines are built only when they are logged (the hot path pays one branch). */
const LOG_TASKS = log.enabled("debug");
/**
 * Errors of a driving call that say this driver must stop without failing the run: another
 * process drives it now, or this workflow is not the run's (the run stays as it is).
 */
const NOT_OURS = new Set(["RUN_OWNED", "RUN_NOT_CLAIMED", "WORKFLOW_MISMATCH", "SCHEMA_CHANGED"]);
/** Errors of a call whose reply was lost (the database out of reach): it may have committed. */
const LOST = new Set(["DB_ERROR", "IO_ERROR"]);

/**
 * Records a new run of a workflow, owned by this engine, and returns its first snapshot. A
 * dry render comes first: a malformed workflow is refused before anything is written.
 * @param {import("./native.js").NativeEngine} native
 * @param {any} workflow
 * @param {{ runId?: string, input: unknown, workflowPath: string | null, startedBy?: string, onRender?: (rendering: boolean, owned: boolean) => void }} options
 */
export async function createRun(native, workflow, { runId, input: given, workflowPath, startedBy, parent, onRender }) {
  // A Dagu DAG's input is its params: the declared defaults fill in what the run was not given.
  const input = workflow.resolveInput ? workflow.resolveInput(given) : given;
  let probe;
  try {
    onRender?.(true, false);
    probe = renderWorkflow(workflow, { runId: runId ?? "", input, loops: {}, nodeLoops: {}, outputs: [], workflowPath });
  } finally {
    onRender?.(false, false);
  }
  await native.validateGraphAsync(JSON.stringify(probe.graph));
  return native.createRunAsync({
    runId,
    workflowName: probe.graph.workflow.name,
    workflowPath,
    inputJson: JSON.stringify(input),
    inputSchemaJson: workflow.inputSchema ? JSON.stringify(workflow.inputSchema) : undefined,
    startedBy,
    parent,
  });
}

/**
 * The name a workflow gives itself (`<Workflow name>`) when rendered for a run in the state
 * `info` (an `inspect` answer) describes; null when that render throws (the drive will say why).
 */
export function renderedName(workflow, info) {
  try {
    const loops = Object.fromEntries((info.loops ?? []).map((l) => [l.loopId, l.iteration]));
    const { graph } = renderWorkflow(workflow, {
      runId: info.run.runId,
      input: info.input,
      loops,
      nodeLoops: {},
      outputs: info.outputs ?? [],
      workflowPath: info.run.workflowPath ?? null,
    });
    return graph.workflow?.name ?? null;
  } catch {
    return null;
  }
}

/**
 * Drives one claimed run until it finishes, fails, is cancelled, or waits for a decision.
 * @param {import("./native.js").NativeEngine} native
 * @param {any} workflow value of `smithers(build)`
 * @param {any} snapshot from createRun / claimRun
 * @param {{ afterCall?: () => void, control?: { poke?: () => void }, onRender?: (rendering: boolean, owned: boolean) => void, onRendered?: (runId: string, rendered: any) => void }} [hooks]
 *   `onRendered`: told each render's result (its graph, its bodies), for tracing's node kinds
 * @returns {Promise<{ runId: string, status: string, error?: any }>}
 */
export async function driveRun(native, workflow, snapshot, hooks = {}) {
  const outcome = await drive(native, workflow, snapshot, hooks);
  const handlers = outcome.rendered?.handlers ?? {};
  const { runId, status, error } = outcome.result;
  const run = { native, workflow, rendered: outcome.rendered, runId, input: snapshot.input, status };
  // onWait each time the run starts waiting (this driver parked it); onSuccess / onFailure
  // (failed or rejected) and then onExit once, when this driver saw it end.
  if (status === "waiting-approval") {
    const waiting = (outcome.waiting ?? []).join(",");
    if (handlers.onWait) {
      await runHandler(run, "onWait", handlers.onWait, { SMITHERS_WAITING_NODES: waiting, DAG_WAITING_STEPS: waiting }, {
        runId,
        status,
        waitingNodes: outcome.waiting ?? [],
      });
    }
    if (workflow.mail?.wait) await sendRunMail(run, "wait");
  } else if (isTerminal(status) && outcome.observedEnd) {
    const failed = status === "failed" || status === "rejected";
    const env = failed ? { SMITHERS_RUN_ERROR: JSON.stringify(error ?? null), SMITHERS_FAILED_NODE: error?.nodeId ?? "" } : {};
    const info = error ? { runId, status, error } : { runId, status };
    if (status === "finished" && handlers.onSuccess) await runHandler(run, "onSuccess", handlers.onSuccess, env, info);
    if (failed && handlers.onFailure) await runHandler(run, "onFailure", handlers.onFailure, env, info);
    if (handlers.onExit) await runHandler(run, "onExit", handlers.onExit, env, info);
    if (failed && workflow.mail?.failure) await sendRunMail(run, "failure");
  }
  return outcome.result;
}

async function drive(native, workflow, snapshot, hooks) {
  const runId = snapshot.runId;
  if (isTerminal(snapshot.status)) return { result: result(runId, snapshot.status, snapshot.error) };
  const after = hooks.afterCall ?? (() => {});
  // A call of the core: in place on SQLite (a value), on the engine's own thread on
  // PostgreSQL (a promise: this thread does not wait on the network). Await it either way.
  const call = native.remote
    ? (method, ...args) => native[`${method}Async`](...args).finally(after)
    : (method, ...args) => {
        try {
          return native[method](...args);
        } finally {
          after();
        }
      };

  // Every render reads the run's outputs through one index, which the core's steps keep up
  // to date: a render does not index every row again. Output rows cross as JSON text, the
  // bulk path out of the core (ARCHITECTURE.md, "The boundary").
  const index = outputIndex(runId, JSON.parse(snapshot.outputsJson));
  const loops = { ...(snapshot.loops ?? {}) };
  const nodeLoops = { ...(snapshot.nodeLoops ?? {}) };
  let rendered = null;
  // The last graph text sent, and (once a render gave that text again) the graph it encodes:
  // a render equal to it is sent as the same text without building it (see sameGraph).
  let lastText = null;
  let lastGraph = null;
  // What the last render leaves to the next: its sealed task nodes, its render deps; and the
  // graph it rendered (sameGraph takes a sealed node found again at its place for equal).
  const memo = newRenderMemo();
  let prevGraph = null;

  // The graph text the core's plan was last built from, as this driver sent it, and the id
  // the core gave that text (a step's graphId): a render that gives the text again is sent
  // as the id, and nothing of it crosses the boundary. The core checks the id (STALE_GRAPH).
  let sentText = null;
  let sentId = 0;
  const sent = (text, step) => {
    sentText = text;
    sentId = step.graphId;
    return step;
  };
  // The text whose loops `nodeLoops` has learnt.
  let loopsOf = null;
  const learnLoops = (text) => {
    if (text !== loopsOf) collectNodeLoops(rendered.graph.root, null, nodeLoops);
    // The same string from now on, compared without reading it.
    loopsOf = text;
  };

  // Renders the workflow from the run's state as the index has it; returns the graph's text
  // (the last text again, without building it, for a render equal to it). Throws what the
  // workflow threw.
  const renderText = () => {
    const t0 = log.enabled("debug") ? performance.now() : 0;
    hooks.onRender?.(true, true);
    try {
      rendered = renderWorkflow(workflow, {
        runId,
        input: snapshot.input,
        loops,
        nodeLoops,
        index,
        workflowPath: snapshot.workflowPath ?? null,
        memo,
      });
      hooks.onRendered?.(runId, rendered);
      if (t0) log.debug("rendered", { run_id: runId, render_ms: Number((performance.now() - t0).toFixed(3)), render_deps: rendered.graph.renderDeps });
      const previous = prevGraph;
      prevGraph = rendered.graph;
      if (lastGraph !== null && sameGraph(rendered.graph, lastGraph, previous)) return lastText;
      const graph = JSON.stringify(rendered.graph);
      // The same text twice: later renders are compared with its graph (a private copy, so
      // a value the workflow mutates later cannot make two graphs look alike).
      lastGraph = graph === lastText ? JSON.parse(graph) : null;
      lastText = graph;
      return graph;
    } finally {
      hooks.onRender?.(false, true);
    }
  };

  const render = async () => {
    let graph;
    try {
      graph = renderText();
      learnLoops(graph);
    } catch (e) {
      // A workflow that cannot be rendered fails the run (a render is a function of the run's
      // state: rendering again gives the same answer). Whatever was thrown is described,
      // never rethrown raw. A SmithersError keeps its code (TOON_EXPRESSION_FAILED, …).
      const thrown = describeThrown(e);
      const ours = isSmithersError(e);
      return fail({ code: ours ? thrown.code ?? "RENDER_FAILED" : "RENDER_FAILED", message: ours ? thrown.message : `the workflow threw while rendering: ${thrown.message}` });
    }
    try {
      if (graph === sentText && sentId !== 0) {
        try {
          return sent(graph, await call("submitSameGraph", runId, sentId));
        } catch (e) {
          // Not the plan's graph any more (nothing changed): the text goes instead.
          if (e?.code !== "STALE_GRAPH") throw e;
        }
      }
      return sent(graph, await call("submitGraph", runId, graph));
    } catch (e) {
      // The core refused the graph (INVALID_GRAPH, …): the run fails with that code. Unless
      // the run is not this driver's to fail (NOT_OURS): then it is left as it is.
      if (NOT_OURS.has(e?.code)) throw e;
      return fail({ code: e?.code ?? "RENDER_FAILED", message: describeThrown(e).message });
    }
  };

  // Reports finished bodies. When the last render read one of them, the next render is owed
  // as soon as they are recorded: it is made now, with their rows as the core will store
  // them, and sent with them (one call, one transaction). The core applies it only if
  // recording them changed exactly that; else the rows are taken back out, and the step owes
  // a render, made the usual way (ARCHITECTURE.md, "A render sent with the results it read").
  const complete = async (batch, tables) => {
    const texts = batch.map(encodeResult);
    const json = `[${texts.join(",")}]`;
    const rows = rendered ? rowsToRenderWith(batch, texts, tables, rendered.graph.renderDeps) : null;
    if (rows === null) return call("completeTasks", runId, json);
    const undo = rows.map(index.put);
    const takeBack = () => {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]();
    };
    let graph;
    try {
      graph = renderText();
    } catch {
      // The render threw: the results go with a graph the core refuses, so the step owes a
      // render, made (and failed) the usual way from what the core recorded.
      takeBack();
      return call("completeTasks", runId, json, { graphJson: "" });
    }
    let step;
    try {
      step = await call("completeTasks", runId, json, graph === sentText && sentId !== 0 ? { graphId: sentId } : { graphJson: graph });
    } catch (e) {
      // A stale id changed nothing: the text goes instead. Other refusals end the drive, as
      // they would from completeTasks alone.
      if (e?.code !== "STALE_GRAPH") {
        takeBack();
        throw e;
      }
      step = await call("completeTasks", runId, json, { graphJson: graph });
    }
    if (!step.graphApplied) {
      takeBack();
      return step;
    }
    learnLoops(graph);
    return sent(graph, step);
  };
  // Fails the run; its step (status failed, with the error) ends the drive like any other.
  const fail = async (error) => {
    try {
      return await call("failRun", runId, error);
    } catch {
      // The run is no longer this driver's (or the engine was closed): nothing to record.
      throw new SmithersError(error.code, error.message, { runId });
    }
  };

  // Results of finished task bodies, reported to the core in batches, and their tasks'
  // output keys.
  const results = [];
  const resultTables = [];
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
      ? runCommandTask(native, runId, task)
      : fn?.subWorkflow
        ? runSubWorkflow(native, fn.subWorkflow, runId, task, taskCtx(rendered?.ctx, task), hooks)
        : fn?.agentTask
          ? runAgentTask({
              native,
              runId,
              task,
              spec: fn.agentTask,
              jsonSchema: workflow.jsonSchemas[fn.agentTask.outputKey],
              logDir: (logDir ??= native.logDir()),
            })
          : runBody(fn, rendered?.ctx, task);
  };
  const start = (task) => {
    inFlight += 1;
    const t0 = LOG_TASKS ? performance.now() : 0;
    if (LOG_TASKS) log.debug("task started", { run_id: runId, node_id: task.nodeId, iteration: task.iteration, attempt: task.attempt, kind: task.command ? "command" : rendered?.computeFns.get(task.nodeId)?.subWorkflow ? "sub-run" : "compute" });
    const worktree = rendered?.worktrees.get(task.nodeId);
    const running = worktree
      ? inWorktree(worktree, task, () => runTask(task), {
          rootDir: rendered.baseDir,
          logDir: (logDir ??= native.logDir()),
          runId,
          record: (type, payload) => recordEvent(native, runId, type, payload),
        })
      : runTask(task);
    const settled = (r) => {
      inFlight -= 1;
      if (LOG_TASKS) log.debug("task ended", { run_id: runId, node_id: task.nodeId, iteration: task.iteration, attempt: task.attempt, ok: r.ok, duration_ms: Math.round(performance.now() - t0) });
      results.push(r);
      resultTables.push(task.output);
      notify();
    };
    // Nothing a body does reaches the top level: an unexpected rejection fails its task.
    running.then(settled, (e) => settled({ nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt, ok: false, error: describeThrown(e) }));
  };

  // Whether the graph last sent has a <Timer> (read once per graph text).
  let timersIn = null;
  let hasTimers = false;
  const armOwnTimers = async () => {
    if (timersIn !== lastText) {
      timersIn = lastText;
      hasTimers = typeof lastText === "string" && lastText.includes('"type":"timer"');
    }
    if (!hasTimers) return null;
    let due = Infinity;
    try {
      for (const t of await native.runTimersAsync(runId)) if (t.status === "scheduled" && t.dueAtMs < due) due = t.dueAtMs;
    } catch {
      return null;
    }
    if (due === Infinity) return null;
    const handle = setTimeout(async () => {
      try {
        const fired = await call("fireDueTimers", 100, runId);
        if (fired.length) log.debug("fired this run's due timers while bodies run", { run_id: runId, fired: fired.length, in_flight: inFlight });
      } catch (e) {
        log.warn("could not fire this run's due timers", { run_id: runId, code: e?.code ?? "INTERNAL", message: String(e?.message ?? e) });
      }
      poked = true;
      notify();
    }, Math.min(Math.max(0, due - native.nowMs()), MAX_TIMEOUT_MS));
    handle.unref?.();
    return handle;
  };

  let step = await render();
  for (;;) {
    // Outputs a push-back withdrew (its scope runs again): no render may read them now.
    for (const ref of step.reset ?? []) index.drop(ref);
    for (const row of JSON.parse(step.outputsJson)) index.add(row);
    Object.assign(loops, step.loops);
    for (const task of step.tasks) start(task);
    // Parked: waiting for decisions, or only for timers (whoever waits on those fires them).
    if (isTerminal(step.status) || step.status === "waiting-approval" || step.status === "waiting-timer") {
      log.info("run stopped", { run_id: runId, status: step.status, waiting: (step.waiting ?? []).join(","), in_flight: inFlight });
      return { result: result(runId, step.status, step.error), rendered, waiting: step.waiting, observedEnd: true };
    }
    if (step.needsRender) {
      step = await render();
      continue;
    }
    if (results.length === 0 && !poked) {
      if (inFlight === 0) {
        // Nothing runs and the core asks for nothing: only a decision can move the run.
        step = await call("advance", runId);
        if (step.tasks.length === 0 && !step.needsRender && step.status === "running") {
          return { result: result(runId, "running", { code: "RUN_IDLE", message: "the run has nothing to do" }), rendered };
        }
        continue;
      }
      // While bodies run, watch for commits by other processes (a CLI decision on one of
      // this run's gates): PRAGMA data_version changes only then, and costs microseconds.
      // On PostgreSQL the counter is read on the engine's thread, one read at a time.
      const seen = await native.dataVersionAsync();
      log.trace("waiting for task bodies; polling for decisions", { run_id: runId, in_flight: inFlight, poll_ms: DECISION_POLL_MS });
      let watching = true;
      let reading = false;
      const changed = (version) => {
        if (watching && version !== seen) {
          log.debug("another process committed: advancing", { run_id: runId, in_flight: inFlight });
          poked = true;
          notify();
        }
      };
      const watch = setInterval(() => {
        if (!native.remote) return changed(native.dataVersion());
        if (reading) return;
        reading = true;
        native.dataVersionAsync().then(
          (version) => {
            reading = false;
            changed(version);
          },
          () => {
            reading = false;
          },
        );
      }, DECISION_POLL_MS);
      watch.unref?.();
      // A timer of this run due while bodies run (a <Timer> beside a long task): fired here,
      // as it comes due, so what follows it starts then. Serve and parked runs' waiters fire
      // timers too; this driver fires only its own run's.
      const timer = await armOwnTimers();
      // A body that settled (or a poke) during the awaits above has found no one to wake.
      await new Promise((resolve) => {
        if (results.length > 0 || poked) resolve();
        else wake = resolve;
      });
      watching = false;
      clearInterval(watch);
      if (timer) clearTimeout(timer);
    }
    // Let bodies that settle in the same turn join this batch.
    await new Promise((resolve) => setImmediate(resolve));
    poked = false;
    const batch = results.splice(0);
    const tables = resultTables.splice(0);
    step = batch.length > 0 ? await complete(batch, tables) : await call("advance", runId);
  }
}

/**
 * The rows a render made before the core records `batch` reads: one per result, its value as
 * the core will store and report it (the JSON text sent, parsed). Null when no render is owed
 * after them (the last render read none of them) or when one is not a value (a failure, a
 * command's outcome, a sub-run to wait on): then the core is asked first.
 * @param {any[]} batch
 * @param {string[]} texts each result as sent (`encodeResult`)
 * @param {string[]} tables each result's output key
 * @param {string[] | "*"} deps the last render's renderDeps (sorted)
 */
function rowsToRenderWith(batch, texts, tables, deps) {
  let read = false;
  for (const r of batch) {
    if (!r.ok || r.command || r.waitingOn) return null;
    read ||= deps === "*" || hasSorted(deps, r.nodeId);
  }
  if (!read) return null;
  const rows = new Array(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const sent = JSON.parse(texts[i]);
    // encodeResult made a value JSON cannot carry the task's failure.
    if (!sent.ok) return null;
    rows[i] = { table: tables[i], nodeId: sent.nodeId, iteration: sent.iteration ?? 0, value: "value" in sent ? sent.value : null };
  }
  return rows;
}

/** Whether the sorted array `ids` holds `id` (binary search). */
function hasSorted(ids, id) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const x = ids[mid];
    if (x === id) return true;
    if (x < id) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

function result(runId, status, error) {
  return error ? { runId, status, error } : { runId, status };
}

/** Runs a task once its <Worktree> exists; a worktree that cannot be made fails the attempt. */
async function inWorktree(spec, task, run, where) {
  try {
    // worktree.js on first use: only a <Worktree> needs it.
    const { ensureWorktree } = await import("./worktree.js");
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
    native.recordDriverEvent(runId, type, JSON.stringify(payload));
  } catch {
    // The engine was closed meanwhile: nothing to record into.
  }
}

/**
 * A command task: the core's runner starts the process on a thread of its own. Templates in
 * its environment (a Dagu step's `env`) are expanded here, against what the process gets.
 */
async function runCommandTask(native, runId, task) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  const what = `${task.nodeId}${task.iteration ? `#${task.iteration}` : ""} attempt ${task.attempt}`;
  try {
    const { envTemplates, ...spec } = task.command;
    if (envTemplates?.length) spec.envTemplates = expandEnvTemplates(envTemplates, spec.env);
    runLog(native, runId, `started ${what}`);
    const command = await runCommand(spec);
    runLog(native, runId, `ended ${what}: ${command.spawnError ?? (command.timedOut ? "timed out" : `exit ${command.exitCode}`)}`);
    return { ...base, ok: command.exitCode === 0 && !command.timedOut && !command.spawnError, command };
  } catch (e) {
    return { ...base, ok: false, error: { ...describeThrown(e), code: "COMMAND_NOT_STARTED" } };
  }
}

/** Per run log: the last write queued, so lines land in the order they were logged. */
const runLogs = new Map();

/**
 * Appends a line to the run's log (DAG_RUN_LOG_FILE): the command steps and handlers this
 * driver ran, stamped when they happened. Never fails the run: a log that cannot be written
 * is skipped.
 */
function runLog(native, runId, text) {
  let file;
  try {
    file = join(native.logDir(), runId, RUN_LOG);
  } catch {
    return Promise.resolve();
  }
  const line = `${new Date().toISOString()} ${text}\n`;
  // node:fs/promises on first use: most runs write no run log.
  const { appendFile, mkdir } = process.getBuiltinModule("node:fs").promises;
  const before = runLogs.get(file) ?? mkdir(dirname(file), { recursive: true });
  const written = before.then(() => appendFile(file, line)).catch(() => {});
  runLogs.set(file, written);
  written.then(() => {
    if (runLogs.get(file) === written) runLogs.delete(file);
  });
  return written;
}

/**
 * A task that calls another workflow file: the sub-run (id `<run>.<node>.<iteration>`, plus
 * `.r<round>` after a push-back) is created or resumed and driven here, on the same
 * database. Its result `{subRunId, status, outputs}` is the task's output. A sub-run that
 * stops to wait for a decision of its own makes the task wait with it (`waitingOn`): the
 * caller parks too, the sub-run's gates are decided like any other, and when the sub-run
 * ends the task runs again and reads its result here.
 */
async function runSubWorkflow(native, sub, runId, task, ctx, hooks) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  const round = task.pushBack?.iteration ? `.r${task.pushBack.iteration}` : "";
  const childId = `${runId}.${task.nodeId}.${task.iteration}${round}`.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, 128);
  // Held while this drives it (from before its claim or create): a release of the sub-run
  // still being retried here, from an earlier drive of it, must not let it go under this one.
  const unhold = native.hold(childId);
  // Whether this engine may own the sub-run when this call ends: claimed or created here,
  // or a claim or create whose reply was lost (the database out of reach: it may have
  // committed). Not after RUN_OWNED (another drive has it) or RUN_NOT_FOUND.
  let mayOwn = false;
  try {
    const { loadWorkflow } = await import("./loader/load.js");
    const workflow = await loadWorkflow(sub.path);
    let snapshot;
    try {
      mayOwn = true;
      snapshot = await native.claimRunAsync(childId);
    } catch (e) {
      mayOwn = LOST.has(e?.code);
      // Decided elsewhere and being driven there: wait for it like for a waiting one.
      if (e?.code === "RUN_OWNED") return { ...base, ok: true, waitingOn: childId };
      if (e?.code !== "RUN_NOT_FOUND") throw e;
      const input = typeof sub.input === "function" ? await sub.input(ctx) : sub.input;
      const parent = { runId, nodeId: task.nodeId, iteration: task.iteration };
      try {
        mayOwn = true;
        snapshot = await createRun(native, workflow, { runId: childId, input, workflowPath: sub.path, parent });
      } catch (e) {
        mayOwn = LOST.has(e?.code);
        throw e;
      }
    }
    const result = await driveRun(native, workflow, snapshot, { afterCall: hooks.afterCall, onRendered: hooks.onRendered });
    // Let go before its outputs are read (as a drive of a run of its own is let go at its end).
    unhold();
    mayOwn = false;
    await native.releaseRunRetrying(childId);
    if (result.status === "finished") {
      const outputs = {};
      for (const row of (await native.inspectAsync(childId)).outputs) {
        outputs[row.iteration ? `${row.nodeId}#${row.iteration}` : row.nodeId] = row.value;
      }
      return { ...base, ok: true, value: { subRunId: childId, status: "finished", outputs } };
    }
    if (result.status === "waiting-approval" || result.status === "waiting-timer") return { ...base, ok: true, waitingOn: childId };
    const message = `sub-run ${childId} ${result.status}${result.error ? `: ${result.error.message}` : ""}`;
    return { ...base, ok: false, error: { code: "SUBRUN_FAILED", message } };
  } catch (e) {
    const error = describeThrown(e);
    return { ...base, ok: false, error: { ...error, code: error.code ?? "SUBRUN_FAILED" } };
  } finally {
    unhold();
    // Every failing path lets go of a sub-run this engine may own (again while the database
    // is out of reach), or its lease keeper would renew it forever and nobody would drive
    // it. A sub-run held by another drive here is left to that drive.
    if (mayOwn) void native.releaseRunRetrying(childId);
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
 * Runs a handler (onWait, onSuccess, onFailure, onExit): a function, a shell command, or a
 * command spec `{ command | script, shell?, cwd?, env?, envTemplates? }` (a Dagu
 * handler_on step). Commands run through the core's runner, logged next to the run's task
 * logs, with the approver inputs of the run, the handler's env and Dagu's variables
 * (DAG_NAME, DAG_RUN_ID, DAG_RUN_STATUS, DAG_WAITING_STEPS, …). A handler's failure is
 * recorded and changes nothing else.
 */
async function runHandler(run, name, handler, env, info) {
  const { native, runId } = run;
  const record = (kind, payload) => recordEvent(native, runId, kind, { handler: name, ...payload });
  record("HandlerStarted", {});
  log.debug("handler started", { run_id: runId, handler: name, kind: typeof handler === "function" ? "function" : "command" });
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
    const spec = typeof handler === "string" ? { command: handler } : handler;
    const dir = join(native.logDir(), runId);
    const stamp = `${name}.${Date.now()}`;
    const stdoutPath = join(dir, `${stamp}.stdout.log`);
    const stderrPath = join(dir, `${stamp}.stderr.log`);
    const vars = {
      ...runApprovalInputs(native, runId),
      ...(typeof spec.env === "function" ? spec.env(run.rendered?.ctx ?? { input: run.input, latest: () => undefined }) : (spec.env ?? {})),
      ...env,
      ...daguVars(run, name, { stdoutPath, stderrPath }),
      SMITHERS_RUN_ID: runId,
    };
    runLog(native, runId, `started ${name}`);
    const text = spec.command ?? spec.script;
    const outcome = await runCommand({
      program: spec.shell ?? "/bin/sh",
      args: ["-c", spec.daguText ? substituteDaguVars(text, vars) : text],
      cwd: spec.cwd ?? run.rendered?.baseDir ?? null,
      env: Object.entries(vars),
      envTemplates: expandEnvTemplates(spec.envTemplates ?? [], vars),
      timeoutMs: HANDLER_TIMEOUT_MS,
      stdoutPath,
      stderrPath,
    });
    const ok = outcome.exitCode === 0 && !outcome.timedOut && !outcome.spawnError;
    const why = outcome.spawnError ?? (outcome.timedOut ? "timed out" : `exited with code ${outcome.exitCode}`);
    runLog(native, runId, `ended ${name}: ${why}`);
    if (ok) {
      record("HandlerFinished", { exitCode: 0, stdoutPath });
    } else {
      record("HandlerFailed", { exitCode: outcome.exitCode ?? null, error: why, stderr: outcome.stderr.slice(-2000), stdoutPath });
    }
  } catch (e) {
    record("HandlerFailed", { error: describeThrown(e).message });
  }
}

/** Dagu's variables for a handler, as it sets them for its handler steps. */
function daguVars(run, stepName, { stdoutPath, stderrPath }) {
  const params = JSON.stringify(run.input ?? null);
  const logDir = join(run.native.logDir(), run.runId);
  return {
    DAG_NAME: run.rendered?.graph.workflow.name ?? run.workflow.name ?? "",
    DAG_RUN_ID: run.runId,
    DAG_RUN_STATUS: DAGU_RUN_STATUS[run.status]?.[1] ?? run.status,
    DAG_RUN_STEP_NAME: stepName,
    DAG_RUN_LOG_FILE: join(logDir, RUN_LOG),
    DAG_RUN_STEP_STDOUT_FILE: stdoutPath,
    DAG_RUN_STEP_STDERR_FILE: stderrPath,
    ...(params.length <= 64 * 1024 ? { DAG_PARAMS_JSON: params } : {}),
  };
}

/** The inputs approvers gave this run's gates (they reach handlers as they reach steps). */
function runApprovalInputs(native, runId) {
  const inputs = {};
  try {
    for (const a of native.pendingApprovals({ runId, status: "approved", limit: 1000 })) {
      if (a.runId === runId) Object.assign(inputs, a.inputs ?? {});
    }
  } catch {
    // A closed engine: the handler runs without them.
  }
  return inputs;
}

/**
 * Dagu's `mail_on`: a mail when the run starts waiting (naming its gates, as serve's wait
 * mail does) or when it fails or is rejected. Recorded in the run's events either way.
 */
async function sendRunMail(run, when) {
  const { native, runId, workflow } = run;
  const config = workflow.mail[when];
  const kind = when === "wait" ? "WaitMail" : "FailureMail";
  const record = (suffix, payload) => recordEvent(native, runId, `${kind}${suffix}`, { to: config.to, ...payload });
  try {
    const { sendMail, runEndedMail, waitMail } = await import("./serve/mail.js");
    const summary = native.runSummary(runId);
    const subjectPrefix = config.prefix;
    const message =
      when === "wait"
        ? waitMail({ run: summary, gates: native.pendingApprovals({ runId, limit: 100 }), subjectPrefix, from: config.from, to: config.to })
        : runEndedMail({ run: summary, subjectPrefix, from: config.from, to: config.to });
    const sent = await sendMail(mailServer(workflow.mail.smtp), message);
    record("Sent", { messageId: sent?.messageId ?? null });
  } catch (e) {
    record("Failed", { code: e?.code ?? "MAIL_FAILED", message: String(e?.message ?? e) });
  }
}

/** The DAG's smtp block (each value may be ${VAR}), else $SMITHERS_SMTP_HOST / _PORT / _USER / _PASSWORD. */
function mailServer(smtp) {
  const env = process.env;
  const given = smtp ?? {
    host: env.SMITHERS_SMTP_HOST,
    port: env.SMITHERS_SMTP_PORT,
    ...(env.SMITHERS_SMTP_USER ? { user: env.SMITHERS_SMTP_USER, pass: env.SMITHERS_SMTP_PASSWORD } : {}),
  };
  const out = {};
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined || v === "") continue;
    const text = expandTemplate(String(v), (n) => env[n]);
    out[k] = k === "port" ? Number(text) : text;
  }
  return out;
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
    return { ...base, ok: true, value };
  } catch (e) {
    return { ...base, ok: false, error: describeThrown(e) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether a rendered graph is, as a JSON value, `last` (the JSON.parse of the text last sent):
 * then that text says what it says, and is sent again without building it. Only JSON's own
 * values compare equal (plain objects with the same keys, in any order; arrays; strings;
 * finite numbers; booleans; null); anything else (a Date, a toJSON, undefined, NaN) is
 * "different", and the caller stringifies. Allocates nothing.
 * `prev` is the graph rendered just before, which is equal to `last` as JSON (the driver
 * keeps `last` only while renders repeat its text): a sealed node of render.js found again
 * at the same place holds only what it held then, so it is equal without being walked.
 * @param {unknown} a
 * @param {unknown} b
 * @param {unknown} [prev]
 */
export function sameGraph(a, b, prev) {
  if (typeof a !== "object" || a === null) return a === b && a !== undefined && (typeof a !== "number" || Number.isFinite(a));
  if (typeof b !== "object" || b === null) return false;
  if (a === prev && a[SEAL] === true) return true;
  const p = typeof prev === "object" && prev !== null ? prev : undefined;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      // A sealed node found again at its place (the usual child of a big container): equal.
      if (p !== undefined && x === p[i] && typeof x === "object" && x !== null && x[SEAL] === true) continue;
      if (!sameGraph(x, b[i], p?.[i])) return false;
    }
    return true;
  }
  const proto = Object.getPrototypeOf(a);
  if (Array.isArray(b) || (proto !== Object.prototype && proto !== null)) return false;
  let keys = 0;
  for (const key in a) {
    if (!Object.hasOwn(b, key) || !sameGraph(a[key], b[key], p?.[key])) return false;
    keys += 1;
  }
  for (const _ in b) keys -= 1;
  return keys === 0 && typeof a.toJSON !== "function";
}

function collectNodeLoops(node, loopId, out) {
  if (node.kind === "task") {
    if (loopId) out[node.id] = loopId;
    return;
  }
  const inner = node.kind === "loop" ? node.id : loopId;
  for (const child of node.children ?? []) collectNodeLoops(child, inner, out);
}
