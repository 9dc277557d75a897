// `smithers serve`: one process that serves the HTTP API and the web approval inbox over a
// database, and drives its runs. Node's own http module; no framework.
//
// Who decides is who authenticated: a bearer token (or the inbox's session cookie) maps to a
// user and scopes, and that user is the `decidedBy` the core records. The core enforces each
// gate's allowedUsers / allowedScopes and the four-eyes rule, as it does for the CLI.
import { createReadStream, existsSync, openSync, readSync, closeSync, fstatSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONTRACT, errorMeta, isTerminal, scopeCovers } from "../contract.js";
import { SmithersEngine } from "../engine.js";
import { SmithersError } from "../errors.js";
import { engineVersion } from "../native.js";
import { authenticate } from "./config.js";
import { daguErrorBody, daguRoutes } from "./dagu.js";
import { linkRoute } from "./link-page.js";
import { Metrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { startAllowed } from "./start.js";
import { Watcher } from "./watch.js";

const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "web");
const COOKIE = "smithers_session";
const MAX_BODY = 1024 * 1024;
const STDOUT_TAIL = 8 * 1024;

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

class HttpError extends SmithersError {}

/**
 * Starts serving. Resolves once the port is bound.
 * @param {{ dbPath: string, host?: string, port?: number, config: ReturnType<typeof import("./config.js").loadServeConfig>,
 *   tokens?: { user: string, scopes: string[], hash: Buffer }[], log?: (line: string) => void,
 *   sendMail?: (smtp: any, message: any) => Promise<any>, pollMs?: number, tracing?: boolean }} options
 *   `tracing`: OpenTelemetry spans of the runs driven and decided here, when configured
 *   (SmithersEngine's option; `smithers serve` turns it on)
 */
