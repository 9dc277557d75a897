// Dagu's REST paths on `smithers serve`, beside ours, with Dagu's request and response
// shapes, so a Dagu client (or a script written against Dagu's API) works unchanged:
//
//   POST /api/v1/dag-runs/{name}/{dagRunId}/steps/{stepName}/approve    {inputs?}
//   POST …/steps/{stepName}/reject {reason?}, …/push-back {inputs?}
//   the same under /api/v1/dag-runs/{name}/{dagRunId}/sub-dag-runs/{subDAGRunId}/steps/…
//   GET  /api/v1/dag-runs/{name}/{dagRunId}[/sub-dag-runs/{subDAGRunId}]  (DAGRunDetails)
//   POST /api/v1/dags/{name}/start {params?, dagRunId?, singleton?}      (allow-listed files)
//   GET  /health, /api/v1/health
//
// Dagu 1.x's /api/v2 prefix is accepted too. Errors are Dagu's `{code, message, details}`;
// `details.code` is our stable code. The decider is the token's user, as on our routes.
import { SmithersError } from "../errors.js";
import { engineVersion } from "../native.js";
import { shellWords } from "../templates.js";
import { startAllowed } from "./start.js";
import { DAGU_NODE_STATUS as NODE_STATUS, DAGU_RUN_STATUS as RUN_STATUS } from "../dagu/status.js";

const API = String.raw`^\/api\/v[12]`;
const SEG = "([^/]+)";
const ACTIONS = "(approve|reject|push-back)";

/** HTTP status and Dagu error code for our codes. */
function daguError(code) {
  switch (code) {
    case "UNAUTHORIZED":
      return [401, "unauthorized"];
    case "FORBIDDEN":
      return [403, "forbidden"];
    case "RUN_NOT_FOUND":
    case "NODE_NOT_FOUND":
    case "NOT_FOUND":
    case "WORKFLOW_NOT_FOUND":
    case "NO_PENDING_APPROVALS":
      return [404, "not_found"];
    case "RUN_EXISTS":
      return [409, "already_exists"];
    case "ALREADY_RUNNING":
      return [409, "max_run_reached"];
    case "METHOD_NOT_ALLOWED":
      return [405, "bad_request"];
    case "PAYLOAD_TOO_LARGE":
      return [413, "bad_request"];
    case "DB_ERROR":
    case "IO_ERROR":
    case "INTERNAL":
      return [500, "internal_error"];
    default:
      return [400, "bad_request"];
  }
}

/**
 * The Dagu routes, for server.js's table: `[method, pattern, scope, handler, "dagu"]`.
 * @param {{ readBody: (req: any, allowed: string[]) => Promise<any>, HttpError: typeof SmithersError }} plumbing
 */
