// Webhooks of `smithers serve`: gate events as signed HTTP POSTs, kept as rows until they are
// delivered (the core's `_smithers_deliveries`, see deliveries.rs).
//
//   feed ──(every serve process, from the cursor stored in the database)──► one row per
//   (event, target), id `msg_<feedId>_<target>` ──(claimed by one process at a time)──► POST
//   ──2xx──► delivered | else ──► pending at now + backoff … ──► failed after maxAttempts
//
// Signatures follow the Standard Webhooks specification: headers `webhook-id` (the delivery
// id, the same on every attempt), `webhook-timestamp` (seconds) and `webhook-signature`
// (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the base64 part of the
// `whsec_…` secret). `verifyWebhook` is the receiver's side.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { SmithersError } from "../errors.js";
import { NativeEngine } from "../native.js";
import { decisionLinks } from "./links.js";

/**
 * The webhook events, and the core events each is made of. A name mapped to null is part of
 * the contract but not produced yet (it comes with the core's timers: reminders, escalation,
 * deadlines); configuring it is refused rather than silently never sent.
 */
export const GATE_EVENTS = {
  "gate.waiting": ["ApprovalRequested"],
  "gate.decided": ["ApprovalGranted", "ApprovalDenied", "ApprovalRejected", "ApprovalPushedBack", "ApprovalAutoApproved"],
  // A gate still waits: its approvers are reminded (remind: { every, max }).
  "gate.reminder": ["ApprovalReminder"],
  // An escalation step widened who may decide (escalate: [{ after, allowedUsers | allowedScopes }]).
  "gate.escalated": ["ApprovalEscalated"],
  // A deadline passed undecided: its onTimeout decision, recorded as system:timeout (the
  // same decision also comes as gate.decided).
  "gate.timed-out": ["ApprovalTimedOut"],
};
/** core event type → webhook event name */
const FROM_CORE = new Map(
  Object.entries(GATE_EVENTS).flatMap(([name, types]) => (types ?? []).map((t) => [t, name])),
);
const DECIDED_STATUS = {
  ApprovalGranted: "approved",
  ApprovalDenied: "denied",
  ApprovalRejected: "rejected",
  ApprovalPushedBack: "pushed-back",
  ApprovalAutoApproved: "approved",
};

export const SECRET_PREFIX = "whsec_";

/** The HMAC key of a `whsec_<base64>` secret. */
export function webhookKey(secret) {
  if (typeof secret !== "string" || !secret.startsWith(SECRET_PREFIX)) {
    throw new SmithersError("INVALID_ARGUMENT", `a webhook secret is "${SECRET_PREFIX}" followed by base64`);
  }
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), "base64");
  if (key.length < 24 || key.length > 64) {
    throw new SmithersError("INVALID_ARGUMENT", "a webhook secret holds 24 to 64 bytes (after whsec_, in base64)");
  }
  return key;
}

/** A new secret: `whsec_` + 32 random bytes in base64. */
export const newWebhookSecret = () => `${SECRET_PREFIX}${randomBytes(32).toString("base64")}`;

/**
 * The Standard Webhooks headers for one attempt.
 * @param {string} secret `whsec_…`
 * @param {string} id the message id (the same on every attempt)
 * @param {number} timestampSec
 * @param {string} body the exact bytes sent
 */
export function signWebhook(secret, id, timestampSec, body) {
  const signature = createHmac("sha256", webhookKey(secret)).update(`${id}.${timestampSec}.${body}`, "utf8").digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(timestampSec), "webhook-signature": `v1,${signature}` };
}

/**
 * Checks a delivery as a receiver: the signature (any of the space-separated `v1,` ones) and
 * that the timestamp is within `toleranceSec` of now. Returns the parsed body; throws
 * WEBHOOK_SIGNATURE_INVALID or WEBHOOK_TIMESTAMP_INVALID.
 * @param {string} secret
 * @param {Record<string, string | string[] | undefined>} headers lower-case names (Node's `req.headers`)
 * @param {string} body the raw body, as received
 */
