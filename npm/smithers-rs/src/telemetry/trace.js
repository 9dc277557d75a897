// OpenTelemetry traces of runs, made from the events an engine commits (ARCHITECTURE.md,
// "Traces"). Loaded only when telemetry/env.cjs says traces are configured; the OpenTelemetry
// packages (optional peer dependencies: @opentelemetry/api, @opentelemetry/sdk-trace,
// @opentelemetry/resources and the exporter of the configured protocol) are imported on first
// use, and a missing one is a warning, never a failure.
//
// One trace per run, whatever process does what: its trace id and the span id of its run span
// are derived from the run id (the first 16 and 8 bytes of SHA-256 of "smithers-rs trace\0" +
// run id and "smithers-rs run\0" + run id), so every process that records a part of the run
// puts its spans in the same trace, under the same parent, without telling the others.
//   - a span per node attempt (`task <nodeId>`), made by the process that records the
//     attempt's end (NodeFinished / NodeFailed / NodeRetrying / NodeAbandoned / NodeCancelled,
//     or a review / sub-run / timer wait), from its NodeStarted (seen here, else read from the
//     run's history);
//   - a span per decided approval (`approval <nodeId>`), made by the process that records the
//     decision: from the request (the decision's `waitedMs` before it) to the decision, with
//     the events `smithers.approval.waiting` and `smithers.approval.decided`;
//   - the run span (`run <workflow>`, the root), made by the process that records the run's
//     end: from the run's creation to its end, with the run's approval requests and decisions
//     (from its whole event history, whoever recorded them) and status changes as events.
// A run still waiting has its attempts' spans exported under a root that comes when it ends.
import { createHash } from "node:crypto";
import { writeSync } from "node:fs";

const TERMINAL = new Set(["finished", "failed", "cancelled", "rejected"]);
const DECISIONS = { ApprovalGranted: "approved", ApprovalDenied: "denied", ApprovalRejected: "rejected", ApprovalPushedBack: "pushed-back", ApprovalAutoApproved: "approved" };
/** Events that end the attempt a node has open, and the outcome they give it. */
const ATTEMPT_ENDS = {
  NodeFinished: "finished",
  NodeFailed: "failed",
  NodeRetrying: "retrying",
  NodeAbandoned: "abandoned",
  NodeCancelled: "cancelled",
  NodeWaitingApproval: "waiting-approval",
  NodeWaitingSubRun: "waiting-sub-run",
  NodeSubRunEnded: "sub-run-ended",
  NodeWaitingTimer: "waiting-timer",
};
/** Events of a run's history that become events of its run span. */
const RUN_SPAN_EVENTS = new Set(["RunStarted", "RunStatusChanged", "ApprovalRequested", "ApprovalVoted", "ApprovalTimedOut", ...Object.keys(DECISIONS)]);
/** The exporter package of each OTLP protocol (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL). */
const EXPORTERS = {
  "http/protobuf": "@opentelemetry/exporter-trace-otlp-proto",
  "http/json": "@opentelemetry/exporter-trace-otlp-http",
  grpc: "@opentelemetry/exporter-trace-otlp-grpc",
};
/** How long one export may take when OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT does not say: a CLI waits for its spans before it exits. */
const DEFAULT_EXPORT_TIMEOUT_MS = 2_000;
const HISTORY_PAGE = 1_000;

const hash = (text, bytes) => createHash("sha256").update(text).digest("hex").slice(0, bytes * 2);
/** A hex id that is not all zeros (an invalid id to OpenTelemetry). */
const valid = (id) => (/^0+$/.test(id) ? `${id.slice(0, -1)}1` : id);
/** The trace id of a run's trace. */
export const traceIdOf = (runId) => valid(hash(`smithers-rs trace\u0000${runId}`, 16));
/** The span id of a run's run span. */
export const runSpanIdOf = (runId) => valid(hash(`smithers-rs run\u0000${runId}`, 8));

const warned = new Set();
/** A line on stderr, once per process for each `key`. */
function warnOnce(key, text) {
  if (warned.has(key)) return;
  warned.add(key);
  try {
    writeSync(2, `smithers: ${text}\n`);
  } catch {
    // stderr closed: nothing to tell
  }
}

