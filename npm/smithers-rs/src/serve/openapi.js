// The OpenAPI 3.1 document served at /openapi.json. Kept next to the routes in server.js;
// tests/serve-api.test.js checks that every route is described here.
import { APPROVAL_STATUSES, DELIVERY_STATUSES, NODE_STATES, RUN_STATUSES } from "../contract.js";
import { engineVersion } from "../native.js";

const ref = (name) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema, description = "OK") => ({ description, content: { "application/json": { schema } } });
const str = { type: "string" };
const nstr = { type: ["string", "null"] };
const int = { type: "integer" };

const errors = (...codes) =>
  Object.fromEntries(
    codes.map((status) => [
      String(status),
      json(ref("Error"), {
        400: "Bad request (INVALID_REQUEST, INVALID_JSON, MISSING_REQUIRED_INPUTS, UNDECLARED_INPUT, INVALID_DECISION, PUSH_BACK_UNSUPPORTED, …)",
        401: "No or unknown token (UNAUTHORIZED)",
        403: "Not allowed (FORBIDDEN): missing scope, allowedUsers/allowedScopes, the four-eyes rule, decidedBy not the caller",
        404: "RUN_NOT_FOUND, NODE_NOT_FOUND, NOT_FOUND",
        409: "ALREADY_DECIDED, NOT_WAITING, RUN_REJECTED, RUN_OWNED, RUN_NOT_RESUMABLE",
        422: "A human task's answer that is not valid (HUMAN_TASK_INVALID_JSON, HUMAN_TASK_VALIDATION_FAILED): it counted as an attempt",
      }[status]),
    ]),
  );

const runId = { name: "runId", in: "path", required: true, schema: str };
const nodeId = { name: "nodeId", in: "path", required: true, schema: str };
const query = (name, schema, description) => ({ name, in: "query", required: false, schema, description });

const decisionBody = (properties, description) => ({
  required: false,
  content: { "application/json": { schema: { type: "object", additionalProperties: false, properties, description } } },
});
const common = {
  iteration: { ...int, minimum: 0, description: "Loop iteration of the gate (default: the pending one)" },
  note: { ...str, description: "Stored with the decision" },
  decidedBy: { ...str, description: "Accepted for Smithers clients; must equal the authenticated user (else 403)" },
  expectDigest: { ...str, description: "The approval's `digest` as the decider saw it: refused with STALE_VIEW (409), nothing recorded, when the gate shows something else now" },
};
const inputs = { type: "object", additionalProperties: str, description: "Approver inputs: names the gate declares in `input`" };

const decisionOp = (summary, properties, more = []) => ({
  summary,
  tags: ["approvals"],
  security: [{ bearer: [] }, { cookie: [] }],
  parameters: [runId, nodeId],
  requestBody: decisionBody(properties),
  responses: { 200: json(ref("Decision")), ...errors(400, 401, 403, 404, 409, ...more) },
});

const linkErrors = Object.fromEntries(
  [
    [400, "INVALID_REQUEST: a field other than note, or a note that is not a string"],
    [403, "LINK_INVALID: not signed by this server's link secret, altered, or its approver is no longer configured; FORBIDDEN: the approver may not decide this gate"],
    [404, "NOT_FOUND: decision links are not configured on this server (no links secret)"],
    [409, "LINK_USED: used before (details: usedAt, outcome); ALREADY_DECIDED"],
    [410, "LINK_EXPIRED: past its expiry, or the gate no longer waits in the round the link was made for"],
  ].map(([status, description]) => [String(status), json(ref("Error"), description)]),
);

const daguParam = (name, description) => ({ name, in: "path", required: true, schema: str, description });
const daguErrors = (...codes) => Object.fromEntries(codes.map((status) => [String(status), json(ref("DaguError"), `Dagu's error body (${status})`)]));