export async function startServer(options) {
  const { dbPath, config } = options;
  const tokens = options.tokens ?? config.tokens;
  const log = options.log ?? (() => {});
  // Workflow code (module loading, renders, task bodies, handlers) runs in worker threads
  // with a watchdog, never on this thread: the API and the inbox answer whatever it does.
  const engine = new SmithersEngine({ dbPath, forbidSelfApproval: config.forbidSelfApproval, isolate: config.workers ?? true, log, tracing: options.tracing });
  /** @type {Set<{ res: import("node:http").ServerResponse, runId: string | null }>} */
  const streams = new Set();
  let baseUrl = "";
  let mailer = null;
  let webhooks = null;
  // Where people reach this server (links in mail and webhooks), ending in "/".
  const publicBase = () => (config.publicUrl ? (config.publicUrl.endsWith("/") ? config.publicUrl : `${config.publicUrl}/`) : baseUrl);
  const metrics = new Metrics();
  const watcher = new Watcher(engine, {
    intervalMs: options.pollMs,
    log,
    onEvents: (events) => {
      // A commit (here or by another process) may have scheduled a timer: one wake-up, moved
      // to the earliest due time.
      engine.armTimers();
      metrics.onEvents(events);
      for (const event of events) broadcast(streams, event);
      mailer?.onEvents(events);
      webhooks?.poke();
    },
  });
  if (config.mailOnWait) {
    const { WaitMailer } = await import("./notify.js");
    mailer = new WaitMailer(engine, config.mailOnWait, {
      inboxUrl: () => config.mailOnWait.inboxUrl ?? config.publicUrl ?? baseUrl,
      links: config.links ? { ...config.links, baseUrl: publicBase } : null,
      log,
      sendMail: options.sendMail,
      tokens,
    });
  }
  if (config.webhooks?.length) {
    const { WebhookDispatcher } = await import("./webhooks.js");
    webhooks = new WebhookDispatcher(dbPath, config, { baseUrl: publicBase, log, pollMs: options.webhookPollMs });
  }

  const ctx = { engine, tokens, config, streams, watcher, metrics, log };
  const server = createServer((req, res) => {
    handle(ctx, req, res).catch((e) => {
      log(`internal error on ${req.method} ${req.url}: ${e?.stack ?? e}`);
      if (!res.headersSent) sendError(res, new SmithersError("INTERNAL", "internal error"));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  await new Promise((resolvePromise, reject) => {
    server.once("error", (e) =>
      reject(
        new SmithersError(
          e.code === "EADDRINUSE" ? "ADDRESS_IN_USE" : "LISTEN_FAILED",
          e.code === "EADDRINUSE" ? `port ${options.port} on ${options.host} is in use` : e.message,
          { host: options.host, port: options.port },
        ),
      ),
    );
    server.listen(options.port ?? 7331, options.host ?? "127.0.0.1", resolvePromise);
  });
  const address = server.address();
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  baseUrl = `http://${host}:${address.port}/`;
  watcher.start();
  await webhooks?.start();
  // Durable timers (<Timer>, gates' deadlines): fired here when due, their runs resumed.
  // After the webhooks' cursor is read, so a deadline fired at start-up is delivered.
  engine.startTimers();
  const heartbeat = setInterval(() => {
    for (const s of streams) s.res.write(": ping\n\n");
  }, 15_000);

  let closing = null;
  return {
    url: baseUrl,
    port: address.port,
    engine,
    /**
     * Stops taking requests, ends event streams, lets runs being driven here reach their
     * next wait or end (up to `graceMs`), then closes the database. A run still going after
     * that stays `running` with this (now dead) process as owner: the next serve, or
     * `smithers resume`, takes it over without losing a completed task.
     */
    close({ graceMs = 10_000 } = {}) {
      closing ??= (async () => {
        clearInterval(heartbeat);
        watcher.stop();
        engine.stopTimers();
        const closed = new Promise((r) => server.close(r));
        for (const s of streams) s.res.end();
        server.closeIdleConnections?.();
        const drives = [...engine.driving.values()].map((d) => d.done.catch(() => {}));
        await Promise.race([Promise.all(drives), new Promise((r) => setTimeout(r, graceMs).unref())]);
        await mailer?.flush(graceMs);
        await webhooks?.close(Math.min(graceMs, 5000));
        server.closeAllConnections?.();
        await closed;
        watcher.close();
        engine.close();
      })();
      return closing;
    },
  };
}

function broadcast(streams, event) {
  if (streams.size === 0) return;
  const frame = sseFrame(event);
  for (const s of streams) {
    if (s.runId && s.runId !== event.runId) continue;
    // A stream still replaying from Last-Event-ID holds live events until its replay is out.
    if (s.held) s.held.push(event);
    else s.res.write(frame);
  }
}

function sseFrame(event) {
  return `id: ${event.feedId}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** `GET /metrics`: Prometheus text (serve/metrics.js), counted on the watcher's connection. */
async function prometheusMetrics(c) {
  const text = c.metrics.render(await c.watcher.native.storeMetricsAsync());
  c.res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" });
  c.res.end(text);
}

// ---------------------------------------------------------------------------------------
// Routing

/** [method, path pattern, scope needed (null: public), handler, error shape ("dagu": Dagu's)] */
const ROUTES = [
  ["GET", /^\/healthz$/, null, () => ({ ok: true, engine: engineVersion() })],
  ["GET", /^\/openapi\.json$/, null, () => openApiDocument()],
  ["GET", /^\/metrics$/, "read", prometheusMetrics],
  ["GET", /^\/v1\/me$/, "read", (c) => ({ user: c.auth.user, scopes: c.auth.scopes })],
  ["POST", /^\/v1\/session$/, null, createSession],
  ["DELETE", /^\/v1\/session$/, null, deleteSession],
  ["GET", /^\/v1\/runs$/, "read", listRuns],
  ["GET", /^\/v1\/runs\/([^/]+)$/, "read", getRun],
  ["GET", /^\/v1\/runs\/([^/]+)\/events$/, "read", runEvents],
  ["GET", /^\/v1\/runs\/([^/]+)\/logs$/, "read", runLogs],
  ["GET", /^\/v1\/runs\/([^/]+)\/nodes\/([^/]+)\/logs$/, "read", runLogs],
  ["POST", /^\/v1\/runs\/([^/]+)\/nodes\/([^/]+)\/approve$/, "approve", (c) => decide(c, "approve")],
  ["POST", /^\/v1\/runs\/([^/]+)\/nodes\/([^/]+)\/deny$/, "approve", (c) => decide(c, "deny")],
  ["POST", /^\/v1\/runs\/([^/]+)\/nodes\/([^/]+)\/reject$/, "approve", (c) => decide(c, "reject")],
  ["POST", /^\/v1\/runs\/([^/]+)\/nodes\/([^/]+)\/push-back$/, "approve", (c) => decide(c, "pushBack")],
  ["POST", /^\/v1\/runs\/([^/]+)\/signals\/([^/]+)$/, "approve", sendSignal],
  ["POST", /^\/v1\/runs$/, "execute", startRun],
  ["POST", /^\/v1\/runs\/([^/]+)\/reject$/, "approve", rejectRun],
  ["POST", /^\/v1\/runs\/([^/]+)\/cancel$/, "execute", cancelRun],
  ["POST", /^\/v1\/runs\/([^/]+)\/resume$/, "execute", resumeRun],
  ["GET", /^\/v1\/approvals$/, "read", listApprovals],
  // Smithers' aliases for the approvals list.
  ["GET", /^\/(?:v1\/)?approvals?(?:\/list)?$/, "read", listApprovals],
  ["GET", /^\/v1\/events$/, "read", eventStream],
  ["GET", /^\/v1\/deliveries$/, "read", listDeliveries],
  ["POST", /^\/v1\/deliveries\/([^/]+)\/retry$/, "admin", (c) => c.engine.native.retryDeliveryAsync(c.params[0], Date.now())],
  // Dagu's paths (serve/dagu.js).
  ...daguRoutes({ readBody, HttpError }),
];

async function handle(ctx, req, res) {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  if (req.method === "GET" || req.method === "HEAD") {
    if (path === "/" || /^\/runs\/[^/]+$/.test(path)) return page(ctx, req, res, url);
    if (path.startsWith("/assets/")) return asset(res, path.slice("/assets/".length));
  }
  const link = /^\/v1\/links\/([^/]+)$/.exec(path);
  if (link && (req.method === "GET" || req.method === "POST")) {
    return linkRoute({ ...ctx, req, res, decideAs, readForm: (allowed) => readForm(req, allowed), statusOf: (code) => errorMeta(code).httpStatus }, link[1]);
  }
  let matched = false;
  for (const [method, pattern, scope, handler, format] of ROUTES) {
    const m = pattern.exec(path);
    if (!m) continue;
    matched = true;
    if (method !== req.method) continue;
    try {
      const params = m.slice(1).map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw new HttpError("INVALID_REQUEST", `malformed path segment ${JSON.stringify(p)}`);
        }
      });
      const c = { ...ctx, req, res, url, params, auth: null, query: url.searchParams };
      if (scope) {
        c.auth = identify(ctx, req);
        if (!c.auth.scopes.some((s) => scopeCovers(s, scope))) {
          throw new HttpError("FORBIDDEN", `${c.auth.user} lacks the ${scope} scope (holds: ${c.auth.scopes.join(", ") || "none"})`);
        }
      }
      const value = await handler(c);
      if (value !== undefined && !res.headersSent) sendJson(res, 200, value);
    } catch (e) {
      if (format === "dagu") sendDaguError(res, e, ctx.log);
      else sendError(res, e, ctx.log);
    }
    return;
  }
  sendError(res, new HttpError(matched ? "METHOD_NOT_ALLOWED" : "NOT_FOUND", matched ? `${req.method} is not allowed on ${path}` : `no route ${path}`));
}

/**
 * The caller's identity: `Authorization: Bearer <token>`, `X-Smithers-Key: <token>`
 * (Smithers' header), or the inbox's session cookie. A cookie alone does not authorise a
 * write unless the request carries `X-Smithers-Inbox: 1`, which a page on another site
 * cannot add to a cross-site request (CSRF).
 */
function identify(ctx, req) {
  const header = req.headers.authorization;
  let token = null;
  let viaCookie = false;
  if (header) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new HttpError("UNAUTHORIZED", "Authorization must be `Bearer <token>`");
    token = m[1];
  } else if (req.headers["x-smithers-key"]) {
    token = String(req.headers["x-smithers-key"]);
  } else {
    token = readCookie(req, COOKIE);
    viaCookie = token !== null;
  }
  if (!token) throw new HttpError("UNAUTHORIZED", "sign in: send Authorization: Bearer <token>");
  const auth = authenticate(ctx.tokens, token);
  if (!auth) throw new HttpError("UNAUTHORIZED", "unknown or revoked token");
  if (viaCookie && req.method !== "GET" && req.method !== "HEAD" && req.headers["x-smithers-inbox"] !== "1") {
    throw new HttpError("FORBIDDEN", "a write authorised by the session cookie must carry X-Smithers-Inbox: 1");
  }
  return auth;
}

function readCookie(req, name) {
  for (const part of String(req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) {
      try {
        return decodeURIComponent(v.join("="));
      } catch {
        return null;
      }
    }
  }
  return null;
}

function sessionCookie(token, maxAge) {
  return `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`;
}

async function createSession(c) {
  // A page on another site could post a form here and sign the browser in as the attacker
  // (login CSRF); only the inbox's own script sends this header.
  if (c.req.headers["x-smithers-inbox"] !== "1") {
    throw new HttpError("FORBIDDEN", "creating a session needs X-Smithers-Inbox: 1 (sign in from the inbox page)");
  }
  const body = await readBody(c.req, ["token"]);
  if (typeof body.token !== "string" || !body.token) throw new HttpError("INVALID_REQUEST", "token is required");
  const auth = authenticate(c.tokens, body.token);
  if (!auth) throw new HttpError("UNAUTHORIZED", "unknown or revoked token");
  c.res.setHeader("set-cookie", sessionCookie(body.token, 60 * 60 * 24 * 30));
  return { user: auth.user, scopes: auth.scopes };
}

function deleteSession(c) {
  if (c.req.headers["x-smithers-inbox"] !== "1" && !c.req.headers.authorization) {
    throw new HttpError("FORBIDDEN", "signing out needs X-Smithers-Inbox: 1");
  }
  c.res.setHeader("set-cookie", sessionCookie("", 0));
  return { ok: true };
}

// ---------------------------------------------------------------------------------------
// Handlers

// The read handlers call the engine's `…Async` forms: on PostgreSQL the server keeps serving
// while a read waits on the network (ARCHITECTURE.md, "The binding on PostgreSQL").
async function listRuns(c) {
  const status = c.query.get("status") ?? undefined;
  const workflowName = c.query.get("workflow") ?? undefined;
  const limit = intParam(c.query, "limit", 50, 1, 1000);
  const flag = c.query.get("resumeFailed");
  if (flag !== null && flag !== "true" && flag !== "false") throw new HttpError("INVALID_REQUEST", "resumeFailed must be true or false");
  const resumeFailed = flag === null ? undefined : flag === "true";
  return { runs: await c.engine.native.listRunsAsync({ status, workflowName, limit, resumeFailed }) };
}

async function getRun(c) {
  const inspection = await c.engine.native.inspectAsync(c.params[0]);
  inspection.approvals = inspection.approvals.map(withCompatFields);
  return inspection;
}

async function runEvents(c) {
  const after = intParam(c.query, "after", 0, 0, Number.MAX_SAFE_INTEGER);
  const limit = intParam(c.query, "limit", 200, 1, 10_000);
  return { events: await c.engine.native.eventsAsync(c.params[0], after, limit) };
}

async function runLogs(c) {
  const filter = { maxBytes: 256 * 1024 };
  const node = c.params[1] ?? c.query.get("node");
  if (node) filter.nodeId = node;
  if (c.query.has("iteration")) filter.iteration = intParam(c.query, "iteration", 0, 0, 1e9);
  if (c.query.has("attempt")) filter.attempt = intParam(c.query, "attempt", 1, 1, 1e9);
  return { logs: await c.engine.logsAsync(c.params[0], filter) };
}

async function listApprovals(c) {
  const q = c.query;
  const limit = intParam(q, "limit", 50, 1, 500);
  const filter = {
    workflowName: q.get("workflow") ?? q.get("workflowName") ?? undefined,
    nodeId: q.get("node") ?? q.get("nodeId") ?? undefined,
    runId: q.get("runId") ?? q.get("run") ?? undefined,
    status: q.get("status") ?? undefined,
    limit,
  };
  const cursor = q.get("cursor");
  if (cursor) filter.after = decodeCursor(cursor);
  let approvals;
  try {
    approvals = await c.engine.native.pendingApprovalsAsync(filter);
  } catch (e) {
    if (e.code === "INVALID_DECISION") throw new HttpError("INVALID_REQUEST", e.message);
    throw e;
  }
  const last = approvals.at(-1);
  return {
    approvals: approvals.map(withCompatFields),
    nextCursor: approvals.length === limit && last ? encodeCursor(last) : null,
  };
}

/** Smithers' names for the same fields (GET /v1/approvals, the gateway), and the stdout tail. */
function withCompatFields(a) {
  return {
    ...a,
    label: a.title ?? a.nodeId,
    requestTitle: a.title ?? a.nodeId,
    requestSummary: a.summary ?? null,
    approvalMode: a.mode,
    stdoutTail: a.stdoutPath ? tail(a.stdoutPath, STDOUT_TAIL) : null,
  };
}

function tail(path, bytes) {
  let fd;
  try {
    fd = openSync(path, "r");
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    return buf.toString("utf8");
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const encodeCursor = (a) => Buffer.from(JSON.stringify([a.requestedAtMs, a.runId, a.nodeId, a.iteration])).toString("base64url");

function decodeCursor(text) {
  try {
    const [requestedAtMs, runId, nodeId, iteration] = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
    if (Number.isInteger(requestedAtMs) && typeof runId === "string" && typeof nodeId === "string" && Number.isInteger(iteration)) {
      return { requestedAtMs, runId, nodeId, iteration };
    }
  } catch {
    // fall through
  }
  throw new HttpError("INVALID_REQUEST", "cursor is not one this server handed out (use nextCursor as given)");
}

const DECISION_FIELDS = {
  approve: ["iteration", "note", "inputs", "decision", "decidedBy", "expectDigest"],
  deny: ["iteration", "note", "reason", "decidedBy", "expectDigest"],
  reject: ["iteration", "note", "reason", "decidedBy", "expectDigest"],
  pushBack: ["iteration", "note", "inputs", "decidedBy", "expectDigest"],
};

async function decide(c, kind) {
  const [runId, nodeId] = c.params;
  const body = await readBody(c.req, DECISION_FIELDS[kind]);
  if (body.iteration !== undefined && !(Number.isInteger(body.iteration) && body.iteration >= 0)) {
    throw new HttpError("INVALID_REQUEST", "iteration must be a whole number ≥ 0");
  }
  for (const key of ["note", "reason", "expectDigest"]) {
    if (body[key] !== undefined && body[key] !== null && typeof body[key] !== "string") {
      throw new HttpError("INVALID_REQUEST", `${key} must be a string`);
    }
  }
  if (body.inputs !== undefined) {
    const ok =
      body.inputs && typeof body.inputs === "object" && !Array.isArray(body.inputs) &&
      Object.values(body.inputs).every((v) => typeof v === "string");
    if (!ok) throw new HttpError("INVALID_REQUEST", "inputs must be an object of strings, e.g. {\"APPROVED_BY\": \"alice\"}");
  }
  if (body.decision !== undefined && (typeof body.decision !== "object" || Array.isArray(body.decision))) {
    throw new HttpError("INVALID_REQUEST", "decision must be an object ({selected} or {ranked}, with notes; a human task's answer)");
  }
  // The decider is the authenticated user. A client that names someone else is told so,
  // rather than having the name silently replaced.
  if (body.decidedBy !== undefined && body.decidedBy !== null && body.decidedBy !== c.auth.user) {
    throw new HttpError(
      "FORBIDDEN",
      `decidedBy ${JSON.stringify(body.decidedBy)} is not the authenticated user ${JSON.stringify(c.auth.user)}: the decider is taken from the token`,
    );
  }
  return decideAs(c, kind, runId, nodeId, body);
}

/** Records a decision as the authenticated user; the run resumes in this process. */
async function decideAs(c, kind, runId, nodeId, body) {
  const method = kind === "reject" ? "deny" : kind;
  const outcome = await c.engine[method](runId, {
    nodeId,
    iteration: body.iteration,
    note: body.note ?? undefined,
    reason: kind === "deny" || kind === "reject" ? (body.reason ?? undefined) : undefined,
    inputs: body.inputs,
    decision: body.decision,
    decidedBy: c.auth.user,
    scopes: c.auth.scopes,
    expectDigest: body.expectDigest ?? undefined,
  });
  const { done, ...recorded } = outcome;
  c.log(`${recorded.status} ${recorded.nodeId} in run ${runId} by ${c.auth.user}${done ? " (resuming)" : ""}`);
  done?.then(
    (r) => c.log(`run ${runId}: ${r.status}${r.error ? ` (${r.error.code})` : ""}`),
    (e) => c.log(`run ${runId} did not resume: ${e?.code ?? "ERROR"} ${e?.message ?? e}`),
  );
  if (recorded.status === "invalid") {
    // A human task's answer that does not fit: refused, though it used up an attempt.
    const { attempt, maxAttempts } = recorded;
    throw new HttpError(recorded.error.code, recorded.error.message, { nodeId: recorded.nodeId, attempt, maxAttempts, runStatus: recorded.runStatus });
  }
  return { ...recorded, resumed: Boolean(done) };
}

/**
 * `POST /v1/runs/:runId/signals/:event {data, correlationId?}`: the event for the run's
 * `<WaitForEvent>` / `<Signal>`, sent as the authenticated user (as `smithers signal`); 422
 * when its payload does not fit, 404 (NO_PENDING_APPROVALS) when nothing waits for it.
 */
async function sendSignal(c) {
  const [runId, event] = c.params;
  const body = await readBody(c.req, ["data", "correlationId"]);
  if (body.correlationId != null && typeof body.correlationId !== "string") throw new HttpError("INVALID_REQUEST", "correlationId must be a string");
  const outcome = await c.engine.signal(runId, event, body.data ?? {}, { correlationId: body.correlationId ?? undefined, decidedBy: c.auth.user });
  const { done, ...recorded } = outcome;
  c.log(`event ${event} for ${recorded.nodeId} in run ${runId} by ${c.auth.user}: ${recorded.status}`);
  done?.then(
    (r) => c.log(`run ${runId}: ${r.status}${r.error ? ` (${r.error.code})` : ""}`),
    (e) => c.log(`run ${runId} did not resume: ${e?.code ?? "ERROR"} ${e?.message ?? e}`),
  );
  if (recorded.status === "invalid") {
    const { attempt, maxAttempts } = recorded;
    throw new HttpError(recorded.error.code, recorded.error.message, { nodeId: recorded.nodeId, attempt, maxAttempts, runStatus: recorded.runStatus });
  }
  return { ...recorded, resumed: Boolean(done) };
}

/**
 * `POST /v1/runs {workflow | workflowPath, input?, runId?}`: starts a run of a workflow file
 * the serve configuration allow-lists (`workflows`), as the caller.
 */
async function startRun(c) {
  const body = await readBody(c.req, ["workflow", "workflowPath", "input", "runId"]);
  if ((body.workflow === undefined) === (body.workflowPath === undefined)) {
    throw new HttpError("INVALID_REQUEST", "give workflow (a name the serve configuration lists) or workflowPath (one of its files)");
  }
  for (const key of ["workflow", "workflowPath"]) {
    if (body[key] !== undefined && (typeof body[key] !== "string" || body[key] === "")) throw new HttpError("INVALID_REQUEST", `${key} must be a string`);
  }
  const started = await startAllowed(c, {
    name: body.workflow,
    path: body.workflowPath,
    input: body.input ?? {},
    runId: body.runId,
    startedBy: c.auth.user,
  });
  return { runId: started.runId, workflow: started.workflow, status: (await c.engine.getRunAsync(started.runId)).status };
}

/**
 * `POST /v1/runs/:runId/reject {reason?}`: rejects the run (Dagu's Reject for a waiting
 * run): its oldest waiting reviewed step is rejected, which ends the run `rejected` and
 * withdraws every other wait.
 */
async function rejectRun(c) {
  const runId = c.params[0];
  const body = await readBody(c.req, ["reason"]);
  if (body.reason !== undefined && body.reason !== null && typeof body.reason !== "string") throw new HttpError("INVALID_REQUEST", "reason must be a string");
  const review = (await c.engine.pendingApprovalsAsync({ runId, limit: 500 })).find((a) => a.runId === runId && a.kind === "review");
  if (!review) throw new HttpError("NO_PENDING_APPROVALS", `run ${runId} has no reviewed step waiting to be rejected`, { runId });
  return decideAs(c, "reject", runId, review.nodeId, { iteration: review.iteration, reason: body.reason ?? undefined });
}

function cancelRun(c) {
  return c.engine.cancelAsync(c.params[0]);
}

async function resumeRun(c) {
  const runId = c.params[0];
  const summary = await c.engine.getRunAsync(runId);
  if (isTerminal(summary.status)) {
    throw new HttpError("RUN_NOT_RESUMABLE", `run ${runId} is ${summary.status}`);
  }
  const done = c.engine.resume(runId);
  done.then(
    (r) => c.log(`run ${runId}: ${r.status}`),
    (e) => c.log(`run ${runId} did not resume: ${e?.code ?? "ERROR"} ${e?.message ?? e}`),
  );
  // Errors found before the claim (no workflow file, owned elsewhere) are the answer.
  const early = await Promise.race([done.then(() => null, (e) => e), new Promise((r) => setTimeout(r, 50, null))]);
  if (early) throw early;
  return { runId, resumed: true };
}

/** Server-sent events: every run's events (or one run's, `?runId=`), from the database-wide feed. */
async function eventStream(c) {
  const { req, res } = c;
  const runId = c.query.get("runId") ?? null;
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write("retry: 1000\n\n");
  const lastId = Number(req.headers["last-event-id"] ?? c.query.get("after") ?? NaN);
  const replaying = Number.isInteger(lastId) && lastId >= 0;
  // Registered before the replay is read (on PostgreSQL that read waits on the engine's
  // thread): what is broadcast meanwhile is held, then written after the replay, once.
  const stream = { res, runId, held: replaying ? [] : null };
  c.streams.add(stream);
  const drop = () => c.streams.delete(stream);
  req.on("close", drop);
  res.on("error", drop);
  if (replaying) {
    let last = lastId;
    try {
      for (const event of await c.watcher.replay(lastId, 1000)) {
        last = event.feedId;
        if (!runId || event.runId === runId) res.write(sseFrame(event));
      }
    } finally {
      const held = stream.held;
      stream.held = null;
      for (const event of held) if (event.feedId > last) res.write(sseFrame(event));
    }
  }
  return undefined;
}

/**
 * `GET /v1/deliveries?status=&run=&target=&limit=&cursor=`: the webhook delivery log, newest
 * first, without bodies (a waiting gate's body may hold decision links).
 */
async function listDeliveries(c) {
  const q = c.query;
  const limit = intParam(q, "limit", 50, 1, 1000);
  const filter = { status: q.get("status") ?? undefined, runId: q.get("run") ?? q.get("runId") ?? undefined, target: q.get("target") ?? undefined, limit };
  const cursor = q.get("cursor");
  if (cursor) {
    try {
      const [createdAtMs, deliveryId] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
      if (!Number.isInteger(createdAtMs) || typeof deliveryId !== "string") throw new Error("shape");
      filter.before = { createdAtMs, deliveryId };
    } catch {
      throw new HttpError("INVALID_REQUEST", "cursor is not one this server handed out (use nextCursor as given)");
    }
  }
  const deliveries = await c.engine.native.listDeliveriesAsync(filter);
  const last = deliveries.at(-1);
  return {
    deliveries,
    nextCursor: deliveries.length === limit && last ? Buffer.from(JSON.stringify([last.createdAtMs, last.deliveryId])).toString("base64url") : null,
  };
}

// ---------------------------------------------------------------------------------------
// The inbox page and its files

function page(ctx, req, res, url) {
  const token = url.searchParams.get("token");
  if (token !== null) {
    // A sign-in link (printed by `smithers serve`). Opening it must not sign anyone in by
    // itself: a link from someone else would sign the browser in as them (login CSRF). The
    // token moves to the fragment (never sent to a server again, nor in a Referer); the page
    // says whose it is and signs in only when asked to.
    url.searchParams.delete("token");
    const location = `${url.pathname}${url.search}#token=${encodeURIComponent(token)}`;
    res.writeHead(303, { ...SECURITY_HEADERS, location, "cache-control": "no-store" });
    res.end();
    return;
  }
  const file = join(WEB_DIR, "index.html");
  if (!existsSync(file)) {
    res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end("the inbox files are missing from this installation");
    return;
  }
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    "content-type": TYPES[".html"],
    "cache-control": "no-store",
    "content-security-policy": PAGE_CSP,
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(file).pipe(res);
}

/** The core's vocabulary for the inbox (`/assets/contract.js`): one copy, the core's. */
const CONTRACT_MODULE = `// Generated by smithers serve from the core's contract (contract.rs).\nexport const CONTRACT = ${JSON.stringify(CONTRACT)};\n`;

function asset(res, name) {
  if (name === "contract.js") {
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": TYPES[".js"], "cache-control": "no-cache" });
    return res.end(CONTRACT_MODULE);
  }
  if (!/^[A-Za-z0-9][\w.-]*$/.test(name) || !TYPES[extname(name)]) {
    return sendError(res, new HttpError("NOT_FOUND", `no asset ${name}`));
  }
  const file = join(WEB_DIR, name);
  if (!existsSync(file)) return sendError(res, new HttpError("NOT_FOUND", `no asset ${name}`));
  res.writeHead(200, { ...SECURITY_HEADERS, "content-type": TYPES[extname(name)], "cache-control": "no-cache" });
  createReadStream(file).pipe(res);
}

// ---------------------------------------------------------------------------------------
// Plumbing

/**
 * The JSON body, whatever Content-Type says (`curl -d` sends form-urlencoded). Cookie-authorised
 * writes need X-Smithers-Inbox, so a cross-site form post never gets this far.
 */
async function readBody(req, allowed) {
  const chunks = [];
  let size = 0;
  const declared = Number(req.headers["content-length"]);
  if (declared > MAX_BODY) throw tooLarge(req);
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw tooLarge(req);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (!text) return {};
  let body;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new HttpError("INVALID_JSON", `the body is not valid JSON: ${e.message}`);
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) throw new HttpError("INVALID_REQUEST", "the body must be a JSON object");
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    throw new HttpError("INVALID_REQUEST", `unknown field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (accepted: ${allowed.join(", ")})`);
  }
  return body;
}

/** A form post (a decision link's page) or a JSON body: only `allowed` fields, all strings. */
async function readForm(req, allowed) {
  if (!/^application\/x-www-form-urlencoded/i.test(req.headers["content-type"] ?? "")) return readBody(req, allowed);
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw tooLarge(req);
    chunks.push(chunk);
  }
  const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
  const body = {};
  for (const [k, v] of form) {
    if (!allowed.includes(k)) throw new HttpError("INVALID_REQUEST", `unknown field ${k} (accepted: ${allowed.join(", ")})`);
    body[k] = v;
  }
  return body;
}