export function verifyWebhook(secret, headers, body, { toleranceSec = 300, nowSec = Math.floor(Date.now() / 1000) } = {}) {
  const one = (name) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = one("webhook-id");
  const timestamp = one("webhook-timestamp");
  const signatures = one("webhook-signature");
  if (!id || !timestamp || !signatures) throw new SmithersError("WEBHOOK_SIGNATURE_INVALID", "webhook-id, webhook-timestamp and webhook-signature are required");
  const ts = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSec - ts) > toleranceSec) {
    throw new SmithersError("WEBHOOK_TIMESTAMP_INVALID", `webhook-timestamp ${timestamp} is not within ${toleranceSec} s of now`);
  }
  const expected = Buffer.from(signWebhook(secret, id, ts, body)["webhook-signature"].slice(3), "base64");
  const match = signatures.split(" ").some((s) => {
    if (!s.startsWith("v1,")) return false;
    const given = Buffer.from(s.slice(3), "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!match) throw new SmithersError("WEBHOOK_SIGNATURE_INVALID", "no webhook-signature matches the body");
  return JSON.parse(body);
}

/** Delay before attempt `attempt + 1`: initialDelayMs · 2^(attempt − 1), at most maxDelayMs. */
export const backoffMs = (retry, attempt) => Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.max(0, attempt - 1));

const FORMATS = {
  /** `{type, timestamp, data: {run, gate, decision?, links?}}`, as Standard Webhooks suggests. */
  json: (message) => message,
  /** Slack's incoming-webhook payload: `text`, and blocks with link buttons. */
  slack: slackPayload,
};
export const WEBHOOK_FORMATS = Object.keys(FORMATS);

function slackPayload(message) {
  const { run, gate, decision, links, url } = message.data;
  const esc = (s) => String(s ?? "").replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
  const title = gate.title || gate.nodeId;
  const where = `run \`${esc(run.runId)}\` of *${esc(run.workflowName ?? run.runId)}*`;
  let text;
  if (message.type === "gate.waiting") text = `*${esc(title)}* is waiting for approval in ${where}.`;
  else if (message.type === "gate.reminder") text = `Reminder ${message.data.reminder.n}: *${esc(title)}* is still waiting for approval in ${where}.`;
  else if (message.type === "gate.escalated") text = `*${esc(title)}* was escalated in ${where}: now ${esc((gate.allowedUsers ?? []).join(", ") || (gate.allowedScopes ?? []).join(", "))} may decide.`;
  else if (message.type === "gate.timed-out") text = `*${esc(title)}* timed out undecided in ${where}: ${decision.status} (onTimeout ${decision.onTimeout}).`;
  else text = `*${esc(title)}* was ${decision.status} by ${esc(decision.decidedBy ?? "someone")} in ${where}.`;
  const blocks = [{ type: "section", text: { type: "mrkdwn", text } }];
  if (message.type === "gate.waiting" && gate.summary && gate.summary !== gate.title) {
    blocks.push({ type: "section", text: { type: "mrkdwn", text: esc(gate.summary).slice(0, 2900) } });
  }
  if (decision?.note) blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `Note: ${esc(decision.note).slice(0, 2900)}` }] });
  const buttons = [];
  if (links) {
    buttons.push({ type: "button", action_id: "approve", style: "primary", text: { type: "plain_text", text: "Approve" }, url: links.approve });
    buttons.push({ type: "button", action_id: "deny", style: "danger", text: { type: "plain_text", text: "Deny" }, url: links.deny });
  }
  if (url) buttons.push({ type: "button", action_id: "open", text: { type: "plain_text", text: "Open in inbox" }, url });
  if (buttons.length) blocks.push({ type: "actions", elements: buttons });
  if (links) blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: `The buttons decide as ${esc(links.approver)}, once, until ${links.expiresAt}.` }] });
  return { text: text.replace(/[*`]/g, ""), blocks };
}

export class WebhookDispatcher {
  /**
   * @param {string} dbPath
   * @param {{ webhooks: any[], links: { secret: string, ttlMs: number } | null }} config
   * @param {{ baseUrl: () => string, log?: (line: string) => void, pollMs?: number, now?: () => number }} options
   */
  constructor(dbPath, config, options) {
    this.native = new NativeEngine(dbPath);
    this.targets = new Map(config.webhooks.map((w) => [w.name, w]));
    this.links = config.links;
    this.baseUrl = options.baseUrl;
    this.log = options.log ?? (() => {});
    this.pollMs = options.pollMs ?? 250;
    this.now = options.now ?? Date.now;
    this.claimer = `${process.pid}:${randomBytes(6).toString("hex")}`;
    this.inFlight = new Set();
    this.timer = null;
    this.ticking = false;
    this.cursor = null;
    this.cursorSavedAt = 0;
    this.closed = false;
  }

  async start() {
    // Events after the stored cursor were seen by no serve process yet; with none stored
    // (webhooks just configured), start at the head rather than replay the whole history.
    this.cursor = (await this.native.deliveryCursorAsync()) ?? (await this.native.feedHeadAsync());
    this.tick();
    this.timer = setInterval(() => this.tick(), this.pollMs);
  }

  /** Something was committed (the watcher saw data_version move): look now. */
  poke() {
    if (this.timer) setImmediate(() => this.tick());
  }

  /** Never rejects; on PostgreSQL its reads and writes wait on the engine's thread. */
  async tick() {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      await this.enqueueFromFeed();
      await this.sendDue();
      this.lastError = null;
    } catch (e) {
      if (this.closed) return;
      const line = `webhooks: ${e?.code ?? "ERROR"} ${e?.message ?? e}`;
      if (line !== this.lastError) this.log(line);
      this.lastError = line;
    } finally {
      this.ticking = false;
    }
  }

  async enqueueFromFeed() {
    for (;;) {
      const events = await this.native.feedAsync(this.cursor, 500);
      if (events.length === 0) return;
      const last = events[events.length - 1].feedId;
      const rows = [];
      // Run summaries read for this batch (one read per run, not per event); not kept across
      // batches: a run's status changes.
      const runs = new Map();
      for (const event of events) rows.push(...(await this.deliveriesFor(event, runs)));
      // The stored cursor only saves a restarted serve from reading events again: written
      // with deliveries, else now and then, not for every batch of other events.
      if (rows.length || this.now() - this.cursorSavedAt > 5000) {
        await this.native.enqueueDeliveriesAsync(rows, last, this.now());
        this.cursorSavedAt = this.now();
      }
      this.cursor = last;
      if (events.length < 500) return;
    }
  }

  /**
   * The rows one core event becomes: one per target that wants its webhook event.
   * @param {any} event @param {Map<string, Promise<any>>} [runs] summaries read so far in this batch, by run id
   */
  async deliveriesFor(event, runs = new Map()) {
    const type = FROM_CORE.get(event.type);
    if (!type) return [];
    const wanted = [...this.targets.values()].filter((t) => t.events.includes(type));
    if (wanted.length === 0) return [];
    let read = runs.get(event.runId);
    if (!read) {
      // (On SQLite the read is synchronous: a throw becomes the promise's rejection.)
      read = (async () => this.native.runSummaryAsync(event.runId))();
      runs.set(event.runId, read);
    }
    let run;
    try {
      run = await read;
    } catch {
      // Not kept: the next event of the run reads it again.
      if (runs.get(event.runId) === read) runs.delete(event.runId);
      run = { runId: event.runId };
    }
    const base = this.baseUrl();
    const message = {
      type,
      timestamp: new Date(event.timestampMs).toISOString(),
      data: {
        run: { runId: run.runId, workflowName: run.workflowName ?? null, status: run.status ?? null, startedBy: run.startedBy ?? null },
        gate: {
          nodeId: event.nodeId,
          iteration: event.iteration ?? 0,
          kind: event.kind ?? "gate",
          round: event.round ?? 1,
          title: event.title ?? null,
          summary: event.summary ?? event.prompt ?? null,
          allowedUsers: event.allowedUsers ?? null,
          allowedScopes: event.allowedScopes ?? null,
        },
        url: `${base}runs/${encodeURIComponent(event.runId)}`,
      },
    };
    if (type === "gate.reminder") message.data.reminder = { n: event.n ?? 1, max: event.max ?? null, everyMs: event.everyMs ?? null };
    if (type === "gate.escalated") message.data.escalation = { step: event.step ?? null, added: event.added ?? {} };
    if (type === "gate.timed-out") {
      message.data.decision = {
        status: event.status ?? null,
        decidedBy: event.decidedBy ?? "system:timeout",
        decidedAt: new Date(event.timestampMs).toISOString(),
        onTimeout: event.onTimeout ?? null,
        deadlineAt: event.dueAt ?? null,
      };
    }
    if (type === "gate.decided") {
      message.data.decision = {
        status: DECIDED_STATUS[event.type],
        decidedBy: event.decidedBy ?? (event.type === "ApprovalAutoApproved" ? "smithers:auto" : null),
        decidedAt: new Date(event.timestampMs).toISOString(),
        note: event.note ?? null,
        reason: event.reason ?? null,
        inputs: event.inputs ?? null,
      };
    }
    return wanted.map((target) => {
      let body = message;
      // Links ride on every event that asks someone to decide: waiting, reminded, escalated.
      if ((type === "gate.waiting" || type === "gate.reminder" || type === "gate.escalated") && target.links && this.links) {
        const gate = { runId: event.runId, nodeId: event.nodeId, iteration: event.iteration ?? 0, round: event.round ?? 1, digest: event.digest ?? null, deadlineAtMs: event.deadlineAtMs ?? null };
        body = { ...message, data: { ...message.data, links: decisionLinks(this.links, base, gate, target.links.approver, this.now()) } };
      }
      return {
        deliveryId: `msg_${event.feedId}_${target.name}`,
        target: target.name,
        url: target.url,
        eventType: type,
        feedId: event.feedId,
        runId: event.runId,
        nodeId: event.nodeId ?? null,
        iteration: event.iteration ?? null,
        body: JSON.stringify(FORMATS[target.format](body)),
      };
    });
  }

  async sendDue() {
    const room = 8 - this.inFlight.size;
    if (room <= 0) return;
    const leaseMs = Math.max(...[...this.targets.values()].map((t) => t.timeoutMs)) + 10_000;
    const claimed = await this.native.claimDeliveriesAsync(this.claimer, [...this.targets.keys()], this.now(), leaseMs, room);
    for (const delivery of claimed) {
      const sending = this.send(delivery).finally(() => this.inFlight.delete(sending));
      this.inFlight.add(sending);
    }
  }

  async send(delivery) {
    const target = this.targets.get(delivery.target);
    const headers = {
      "content-type": "application/json",
      "user-agent": "smithers-webhooks",
      ...(target.secret ? signWebhook(target.secret, delivery.deliveryId, Math.floor(this.now() / 1000), delivery.body) : { "webhook-id": delivery.deliveryId }),
    };
    let outcome;
    try {
      const res = await fetch(target.url, { method: "POST", headers, body: delivery.body, redirect: "manual", signal: AbortSignal.timeout(target.timeoutMs) });
      await res.arrayBuffer().catch(() => {});
      outcome = res.ok ? { delivered: true, statusCode: res.status } : { delivered: false, statusCode: res.status, error: `HTTP ${res.status}` };
    } catch (e) {
      const cause = e?.cause?.code ?? e?.name ?? "ERROR";
      outcome = { delivered: false, error: `${cause}: ${e?.cause?.message ?? e?.message ?? e}` };
    }
    if (!outcome.delivered) {
      if (delivery.attempts < target.retry.maxAttempts) outcome.nextAttemptAtMs = this.now() + backoffMs(target.retry, delivery.attempts);
      this.log(`webhook ${delivery.deliveryId} to ${target.name}: attempt ${delivery.attempts} failed (${outcome.error})${outcome.nextAttemptAtMs ? "" : "; giving up"}`);
    }
    if (this.closed) return;
    try {
      await this.native.settleDeliveryAsync(delivery.deliveryId, this.claimer, outcome, this.now());
    } catch (e) {
      this.log(`webhook ${delivery.deliveryId}: cannot record the attempt: ${e?.code ?? "ERROR"} ${e?.message ?? e}`);
    }
  }

  /** Lets attempts under way end (up to `ms`), then closes the connection. */
  async close(ms = 5000) {
    clearInterval(this.timer);
    this.timer = null;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, ms).unref())]);
    this.closed = true;
    this.native.close();
  }
}