/** Dagu's REST paths (serve/dagu.js); /api/v2/… (Dagu 1.x) is served too. */
function daguPaths() {
  const name = daguParam("name", "The DAG's name (its workflow name)");
  const dagRunId = daguParam("dagRunId", "The run id ('latest' on GET: the newest run of the DAG)");
  const subId = daguParam("subDAGRunId", "A sub-run under dagRunId");
  const stepName = daguParam("stepName", "The step (node id)");
  const op = (summary, params, body, response) => ({
    summary,
    tags: ["dagu"],
    security: [{ bearer: [] }, { cookie: [] }],
    parameters: params,
    ...(body ? { requestBody: decisionBody(body) } : {}),
    responses: { 200: json(response), ...daguErrors(400, 401, 403, 404) },
  });
  const inputs = { type: "object", additionalProperties: str };
  const steps = (prefix, params, sub) => ({
    [`${prefix}/steps/{stepName}/approve`]: {
      post: op("Approve a waiting step (Dagu)", [...params, stepName], { inputs }, { type: "object", properties: { dagRunId: str, stepName: str, resumed: { type: "boolean" } } }),
    },
    [`${prefix}/steps/{stepName}/reject`]: {
      post: op("Reject a waiting step: the run ends rejected (Dagu)", [...params, stepName], { reason: str }, { type: "object", properties: { dagRunId: str, stepName: str } }),
    },
    [`${prefix}/steps/{stepName}/push-back`]: {
      post: op("Push a waiting step back with inputs: it and its dependents (or from rewind_to on) run again (Dagu)", [...params, stepName], { inputs }, {
        type: "object",
        properties: { dagRunId: str, stepName: str, approvalIteration: int, resumed: { type: "boolean" }, ...(sub ? { subDAGRunId: str } : {}) },
      }),
    },
  });
  const details = { type: "object", properties: { dagRunDetails: { type: "object", description: "Dagu's DAGRunDetails: status, statusLabel, nodes (status, approvalIteration, pushBackHistory, …)" } } };
  return {
    "/health": { get: { summary: "Dagu's health check", tags: ["dagu"], security: [], responses: { 200: json({ type: "object", properties: { status: str, version: str, uptime: int, timestamp: str } }) } } },
    "/api/v1/health": { get: { summary: "Dagu's health check", tags: ["dagu"], security: [], responses: { 200: json({ type: "object" }) } } },
    "/api/v1/dags/{name}/start": {
      post: {
        ...op("Start a run of an allow-listed DAG (serve config `workflows`; scope execute)", [name], { params: { ...str, description: "JSON object or NAME=value …" }, dagRunId: str, singleton: { type: "boolean" } }, { type: "object", properties: { dagRunId: str } }),
        responses: { 200: json({ type: "object", properties: { dagRunId: str } }), ...daguErrors(400, 401, 403, 404, 409) },
      },
    },
    "/api/v1/dag-runs/{name}/{dagRunId}": { get: op("A run in Dagu's shape", [name, dagRunId], null, details) },
    "/api/v1/dag-runs/{name}/{dagRunId}/sub-dag-runs/{subDAGRunId}": { get: op("A sub-run in Dagu's shape", [name, dagRunId, subId], null, details) },
    ...steps("/api/v1/dag-runs/{name}/{dagRunId}", [name, dagRunId], false),
    ...steps("/api/v1/dag-runs/{name}/{dagRunId}/sub-dag-runs/{subDAGRunId}", [name, dagRunId, subId], true),
  };
}

