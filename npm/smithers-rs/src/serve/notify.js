// Mail on wait: one message each time a run starts waiting (its driver parked it, in this
// process or any other on the database), naming the gates and linking to the inbox. What
// was sent, or why not, is recorded in the run's events (WaitMailSent / WaitMailFailed).
// A recipient the configuration maps to an approver (`mailOnWait.links.approvers`) gets a
// message of their own, with signed approve/deny links that decide as that approver.
//
// Reminders (`remind: {every, max}`, the core's ApprovalReminder) and escalations
// (ApprovalEscalated) are mailed too, under the same configuration, to the gate's approvers:
// - a reminder goes to every recipient, except one mapped to an approver who may not decide
//   that gate (not in its allowedUsers, or holding none of its allowedScopes);
// - an escalation goes to the recipients mapped to an approver the step made able to decide,
//   and to the recipients mapped to nobody; the approvers who could decide already are not
//   mailed again.
// Recorded as WaitMailSent / WaitMailFailed with `reason` "reminder" (and `n`, `max`) or
// "escalated" (and `step`); the wait's own mail has reason "waiting".
import { scopeCovers } from "../contract.js";
import { decisionLinks } from "./links.js";

export class WaitMailer {
  /**
   * @param {import("../engine.js").SmithersEngine} engine
   * @param {{ smtp: any, from: string, to: string[], subjectPrefix: string }} mail
   * @param {{ inboxUrl: () => string, log: (line: string) => void, sendMail?: Function,
   *   links?: { secret: string, ttlMs: number, baseUrl: () => string } | null,
   *   tokens?: { user: string, scopes: string[] }[] }} options
   */
  constructor(engine, mail, options) {
    /** user -> scopes their tokens hold (for gates that name allowedScopes). */
    this.scopes = new Map();
    for (const t of options.tokens ?? []) this.scopes.set(t.user, [...(this.scopes.get(t.user) ?? []), ...(t.scopes ?? [])]);
    this.engine = engine;
    this.mail = mail;
    this.inboxUrl = options.inboxUrl;
    this.log = options.log;
    this.send = options.sendMail ?? null;
    this.links = options.links && mail.links ? options.links : null;
    /** Messages go out one at a time, in the order the runs started waiting. */
    this.queue = Promise.resolve();
  }

  onEvents(events) {
    for (const event of events) {
      if (event.type === "RunStatusChanged" && event.status === "waiting-approval") {
        this.queue = this.queue.then(() => this.notify(event)).catch((e) => this.log(`mail: ${e?.message ?? e}`));
      } else if (event.type === "ApprovalReminder" || event.type === "ApprovalEscalated") {
        this.queue = this.queue.then(() => this.notifyGate(event)).catch((e) => this.log(`mail: ${e?.message ?? e}`));
      }
    }
  }

  async notify(event) {
    const { runId } = event;
    const { sendMail, waitMail } = await import("./mail.js");
    const send = this.send ?? sendMail;
    let gates;
    let run;
    try {
      run = await this.engine.getRunAsync(runId);
      gates = await this.engine.pendingApprovalsAsync({ runId, limit: 100 });
    } catch (e) {
      if (e?.code === "DB_ERROR" && /closed/i.test(e.message)) return;
      throw e;
    }
    // Decided (or cancelled) before the mail went out: nothing to ask anyone.
    if (gates.length === 0) return;
    const nodes = gates.map((g) => g.nodeId);
    for (const { to, approver } of this.recipients()) {
      const withLinks = approver
        ? gates.map((g) => ({ ...g, links: decisionLinks(this.links, this.links.baseUrl(), g, approver) }))
        : gates;
      const message = waitMail({
        run,
        gates: withLinks,
        inboxUrl: this.inboxUrl(),
        subjectPrefix: this.mail.subjectPrefix,
        from: this.mail.from,
        to,
      });
      try {
        const sent = await send(this.mail.smtp, message);
        await this.record(runId, "WaitMailSent", { reason: "waiting", waitSeq: event.seq, to, nodes, messageId: sent?.messageId ?? null, ...(approver ? { links: approver } : {}) });
        this.log(`mailed ${to.join(", ")}: run ${runId} waits at ${nodes.join(", ")}`);
      } catch (e) {
        await this.record(runId, "WaitMailFailed", { reason: "waiting", waitSeq: event.seq, to, nodes, code: e?.code ?? "MAIL_FAILED", message: String(e?.message ?? e) });
        this.log(`mail for run ${runId} failed: ${e?.code ?? ""} ${e?.message ?? e}`);
      }
    }
  }