export function daguRoutes({ readBody, HttpError }) {
  const fail = (code, message, details) => new HttpError(code, message, details);

  /** The run `{name}/{dagRunId}` names (and the sub-run under it), or a 404. */
  async function locate(c, name, dagRunId, subRunId) {
    let run;
    try {
      run = dagRunId === "latest" ? (await c.engine.listRunsAsync({ workflowName: name, limit: 1 }))[0] : await c.engine.getRunAsync(dagRunId);
    } catch (e) {
      if (e?.code !== "RUN_NOT_FOUND") throw e;
    }
    if (!run || run.workflowName !== name) throw fail("RUN_NOT_FOUND", `dag-run ID ${dagRunId} not found for DAG ${name}`, { runId: dagRunId });
    if (subRunId === undefined) return run;
    let sub;
    try {
      sub = await c.engine.getRunAsync(subRunId);
    } catch (e) {
      if (e?.code !== "RUN_NOT_FOUND") throw e;
    }
    // A sub-run of a sub-run counts: walk up to the root named in the path.
    for (let r = sub, depth = 0; r && depth < 32; depth++) {
      if (r.parentRunId === run.runId) return sub;
      r = r.parentRunId ? await c.engine.getRunAsync(r.parentRunId) : null;
    }
    throw fail("RUN_NOT_FOUND", `sub dag-run ${subRunId} not found under dag-run ${run.runId} of DAG ${name}`, { runId: subRunId });
  }

  async function decide(c, [name, dagRunId, subRunId, stepName, action]) {
    const run = await locate(c, name, dagRunId, subRunId);
    const body = await readBody(c.req, action === "reject" ? ["reason"] : ["inputs"]);
    if (body.inputs !== undefined && body.inputs !== null) {
      const ok = typeof body.inputs === "object" && !Array.isArray(body.inputs) && Object.values(body.inputs).every((v) => typeof v === "string");
      if (!ok) throw fail("INVALID_REQUEST", "inputs must be an object of strings");
    }
    if (body.reason !== undefined && body.reason !== null && typeof body.reason !== "string") throw fail("INVALID_REQUEST", "reason must be a string");
    const method = { approve: "approve", reject: "reject", "push-back": "pushBack" }[action];
    const outcome = await c.engine[method](run.runId, {
      nodeId: stepName,
      inputs: body.inputs ?? {},
      reason: body.reason ?? undefined,
      note: body.reason ?? undefined,
      decidedBy: c.auth.user,
      scopes: c.auth.scopes,
    });
    const { done, ...recorded } = outcome;
    c.log(`${recorded.status} ${stepName} in run ${run.runId} by ${c.auth.user} (Dagu API)${done ? " (resuming)" : ""}`);
    done?.then(
      (r) => c.log(`run ${run.runId}: ${r.status}${r.error ? ` (${r.error.code})` : ""}`),
      (e) => c.log(`run ${run.runId} did not resume: ${e?.code ?? "ERROR"} ${e?.message ?? e}`),
    );
    const answer = { dagRunId: run.runId, stepName };
    if (action === "reject") return answer;
    if (action === "approve") return { ...answer, resumed: Boolean(done) };
    return { ...answer, approvalIteration: recorded.approvalIteration, resumed: Boolean(done), ...(subRunId ? { subDAGRunId: run.runId } : {}) };
  }

  async function start(c, [name]) {
    const body = await readBody(c.req, ["params", "dagRunId", "singleton"]);
    if (body.singleton !== undefined && typeof body.singleton !== "boolean") throw fail("INVALID_REQUEST", "singleton must be true or false");
    if (body.singleton) {
      const busy = [];
      for (const status of ["running", "waiting-approval"]) busy.push(...(await c.engine.listRunsAsync({ workflowName: name, status, limit: 1 })));
      if (busy.length) throw fail("ALREADY_RUNNING", `DAG ${name} is already running (run ${busy[0].runId})`, { runId: busy[0].runId });
    }
    const { runId } = await startAllowed(c, { name, input: params(body.params), runId: body.dagRunId, startedBy: c.auth.user });
    return { dagRunId: runId };
  }

  /** Dagu's `params`: a JSON object, or `NAME=value …` (quotes keep spaces). */
  function params(value) {
    if (value === undefined || value === null || value === "") return {};
    if (typeof value !== "string") throw fail("INVALID_REQUEST", "params is a string: JSON ({\"NAME\": \"value\"}) or NAME=value …");
    if (value.trim().startsWith("{")) {
      try {
        return JSON.parse(value);
      } catch (e) {
        throw fail("INVALID_REQUEST", `params is not valid JSON: ${e.message}`);
      }
    }
    const out = {};
    for (const word of shellWords(value)) {
      const eq = word.indexOf("=");
      if (eq <= 0) throw fail("INVALID_REQUEST", `params ${JSON.stringify(word)}: name it (NAME=value)`);
      out[word.slice(0, eq)] = word.slice(eq + 1);
    }
    return out;
  }

  async function details(c, [name, dagRunId, subRunId]) {
    const run = await locate(c, name, dagRunId, subRunId);
    return { dagRunDetails: await runDetails(c.engine, run) };
  }

  const health = () => ({ status: "healthy", version: engineVersion(), uptime: Math.floor(process.uptime()), timestamp: new Date().toISOString() });

  return [
    ["GET", /^\/health$/, null, health, "dagu"],
    ["GET", new RegExp(`${API}\\/health$`), null, health, "dagu"],
    ["POST", new RegExp(`${API}\\/dags\\/${SEG}\\/start$`), "execute", (c) => start(c, c.params), "dagu"],
    ["GET", new RegExp(`${API}\\/dag-runs\\/${SEG}\\/${SEG}$`), "read", (c) => details(c, c.params), "dagu"],
    ["GET", new RegExp(`${API}\\/dag-runs\\/${SEG}\\/${SEG}\\/sub-dag-runs\\/${SEG}$`), "read", (c) => details(c, c.params), "dagu"],
    [
      "POST",
      new RegExp(`${API}\\/dag-runs\\/${SEG}\\/${SEG}\\/steps\\/${SEG}\\/${ACTIONS}$`),
      "approve",
      (c) => decide(c, [c.params[0], c.params[1], undefined, c.params[2], c.params[3]]),
      "dagu",
    ],
    [
      "POST",
      new RegExp(`${API}\\/dag-runs\\/${SEG}\\/${SEG}\\/sub-dag-runs\\/${SEG}\\/steps\\/${SEG}\\/${ACTIONS}$`),
      "approve",
      (c) => decide(c, c.params),
      "dagu",
    ],
  ];
}

