// Mail on wait: one message each time a run starts waiting (its driver parked it, in this
// process or any other on the database), naming the gates and linking to the inbox. What
// was sent, or why not, is recorded in the run's events (WaitMailSent / WaitMailFailed).
// A recipient the configuration maps to an approver (`mailOnWait.links.approvers`) gets a
// message of their own, with signed approve/deny links that decide as that approver.
import { decisionLinks } from "./links.js";

export class WaitMailer {
  /**
   * @param {import("../engine.js").SmithersEngine} engine
   * @param {{ smtp: any, from: string, to: string[], subjectPrefix: string }} mail
   * @param {{ inboxUrl: () => string, log: (line: string) => void, sendMail?: Function,
   *   links?: { secret: string, ttlMs: number, baseUrl: () => string } | null }} options
   */
  constructor(engine, mail, options) {
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
      run = this.engine.getRun(runId);
      gates = this.engine.pendingApprovals({ runId, limit: 100 });
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
        this.record(runId, "WaitMailSent", { waitSeq: event.seq, to, nodes, messageId: sent?.messageId ?? null, ...(approver ? { links: approver } : {}) });
        this.log(`mailed ${to.join(", ")}: run ${runId} waits at ${nodes.join(", ")}`);
      } catch (e) {
        this.record(runId, "WaitMailFailed", { waitSeq: event.seq, to, nodes, code: e?.code ?? "MAIL_FAILED", message: String(e?.message ?? e) });
        this.log(`mail for run ${runId} failed: ${e?.code ?? ""} ${e?.message ?? e}`);
      }
    }
  }

  /** One message to every recipient, or, with links, one per approver and one to the rest. */
  recipients() {
    if (!this.links) return [{ to: this.mail.to, approver: null }];
    const approvers = this.mail.links.approvers;
    const rest = this.mail.to.filter((a) => !approvers[a]);
    return [...this.mail.to.filter((a) => approvers[a]).map((a) => ({ to: [a], approver: approvers[a] })), ...(rest.length ? [{ to: rest, approver: null }] : [])];
  }

  record(runId, type, payload) {
    try {
      this.engine.native.recordDriverEvent(runId, type, JSON.stringify(payload));
    } catch (e) {
      this.log(`cannot record ${type} for ${runId}: ${e?.message ?? e}`);
    }
  }

  /** Waits for queued messages (at shutdown), up to `ms`. */
  async flush(ms) {
    await Promise.race([this.queue, new Promise((r) => setTimeout(r, ms).unref())]);
  }
}