const env = (name) => {
  const v = process.env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
};
const envInt = (name) => {
  const v = Number(env(name));
  return Number.isInteger(v) && v > 0 ? v : undefined;
};

/** The OpenTelemetry pipeline of this process (thread), made once: null when it cannot be. */
let pipeline = null;

function setUp() {
  pipeline ??= (async () => {
    const protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? env("OTEL_EXPORTER_OTLP_PROTOCOL") ?? "http/protobuf";
    const exporterPackage = EXPORTERS[protocol];
    if (!exporterPackage) {
      warnOnce("protocol", `OTEL_EXPORTER_OTLP_PROTOCOL=${JSON.stringify(protocol)} is not an OTLP protocol (http/protobuf, http/json, grpc); no spans are exported`);
      return null;
    }
    const others = (env("OTEL_TRACES_EXPORTER") ?? "otlp").split(",").map((s) => s.trim()).filter((s) => s && s !== "otlp");
    if (others.length) warnOnce("exporters", `OTEL_TRACES_EXPORTER: only otlp is supported; ${others.join(", ")} left out`);
    const names = ["@opentelemetry/api", "@opentelemetry/sdk-trace", "@opentelemetry/resources", exporterPackage];
    let api, sdk, resources, exporters;
    try {
      [api, sdk, resources, exporters] = await Promise.all(names.map((n) => import(n)));
    } catch (e) {
      warnOnce("packages", `OpenTelemetry traces are configured (OTEL_EXPORTER_OTLP_*) but ${e?.code === "ERR_MODULE_NOT_FOUND" ? "its packages are not installed" : `they cannot be loaded (${e?.message ?? e})`}: npm install ${names.join(" ")}; no spans are exported`);
      return null;
    }
    const timeoutSet = env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? env("OTEL_EXPORTER_OTLP_TIMEOUT");
    const timeoutMs = envInt("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? envInt("OTEL_EXPORTER_OTLP_TIMEOUT") ?? DEFAULT_EXPORT_TIMEOUT_MS;
    // The endpoint, headers, compression and TLS files come from the standard variables,
    // read by the exporter itself.
    const inner = new exporters.OTLPTraceExporter(timeoutSet ? {} : { timeoutMillis: DEFAULT_EXPORT_TIMEOUT_MS });
    const where = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? env("OTEL_EXPORTER_OTLP_ENDPOINT") ?? "the default OTLP endpoint";
    // A collector that cannot be reached never fails a run: said once, the spans dropped.
    const exporter = {
      export(spans, done) {
        inner.export(spans, (result) => {
          if (result.code !== 0) {
            warnOnce("export", `spans could not be exported to ${where} (${result.error?.message ?? "export failed"}); runs go on without them (further failures are not reported)`);
          }
          done(result);
        });
      },
      shutdown: () => inner.shutdown(),
      forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
    };
    // service.name "smithers" unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES says.
    const resource = resources
      .defaultResource()
      .merge(resources.resourceFromAttributes({ "service.name": "smithers" }))
      .merge(resources.detectResources({ detectors: [resources.envDetector] }));
    const ids = new FixedIds(new sdk.RandomIdGenerator());
    const provider = new sdk.TracerProvider({
      resource,
      idGenerator: ids,
      spanProcessors: [
        new sdk.BatchSpanProcessor({
          exporter,
          scheduledDelayMillis: envInt("OTEL_BSP_SCHEDULE_DELAY"),
          exportTimeoutMillis: envInt("OTEL_BSP_EXPORT_TIMEOUT") ?? timeoutMs + 1_000,
          maxQueueSize: envInt("OTEL_BSP_MAX_QUEUE_SIZE"),
          maxExportBatchSize: envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        }),
      ],
    });
    return { api, provider, tracer: provider.getTracer("smithers-rs"), ids, timeoutMs };
  })();
  return pipeline;
}

/**
 * Span ids as OpenTelemetry's generator makes them, except the next root span's trace and span
 * id when set (`fix`): a run span's ids are the run's (traceIdOf, runSpanIdOf).
 */
class FixedIds {
  constructor(random) {
    this.random = random;
    this.trace = null;
    this.span = null;
  }
  fix(traceId, spanId) {
    this.trace = traceId;
    this.span = spanId;
  }
  generateTraceId() {
    const id = this.trace ?? this.random.generateTraceId();
    this.trace = null;
    return id;
  }
  generateSpanId() {
    const id = this.span ?? this.random.generateSpanId();
    this.span = null;
    return id;
  }
}

/** A span described as data (made before OpenTelemetry is loaded, or without it). */
function make(p, s) {
  const { api, tracer, ids } = p;
  const parent = s.root
    ? api.ROOT_CONTEXT
    : api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: traceIdOf(s.runId), spanId: runSpanIdOf(s.runId), traceFlags: api.TraceFlags.SAMPLED, isRemote: true });
  if (s.root) ids.fix(traceIdOf(s.runId), runSpanIdOf(s.runId));
  const links = (s.links ?? []).map((l) => ({
    context: { traceId: traceIdOf(l.runId), spanId: runSpanIdOf(l.runId), traceFlags: api.TraceFlags.SAMPLED, isRemote: true },
    attributes: l.attributes,
  }));
  const span = tracer.startSpan(s.name, { kind: api.SpanKind.INTERNAL, startTime: new Date(s.startMs), attributes: clean(s.attributes), links, root: Boolean(s.root) }, parent);
  for (const e of s.events ?? []) span.addEvent(e.name, clean(e.attributes), new Date(e.atMs));
  if (s.error) span.setStatus({ code: api.SpanStatusCode.ERROR, message: s.error });
  span.end(new Date(Math.max(s.endMs, s.startMs)));
}