/**
 * 413: the rest of the body is never read, so the connection cannot carry another request
 * (its bytes would be read as one): the answer says `Connection: close` and the socket ends.
 */
function tooLarge(req) {
  req.tooLarge = true;
  return new HttpError("PAYLOAD_TOO_LARGE", "the body is larger than 1 MiB");
}

function intParam(query, name, fallback, min, max) {
  const raw = query.get(name);
  if (raw === null || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpError("INVALID_REQUEST", `${name} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

function sendDaguError(res, e, log) {
  const { status, body } = daguErrorBody(e);
  if (status === 500) log?.(`error: ${e?.stack ?? e}`);
  if (res.headersSent) return res.end();
  if (status === 401) res.setHeader("www-authenticate", 'Bearer realm="smithers"');
  sendJson(res, status, body);
}

function sendError(res, e, log) {
  const code = typeof e?.code === "string" && /^[A-Z_]+$/.test(e.code) ? e.code : "INTERNAL";
  // The core's HTTP status for the code (contract.rs); a code it gives no meaning to is the
  // caller's mistake (400) when we raised it, ours (500) when something else threw.
  const known = Object.hasOwn(CONTRACT.errorCodes, code);
  const status = known || e instanceof SmithersError ? errorMeta(code).httpStatus : 500;
  if (status === 500) log?.(`error: ${e?.stack ?? e}`);
  const error = { code, message: status === 500 && !(e instanceof SmithersError) ? "internal error" : e.message };
  if (e?.details && Object.keys(e.details).length) error.details = e.details;
  if (res.headersSent) return res.end();
  if (code === "UNAUTHORIZED") res.setHeader("www-authenticate", 'Bearer realm="smithers"');
  if (res.req?.tooLarge) {
    res.setHeader("connection", "close");
    res.on("finish", () => res.req.socket?.destroySoon?.());
  }
  sendJson(res, status, { error });
}