export function openApiDocument() {
  return {
    openapi: "3.1.0",
    info: {
      title: "smithers-rs serve",
      version: engineVersion(),
      description:
        "Runs, approvals and decisions of a smithers-rs database. Decisions record the authenticated user as decidedBy " +
        "and resume the run in the serving process. Errors are {error: {code, message, details?}} with the CLI's stable codes. " +
        "Scopes: read < execute < approve < admin.",
    },
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "A token from the serve configuration; also accepted as X-Smithers-Key" },
        cookie: { type: "apiKey", in: "cookie", name: "smithers_session", description: "The inbox's session (writes also need X-Smithers-Inbox: 1)" },
      },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: { error: { type: "object", required: ["code", "message"], properties: { code: str, message: str, details: { type: "object" } } } },
        },
        RunSummary: {
          type: "object",
          properties: {
            runId: str, workflowName: str, workflowPath: nstr,
            status: { enum: [...RUN_STATUSES] },
            owner: nstr, ownerLiveness: { enum: ["alive", "dead", "unknown", null] },
            createdAt: str, updatedAt: str, finishedAt: nstr, pendingApprovals: int,
            error: { type: ["object", "null"] }, startedBy: nstr,
            leaseExpiresAt: nstr, resumeError: { type: ["object", "null"], description: "why smithers serve could not resume the run ({code, message})" },
            parentRunId: { ...str, description: "A sub-run's caller (its run, parentNodeId, parentIteration)" },
            parentNodeId: str, parentIteration: int,
            rejection: { type: "object", properties: { nodeId: str, rejectedAt: str, rejectedBy: nstr, rejectionReason: nstr }, description: "A rejected run: who rejected which step, when, why" },
          },
        },
        Node: {
          type: "object",
          properties: {
            nodeId: str, iteration: int,
            state: { enum: [...NODE_STATES] },
            output: str, label: nstr, attempts: int, skipReason: nstr, error: {}, updatedAt: str,
            subRunId: { ...str, description: "The sub-run the task waits on (or last waited on)" },
          },
        },
        Approval: {
          type: "object",
          properties: {
            runId: str, workflowName: str, runStatus: str, nodeId: str, iteration: int,
            status: { enum: [...APPROVAL_STATUSES] },
            mode: { enum: ["gate", "decision", "select", "rank", "human", "review"] }, kind: { enum: ["gate", "review"] },
            onDeny: str, title: nstr, summary: nstr, prompt: nstr, metadata: {}, options: {},
            allowedUsers: {}, allowedScopes: {}, requestedAt: str, requestedAtMs: int, waitingMs: { type: ["integer", "null"] },
            decidedAt: nstr, decidedBy: nstr, note: nstr, round: int,
            input: { type: "array", items: str }, required: { type: "array", items: str }, inputs: { type: "object" },
            reason: nstr, output: {}, stdoutPath: nstr, stdoutTail: nstr, history: { type: "array", items: { type: "object" } },
            digest: { ...str, description: "sha256: digest of what the gate shows (ARCHITECTURE.md); send it back as expectDigest" },
            votes: { type: "array", items: { type: "object" }, description: "A quorum gate's votes on this request: voter, verdict, veto, note, at" },
            label: str, requestTitle: str, requestSummary: nstr, approvalMode: str,
            approvalIteration: { ...int, description: "Dagu's count of push-backs, from 0 (round - 1)" },
            rewindTo: { ...nstr, description: "Where a push-back restarts, when not the step itself" },
            workflowPath: nstr, parentRunId: { ...nstr, description: "Set when the gate is a sub-run's" },
            // A human task: the schema its answer (`decision` of an approve) must fit.
            schema: { type: "object" }, maxAttempts: int, async: { type: "boolean" },
          },
        },
        Decision: {
          type: "object",
          properties: {
            runId: str, nodeId: str, iteration: int, status: { enum: ["approved", "denied", "rejected", "pushed-back", "voted"] },
            quorum: { type: "object", description: "A quorum gate's tally after this vote: needed, approvals, denials, vetoedBy, decided (status voted: it still waits)" },
            decidedBy: nstr, decidedAt: str, runStatus: str, kind: str, round: int, inputs: { type: "object" },
            output: {}, resumed: { type: "boolean", description: "The run was resumed in the serving process" },
            approvalIteration: { ...int, description: "Push-backs of the step so far, after this decision" },
            reset: { type: "array", items: str, description: "Nodes a push-back sent back to pending besides the step" },
          },
        },
        DaguError: {
          type: "object",
          required: ["code", "message"],
          properties: {
            code: { enum: ["bad_request", "not_found", "forbidden", "unauthorized", "already_exists", "max_run_reached", "internal_error"] },
            message: str,
            details: { type: "object", properties: { code: { ...str, description: "smithers' stable code" } } },
          },
        },
        Delivery: {
          type: "object",
          properties: {
            deliveryId: { ...str, description: "msg_<feedId>_<target>; the webhook-id header" },
            target: str, url: str, eventType: { enum: ["gate.waiting", "gate.decided"] }, feedId: int, runId: nstr, nodeId: nstr,
            iteration: int, status: { enum: [...DELIVERY_STATUSES] }, attempts: int, nextAttemptAtMs: int,
            claimedBy: nstr, lastStatusCode: { type: ["integer", "null"] }, lastError: nstr, createdAtMs: int, updatedAtMs: int,
            deliveredAtMs: { type: ["integer", "null"] },
          },
        },
        Event: {
          type: "object",
          properties: { runId: str, seq: int, feedId: int, type: str, timestampMs: int },
          additionalProperties: true,
        },
      },
    },
    security: [{ bearer: [] }, { cookie: [] }],
    paths: {
      "/healthz": { get: { summary: "Liveness", security: [], responses: { 200: json({ type: "object" }) } } },
      "/openapi.json": { get: { summary: "This document", security: [], responses: { 200: json({ type: "object" }) } } },
      "/metrics": {
        get: {
          summary: "Prometheus metrics (text format 0.0.4): runs by status, pending approvals by workflow, time to decision, task durations",
          responses: { 200: { description: "Prometheus text", content: { "text/plain": { schema: str } } }, ...errors(401, 403) },
        },
      },
      "/v1/me": {
        get: { summary: "Who the token stands for", responses: { 200: json({ type: "object", properties: { user: str, scopes: { type: "array", items: str } } }), ...errors(401) } },
      },
      "/v1/session": {
        post: {
          summary: "Sign in the inbox: sets an HttpOnly session cookie for the token (needs X-Smithers-Inbox: 1)",
          security: [],
          requestBody: decisionBody({ token: str }),
          responses: { 200: json({ type: "object" }), ...errors(400, 401, 403) },
        },
        delete: { summary: "Sign out (clears the cookie)", security: [], responses: { 200: json({ type: "object" }) } },
      },
      "/v1/runs": {
        get: {
          summary: "Runs, newest first",
          parameters: [
            query("status", str),
            query("workflow", str),
            query("limit", { ...int, minimum: 1, maximum: 1000 }),
            query("resumeFailed", { type: "boolean", description: "only runs smithers serve could not resume (resumeError says why), or only the others" }),
          ],
          responses: { 200: json({ type: "object", properties: { runs: { type: "array", items: ref("RunSummary") } } }), ...errors(400, 401, 403) },
        },
        post: {
          summary: "Start a run of a workflow file the serve configuration lists under `workflows` (scope execute); the caller is its startedBy",
          requestBody: decisionBody(
            { workflow: { ...str, description: "A name listed in `workflows`" }, workflowPath: { ...str, description: "Or one of the listed files" }, input: { type: "object" }, runId: str },
            "Exactly one of workflow and workflowPath",
          ),
          responses: { 200: json({ type: "object", properties: { runId: str, workflow: str, status: str } }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      "/v1/runs/{runId}": {
        get: {
          summary: "One run: its nodes, approvals, outputs and loops",
          parameters: [runId],
          responses: {
            200: json({
              type: "object",
              properties: { run: ref("RunSummary"), input: {}, nodes: { type: "array", items: ref("Node") }, approvals: { type: "array", items: ref("Approval") }, outputs: { type: "array" }, loops: { type: "array" } },
            }),
            ...errors(401, 403, 404),
          },
        },
      },
      "/v1/runs/{runId}/events": {
        get: {
          summary: "A run's events, oldest first",
          parameters: [runId, query("after", int, "Events after this seq"), query("limit", int)],
          responses: { 200: json({ type: "object", properties: { events: { type: "array", items: ref("Event") } } }), ...errors(401, 403, 404) },
        },
      },
      "/v1/runs/{runId}/logs": {
        get: {
          summary: "Stdout and stderr of a run's command tasks, per attempt",
          parameters: [runId, query("node", str), query("iteration", int), query("attempt", int)],
          responses: { 200: json({ type: "object", properties: { logs: { type: "array" } } }), ...errors(401, 403, 404) },
        },
      },
      "/v1/runs/{runId}/nodes/{nodeId}/logs": {
        get: { summary: "Logs of one node", parameters: [runId, nodeId, query("iteration", int), query("attempt", int)], responses: { 200: json({ type: "object" }), ...errors(401, 403, 404) } },
      },
      "/v1/runs/{runId}/nodes/{nodeId}/approve": {
        post: decisionOp("Approve a gate or a reviewed step (Smithers' route shape)", {
          ...common,
          inputs,
          decision: { type: "object", description: "select: {selected, notes}; rank: {ranked, notes}; a human task: its answer (422 when it does not fit)" },
        }, [422]),
      },
      "/v1/runs/{runId}/signals/{event}": {
        post: {
          summary: "Send an event to the run's <WaitForEvent event> / <Signal id>: its payload becomes that node's output",
          tags: ["approvals"],
          security: [{ bearer: [] }, { cookie: [] }],
          parameters: [runId, { name: "event", in: "path", required: true, schema: str }],
          requestBody: decisionBody({ data: { description: "The payload; it must fit the node's output schema (else 422)" }, correlationId: str }),
          responses: { 200: json(ref("Decision")), ...errors(400, 401, 403, 404, 409, 422) },
        },
      },
      "/v1/runs/{runId}/nodes/{nodeId}/deny": {
        post: decisionOp("Deny a gate (per its onDeny), or reject a reviewed step", { ...common, reason: str }),
      },
      "/v1/runs/{runId}/nodes/{nodeId}/reject": {
        post: decisionOp("Reject a reviewed step with a reason: the run fails", { ...common, reason: str }),
      },
      "/v1/runs/{runId}/nodes/{nodeId}/push-back": {
        post: decisionOp("Send a reviewed step back: it runs again with the inputs, in a new round", { ...common, inputs }),
      },
      "/v1/runs/{runId}/reject": {
        post: {
          summary: "Reject the run (Dagu's Reject): its oldest waiting reviewed step is rejected, the run ends rejected",
          parameters: [runId],
          requestBody: decisionBody({ reason: str }),
          responses: { 200: json(ref("Decision")), ...errors(400, 401, 403, 404, 409) },
        },
      },
      "/v1/runs/{runId}/cancel": {
        post: { summary: "Cancel a run (scope execute)", parameters: [runId], responses: { 200: json({ type: "object" }), ...errors(401, 403, 404) } },
      },
      "/v1/runs/{runId}/resume": {
        post: { summary: "Resume a run in the serving process (scope execute)", parameters: [runId], responses: { 200: json({ type: "object" }), ...errors(400, 401, 403, 404, 409) } },
      },
      "/v1/approvals": {
        get: {
          summary: "Approvals across runs, oldest request first (also at /approvals, /v1/approval/list)",
          parameters: [
            query("workflow", str), query("node", str), query("runId", str),
            query("status", { enum: [...APPROVAL_STATUSES, "all"] }, "Default requested"),
            query("limit", { ...int, minimum: 1, maximum: 500 }), query("cursor", str, "nextCursor of the previous page"),
          ],
          responses: {
            200: json({ type: "object", properties: { approvals: { type: "array", items: ref("Approval") }, nextCursor: nstr } }),
            ...errors(400, 401, 403),
          },
        },
      },
      "/v1/deliveries": {
        get: {
          summary: "The webhook delivery log, newest first (without bodies)",
          parameters: [
            query("status", { enum: [...DELIVERY_STATUSES] }),
            query("run", str), query("target", str, "A webhook's name in the serve configuration"),
            query("limit", { ...int, minimum: 1, maximum: 1000 }), query("cursor", str, "nextCursor of the previous page"),
          ],
          responses: { 200: json({ type: "object", properties: { deliveries: { type: "array", items: ref("Delivery") }, nextCursor: nstr } }), ...errors(400, 401, 403) },
        },
      },
      "/v1/deliveries/{deliveryId}/retry": {
        post: {
          summary: "Make a failed delivery due again, its attempts counted from 0 (scope admin)",
          parameters: [{ name: "deliveryId", in: "path", required: true, schema: str }],
          responses: { 200: json(ref("Delivery")), ...errors(400, 401, 403, 404) },
        },
      },
      "/v1/links/{token}": {
        get: {
          summary: "A signed decision link's confirmation page (HTML); records nothing",
          security: [],
          parameters: [{ name: "token", in: "path", required: true, schema: str }],
          responses: { 200: { description: "text/html: the gate and a button", content: { "text/html": { schema: str } } }, ...linkErrors },
        },
        post: {
          summary: "Use a signed decision link: decides the gate as the link's approver, once (form or JSON `{note}`; JSON answer with Accept: application/json)",
          security: [],
          parameters: [{ name: "token", in: "path", required: true, schema: str }],
          requestBody: {
            required: false,
            content: {
              "application/x-www-form-urlencoded": { schema: { type: "object", additionalProperties: false, properties: { note: str } } },
              "application/json": { schema: { type: "object", additionalProperties: false, properties: { note: str } } },
            },
          },
          responses: {
            200: {
              description: "The decision: JSON with Accept: application/json, else an HTML page saying what was recorded",
              content: { "application/json": { schema: ref("Decision") }, "text/html": { schema: str } },
            },
            ...linkErrors,
          },
        },
      },
      ...daguPaths(),
      "/v1/events": {
        get: {
          summary: "Server-sent events of every run (or ?runId=); id is the feed position, Last-Event-ID resumes",
          parameters: [query("runId", str)],
          responses: { 200: { description: "text/event-stream of Event", content: { "text/event-stream": { schema: str } } }, ...errors(401, 403) },
        },
      },
    },
  };
}