/** Attributes without the unset ones (OpenTelemetry takes strings, numbers, booleans). */
function clean(attributes = {}) {
  const out = {};
  for (const [k, v] of Object.entries(attributes)) if (v !== undefined && v !== null && v !== "") out[k] = v;
  return out;
}

/** Work under way (spans being made): what `flushTraces` waits for. */
const pending = new Set();
function track(promise) {
  const p = Promise.resolve(promise).catch(() => {});
  pending.add(p);
  p.finally(() => pending.delete(p));
  return p;
}

function emit(span) {
  return track(setUp().then((p) => p && make(p, span)));
}

/**
 * Exports what this process has made so far: waits for the spans being made, then for their
 * export, at most `timeoutMs` in all (default: the export timeout, OTEL_EXPORTER_OTLP_TIMEOUT or
 * 2 s). Never throws.
 * @param {number} [timeoutMs]
 */
export async function flushTraces(timeoutMs) {
  if (pipeline === null && pending.size === 0) return;
  const limit = timeoutMs ?? (envInt("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? envInt("OTEL_EXPORTER_OTLP_TIMEOUT") ?? DEFAULT_EXPORT_TIMEOUT_MS) + 500;
  let timer;
  // Ref'd: the reads a span waits for (PostgreSQL) may hold nothing else that keeps the
  // process alive.
  const expired = new Promise((resolve) => {
    timer = setTimeout(resolve, limit);
  });
  const flushed = (async () => {
    // Spans still being made (their reads, OpenTelemetry loading), then their export.
    while (pending.size) await Promise.all([...pending]);
    const p = await pipeline?.catch(() => null);
    await p?.provider.forceFlush({ timeoutMillis: limit }).catch(() => {});
  })();
  await Promise.race([flushed, expired]);
  clearTimeout(timer);
}

/**
 * Turns the events one engine commits into spans.
 * @param {{ summary: (runId: string) => any, events: (runId: string, afterSeq: number, limit: number) => any, remote: boolean }} read
 *   the engine's reads (synchronous on SQLite, promises on PostgreSQL)
 */
export function traceSink(read) {
  /** `run\0node\0iteration` → the attempt open there: { attempt, startMs, kind } */
  const open = new Map();
  /** Reads under way (PostgreSQL): the engine closes its database after them. */
  const reading = new Set();
  const whileReading = (promise) => {
    if (!read.remote) return promise;
    reading.add(promise);
    const done = () => reading.delete(promise);
    promise.then(done, done);
    return promise;
  };

  /** Calls `fn` on the engine's reads; its answer (a value, or a promise on PostgreSQL). */
  const safely = (fn) => {
    try {
      const v = fn();
      return v && typeof v.then === "function" ? whileReading(v.catch(() => null)) : v;
    } catch {
      return null;
    }
  };

  function attemptSpan(e, started, outcome, kind) {
    const error = e.error && typeof e.error === "object" ? e.error : null;
    const failed = outcome === "failed" || outcome === "retrying";
    return {
      runId: e.runId,
      name: `task ${e.nodeId}`,
      startMs: started,
      endMs: e.timestampMs,
      attributes: {
        "smithers.run.id": e.runId,
        "smithers.node.id": e.nodeId,
        "smithers.node.iteration": e.iteration ?? 0,
        "smithers.node.attempt": e.attempt,
        "smithers.node.kind": kind,
        "smithers.node.outcome": outcome,
        "smithers.node.error.code": failed ? (error?.code ?? "TASK_FAILED") : undefined,
        "error.type": failed ? (error?.code ?? "TASK_FAILED") : undefined,
        "smithers.sub_run.id": e.subRunId,
      },
      error: failed ? (error?.message ?? "the attempt failed") : undefined,
    };
  }

  function attemptEnded(e, outcome, kinds) {
    const key = `${e.runId}\u0000${e.nodeId}\u0000${e.iteration ?? 0}`;
    const started = open.get(key);
    open.delete(key);
    const kind = started?.kind ?? kinds?.[`${e.runId}\u0000${e.nodeId}`];
    if (started) {
      emit(attemptSpan({ ...e, attempt: e.attempt ?? started.attempt }, started.startMs, outcome, kind));
      return;
    }
    // Started before this process saw it (a claim abandoning a dead owner's attempt): its
    // start is its NodeStarted in the run's history.
    if (typeof e.attempt !== "number") return;
    const iteration = e.iteration ?? 0;
    const found = safely(() => history(e.runId, (x) => x.type === "NodeStarted" && x.nodeId === e.nodeId && (x.iteration ?? 0) === iteration && x.attempt === e.attempt));
    track(
      Promise.resolve(found).then((list) => {
        const startMs = Array.isArray(list) && list.length ? list[list.length - 1].timestampMs : e.timestampMs;
        return emit(attemptSpan(e, startMs, outcome, kind));
      }),
    );
  }

  function approvalSpan(e) {
    const decision = DECISIONS[e.type];
    const decidedBy = e.decidedBy ?? (e.type === "ApprovalAutoApproved" ? "smithers:auto" : undefined);
    const startMs = e.timestampMs - Math.max(0, Number(e.waitedMs) || 0);
    const common = { "smithers.node.id": e.nodeId, "smithers.node.iteration": e.iteration ?? 0 };
    emit({
      runId: e.runId,
      name: `approval ${e.nodeId}`,
      startMs,
      endMs: e.timestampMs,
      attributes: {
        "smithers.run.id": e.runId,
        ...common,
        "smithers.node.kind": "approval",
        "smithers.approval.kind": e.kind ?? "gate",
        "smithers.approval.round": e.round,
        "smithers.approval.decision": decision,
        "smithers.approval.decided_by": decidedBy,
        "smithers.approval.waited_ms": e.waitedMs,
      },
      events: [
        { name: "smithers.approval.waiting", atMs: startMs, attributes: common },
        { name: "smithers.approval.decided", atMs: e.timestampMs, attributes: { ...common, "smithers.approval.decision": decision, "smithers.approval.decided_by": decidedBy } },
      ],
    });
  }

  /** The run's events that `wanted` keeps, all pages (synchronously on SQLite). */
  function history(runId, wanted) {
    const kept = [];
    const keep = (page) => {
      for (const ev of page) if (wanted(ev)) kept.push(ev);
    };
    if (!read.remote) {
      for (let after = 0; ; ) {
        const page = read.events(runId, after, HISTORY_PAGE);
        keep(page);
        if (page.length < HISTORY_PAGE) return kept;
        after = page[page.length - 1].seq;
      }
    }
    return (async () => {
      for (let after = 0; ; ) {
        const page = await read.events(runId, after, HISTORY_PAGE);
        keep(page);
        if (page.length < HISTORY_PAGE) return kept;
        after = page[page.length - 1].seq;
      }
    })();
  }

  function runEnded(e) {
    // Both reads start now, before the caller can close the engine (on SQLite they are done
    // when this returns).
    const summary = safely(() => read.summary(e.runId));
    const events = safely(() => history(e.runId, (x) => RUN_SPAN_EVENTS.has(x.type)));
    track(
      Promise.all([summary, events]).then(([run, evs]) => {
        const list = evs ?? [];
        const started = list.find((x) => x.type === "RunStarted");
        const created = run?.createdAt ? Date.parse(run.createdAt) : NaN;
        const startMs = started?.timestampMs ?? (Number.isFinite(created) ? created : e.timestampMs);
        const error = run?.error ?? null;
        const failed = e.status === "failed" || e.status === "rejected";
        const workflow = run?.workflowName ?? started?.workflowName ?? "";
        return emit({
          root: true,
          runId: e.runId,
          name: workflow ? `run ${workflow}` : "run",
          startMs,
          endMs: e.timestampMs,
          attributes: {
            "smithers.run.id": e.runId,
            "smithers.workflow.name": workflow,
            "smithers.run.status": e.status,
            "smithers.run.started_by": run?.startedBy,
            "smithers.run.error.code": error?.code,
            "error.type": failed ? (error?.code ?? e.status) : undefined,
            "smithers.parent.run.id": run?.parentRunId,
            "smithers.parent.node.id": run?.parentNodeId,
          },
          links: run?.parentRunId ? [{ runId: run.parentRunId, attributes: { "smithers.link": "caller" } }] : [],
          events: list.filter((x) => x.type !== "RunStarted").map(runSpanEvent),
          error: failed ? (error?.message ?? `the run ${e.status === "rejected" ? "was rejected" : "failed"}`) : undefined,
        });
      }),
    );
  }

  return {
    /**
     * Events as the engine dispatches them (committed, in order), with the kinds of the nodes
     * they name where the engine knows them (`run\0node` → body type).
     * @param {any[]} events @param {Record<string, string>} [kinds]
     */
    events(events, kinds) {
      for (const e of events) {
        if (e.type === "NodeStarted") {
          open.set(`${e.runId}\u0000${e.nodeId}\u0000${e.iteration ?? 0}`, { attempt: e.attempt, startMs: e.timestampMs, kind: kinds?.[`${e.runId}\u0000${e.nodeId}`] });
        } else if (ATTEMPT_ENDS[e.type]) {
          const key = `${e.runId}\u0000${e.nodeId}\u0000${e.iteration ?? 0}`;
          // An <Approval>'s wait and finish, a timer's finish: no attempt of the node is open.
          if (open.has(key) || (typeof e.attempt === "number" && e.type !== "NodeWaitingApproval")) attemptEnded(e, ATTEMPT_ENDS[e.type], kinds);
        } else if (DECISIONS[e.type]) {
          approvalSpan(e);
        } else if (e.type === "RunStatusChanged" && TERMINAL.has(e.status)) {
          runEnded(e);
        }
      }
    },
    /** Reads under way (PostgreSQL), or null. */
    reading() {
      return reading.size ? Promise.allSettled([...reading]) : null;
    },
  };
}

/** An event of a run's history as an event of its run span. */
function runSpanEvent(x) {
  const node = { "smithers.node.id": x.nodeId, "smithers.node.iteration": x.nodeId === undefined ? undefined : (x.iteration ?? 0) };
  if (x.type === "RunStatusChanged") return { name: "smithers.run.status", atMs: x.timestampMs, attributes: { "smithers.run.status": x.status, "smithers.run.previous_status": x.previous } };
  if (x.type === "ApprovalRequested") {
    return { name: "smithers.approval.waiting", atMs: x.timestampMs, attributes: { ...node, "smithers.approval.kind": x.kind ?? "gate", "smithers.approval.round": x.round, "smithers.approval.title": x.title } };
  }
  if (x.type === "ApprovalVoted") return { name: "smithers.approval.voted", atMs: x.timestampMs, attributes: { ...node, "smithers.approval.voter": x.voter, "smithers.approval.verdict": x.verdict } };
  if (x.type === "ApprovalTimedOut") return { name: "smithers.approval.timed_out", atMs: x.timestampMs, attributes: { ...node, "smithers.approval.on_timeout": x.onTimeout } };
  const decidedBy = x.decidedBy ?? (x.type === "ApprovalAutoApproved" ? "smithers:auto" : undefined);
  return { name: "smithers.approval.decided", atMs: x.timestampMs, attributes: { ...node, "smithers.approval.decision": DECISIONS[x.type], "smithers.approval.decided_by": decidedBy } };
}