  /** A reminder or an escalation of one gate that still waits: mailed to its approvers. */
  async notifyGate(event) {
    const { runId } = event;
    const { sendMail, waitMail } = await import("./mail.js");
    const send = this.send ?? sendMail;
    const iteration = event.iteration ?? 0;
    let gate;
    let run;
    try {
      run = await this.engine.getRunAsync(runId);
      gate = (await this.engine.pendingApprovalsAsync({ runId, limit: 100 })).find((g) => g.nodeId === event.nodeId && (g.iteration ?? 0) === iteration);
    } catch (e) {
      if (e?.code === "DB_ERROR" && /closed/i.test(e.message)) return;
      throw e;
    }
    // Decided before the mail went out: nobody to remind.
    if (!gate) return;
    const reminder = event.type === "ApprovalReminder";
    const reason = reminder
      ? { kind: "reminder", n: event.n ?? 1, max: event.max ?? null }
      : { kind: "escalated", added: event.added ?? {} };
    const recorded = reminder ? { reason: "reminder", n: reason.n, max: reason.max } : { reason: "escalated", step: event.step ?? null };
    const approvers = this.mail.links?.approvers ?? {};
    const mayDecide = (user) => this.mayDecide(user, gate);
    // An approver the escalation made able to decide: could not before (by the added lists), can now.
    const added = (user) => {
      const users = event.added?.allowedUsers ?? [];
      const scopes = event.added?.allowedScopes ?? [];
      const held = this.scopes.get(user) ?? [];
      return mayDecide(user) && (users.includes(user) || scopes.some((s) => held.some((h) => scopeCovers(h, s))));
    };
    const wanted = (address) => {
      const user = approvers[address];
      if (!user) return true;
      return reminder ? mayDecide(user) : added(user);
    };
    for (const { to: all, approver } of this.recipients()) {
      const to = all.filter(wanted);
      if (to.length === 0) continue;
      const gates = [approver && this.links ? { ...gate, links: decisionLinks(this.links, this.links.baseUrl(), gate, approver) } : gate];
      const message = waitMail({ run, gates, inboxUrl: this.inboxUrl(), subjectPrefix: this.mail.subjectPrefix, from: this.mail.from, to, reason });
      try {
        const sent = await send(this.mail.smtp, message);
        await this.record(runId, "WaitMailSent", { ...recorded, eventSeq: event.seq, to, nodes: [gate.nodeId], messageId: sent?.messageId ?? null, ...(approver ? { links: approver } : {}) });
        this.log(`mailed ${to.join(", ")}: ${reminder ? `reminder ${reason.n}` : "escalation"} for run ${runId} at ${gate.nodeId}`);
      } catch (e) {
        await this.record(runId, "WaitMailFailed", { ...recorded, eventSeq: event.seq, to, nodes: [gate.nodeId], code: e?.code ?? "MAIL_FAILED", message: String(e?.message ?? e) });
        this.log(`mail for run ${runId} failed: ${e?.code ?? ""} ${e?.message ?? e}`);
      }
    }
  }

  /** Whether `user` may decide `gate` now: in its allowedUsers and holding one of its allowedScopes, when it names them. */
  mayDecide(user, gate) {
    const users = gate.allowedUsers ?? [];
    if (users.length && !users.includes(user)) return false;
    const scopes = gate.allowedScopes ?? [];
    const held = this.scopes.get(user) ?? [];
    return scopes.length === 0 || scopes.some((s) => held.some((h) => scopeCovers(h, s)));
  }

  /** One message to every recipient, or, with links, one per approver and one to the rest. */
  recipients() {
    if (!this.links) return [{ to: this.mail.to, approver: null }];
    const approvers = this.mail.links.approvers;
    const rest = this.mail.to.filter((a) => !approvers[a]);
    return [...this.mail.to.filter((a) => approvers[a]).map((a) => ({ to: [a], approver: approvers[a] })), ...(rest.length ? [{ to: rest, approver: null }] : [])];
  }

  async record(runId, type, payload) {
    try {
      await this.engine.native.recordDriverEventAsync(runId, type, JSON.stringify(payload));
    } catch (e) {
      this.log(`cannot record ${type} for ${runId}: ${e?.message ?? e}`);
    }
  }

  /** Waits for queued messages (at shutdown), up to `ms`. */
  async flush(ms) {
    await Promise.race([this.queue, new Promise((r) => setTimeout(r, ms).unref())]);
  }
}