/** An error as Dagu answers it: `{code, message, details}`, our code in details.code. */
export function daguErrorBody(e) {
  const ours = typeof e?.code === "string" && /^[A-Z_]+$/.test(e.code) ? e.code : "INTERNAL";
  const [status, code] = daguError(ours);
  const internal = status === 500 && !(e instanceof SmithersError);
  return { status, body: { code, message: internal ? "internal error" : String(e?.message ?? e), details: { ...(e?.details ?? {}), code: ours } } };
}

/** DAGRunDetails: the run and its steps in Dagu's shape. */
async function runDetails(engine, run) {
  const info = await engine.inspectAsync(run.runId);
  const attempts = await engine.native.attemptLogsAsync(run.runId);
  const approvals = new Map(info.approvals.map((a) => [`${a.nodeId}#${a.iteration}`, a]));
  const [status, statusLabel] = RUN_STATUS[run.status] ?? [0, "not_started"];
  const root = await rootOf(engine, run);
  const parent = run.parentRunId ? await engine.getRunAsync(run.parentRunId) : null;
  const subRuns = new Map();
  for (const n of info.nodes) if (n.subRunId) subRuns.set(n.subRunId, await subRunSummary(engine, n.subRunId));
  const nodes = info.nodes.map((n) => {
    const a = approvals.get(`${n.nodeId}#${n.iteration}`);
    const mine = attempts.filter((t) => t.nodeId === n.nodeId && t.iteration === n.iteration);
    const last = mine.at(-1);
    const [nodeStatus, nodeLabel] = NODE_STATUS[n.state] ?? [0, "not_started"];
    const history = (a?.history ?? []).filter((h) => h.status === "pushed-back");
    const node = {
      step: { name: n.nodeId, ...(a?.kind === "review" ? { approval: { prompt: a.prompt ?? undefined, input: a.input, required: a.required, rewindTo: a.rewindTo ?? undefined } } : {}) },
      stdout: last?.stdoutPath ?? "",
      stderr: last?.stderrPath ?? "",
      startedAt: last?.startedAt ?? "-",
      finishedAt: last?.finishedAt ?? "-",
      status: nodeStatus,
      statusLabel: nodeLabel,
      retryCount: Math.max(0, mine.filter((t) => t.state === "failed").length),
      doneCount: mine.filter((t) => t.state === "finished").length,
      error: n.error?.message ?? undefined,
      approvalIteration: a?.approvalIteration ?? 0,
      pushBackInputs: history.at(-1)?.inputs ?? undefined,
      pushBackHistory: history.map((h) => ({ iteration: h.iteration, by: h.by ?? undefined, at: h.at, inputs: h.inputs ?? {} })),
    };
    if (a?.status === "approved") Object.assign(node, { approvedAt: a.decidedAt, approvedBy: a.decidedBy ?? undefined, approvalInputs: a.inputs });
    if (a?.status === "rejected") Object.assign(node, { rejectedAt: a.decidedAt, rejectedBy: a.decidedBy ?? undefined, rejectionReason: a.reason ?? undefined });
    if (n.subRunId) {
      const sub = subRuns.get(n.subRunId);
      if (sub) node.subRuns = [sub];
    }
    return node;
  });
  return {
    dagRunId: run.runId,
    name: run.workflowName,
    status,
    statusLabel,
    startedAt: run.createdAt,
    finishedAt: run.finishedAt ?? "-",
    params: JSON.stringify(info.input ?? {}),
    artifactsAvailable: false,
    autoRetryCount: 0,
    rootDAGRunId: root.runId,
    rootDAGRunName: root.workflowName,
    ...(parent ? { parentDAGRunId: parent.runId, parentDAGRunName: parent.workflowName } : {}),
    ...(run.rejection ? { rejectedAt: run.rejection.rejectedAt, rejectedBy: run.rejection.rejectedBy, rejectionReason: run.rejection.rejectionReason } : {}),
    nodes,
  };
}

async function rootOf(engine, run) {
  let r = run;
  for (let depth = 0; r.parentRunId && depth < 32; depth++) r = await engine.getRunAsync(r.parentRunId);
  return r;
}

async function subRunSummary(engine, runId) {
  try {
    const sub = await engine.getRunAsync(runId);
    return { dagRunId: sub.runId, dagName: sub.workflowName, params: JSON.stringify((await engine.inspectAsync(runId)).input ?? {}) };
  } catch {
    return null;
  }
}
