// Types of ./mail.js: the SMTP client and the "run is waiting" mail of `smithers serve`.

/** How to reach the SMTP server. */
export interface SmtpOptions {
  host: string;
  /** Default: 465 when `secure`, else 587 when `user` is set, else 25. */
  port?: number;
  /** Implicit TLS from the first byte (SMTPS, usually port 465). Default false. */
  secure?: boolean;
  /**
   * For a plain connection: "auto" (default) upgrades when the server offers STARTTLS,
   * "always" fails with MAIL_TLS_UNAVAILABLE when it does not, "never" stays plain.
   * `true` / `false` mean "always" / "never".
   */
  starttls?: "auto" | "always" | "never" | boolean;
  /** Set to authenticate with a password (nodemailer picks PLAIN, LOGIN or CRAM-MD5 as offered). */
  user?: string;
  pass?: string;
  /**
   * XOAUTH2 instead of a password (Gmail, Microsoft 365): an access token, or a client id,
   * secret and refresh token that nodemailer exchanges for access tokens at `accessUrl`.
   */
  auth?: { type: "OAuth2"; user: string; accessToken?: string; clientId?: string; clientSecret?: string; refreshToken?: string; accessUrl?: string; expires?: number };
  /** Verify the server's TLS certificate. Default true. */
  rejectUnauthorized?: boolean;
  /** How long the server may stay silent (connecting, the greeting, each reply). Default 15000. */
  timeoutMs?: number;
  /** The name given in EHLO/HELO. Default os.hostname() ("localhost" if that is not a domain). */
  clientName?: string;
}

/** One message. Addresses are "addr@host" or "Display Name <addr@host>" (ASCII addresses). */
export interface MailMessage {
  from: string;
  /** One address, a comma-separated list, or an array. */
  to: string | string[];
  subject: string;
  text: string;
  /** With html the message is multipart/alternative (text, then html). */
  html?: string;
  /**
   * Extra headers (values without CR/LF). Date and Message-ID replace the generated ones;
   * From, To, Cc, Bcc, Subject, MIME-Version and Content-* are refused.
   */
  headers?: Record<string, string | number | undefined | null>;
}

export interface SendMailResult {
  /** The Message-ID header, "<…@domain-of-from>". */
  messageId: string;
  /** The envelope recipients (every one was accepted; a rejected one throws MAIL_REJECTED, naming those that got it). */
  accepted: string[];
  /** The server's reply to the end of DATA, e.g. "250 2.0.0 Ok: queued as 4F1A2". */
  response: string;
}

/**
 * The codes of the SmithersError that sendMail throws:
 * MAIL_INVALID_MESSAGE (nothing was sent), MAIL_CONNECT_FAILED, MAIL_TLS_UNAVAILABLE,
 * MAIL_AUTH_FAILED, MAIL_REJECTED (details: command, responseCode, response[, rejected]),
 * MAIL_TIMEOUT; INVALID_ARGUMENT for bad smtp options.
 */
export type MailErrorCode =
  | "MAIL_INVALID_MESSAGE"
  | "MAIL_CONNECT_FAILED"
  | "MAIL_TLS_UNAVAILABLE"
  | "MAIL_AUTH_FAILED"
  | "MAIL_REJECTED"
  | "MAIL_TIMEOUT"
  | "INVALID_ARGUMENT";

/** Sends one message over SMTP with nodemailer (one connection). Rejects with a SmithersError. */
export function sendMail(smtp: SmtpOptions, message: MailMessage): Promise<SendMailResult>;

/** A run as `smithers serve` knows it. */
export interface WaitMailRun {
  runId: string;
  workflowName: string;
  status: string;
  startedBy?: string | null;
}

/** A pending approval as the HTTP API returns it. */
export interface WaitMailGate {
  nodeId: string;
  iteration: number;
  title: string;
  summary?: string | null;
  prompt?: string | null;
  kind: "gate" | "review";
  round: number;
  input: string[];
  required: string[];
  /** ISO 8601. */
  requestedAt: string;
  /** When the gate decides itself (ms since the epoch) and how; the mail states it. */
  deadlineAtMs?: number | null;
  onTimeout?: "deny" | "approve" | "fail" | null;
  /** Who may decide now, when the gate restricts it; the mail states it. */
  allowedUsers?: string[] | null;
  allowedScopes?: string[] | null;
  /** Signed approve/deny links for the one recipient of this message (serve's mailOnWait.links). */
  links?: { approve: string; deny: string; approver: string; expiresAt: string } | null;
}

export interface WaitMailOptions {
  run: WaitMailRun;
  gates: WaitMailGate[];
  /** The inbox page; the run page is `${inboxUrl}runs/${encodeURIComponent(runId)}` (a "/" is added when missing). */
  inboxUrl?: string;
  /** Default "[smithers]". */
  subjectPrefix?: string;
  from: string;
  to: string | string[];
  /**
   * Why it is sent: the run started waiting (default), reminder `n` of `max` (`remind`), or an
   * escalation step widened who may decide (`added`). Subject: "(reminder 2 of 3)", "(escalated)".
   */
  reason?:
    | { kind: "waiting" }
    | { kind: "reminder"; n: number; max?: number | null }
    | { kind: "escalated"; added?: { allowedUsers?: string[]; allowedScopes?: string[] } };
}

export interface WaitMail {
  from: string;
  to: string | string[];
  /** "[smithers] deploy (waiting)", "[smithers] deploy (waiting: 2 approvals)", "(reminder 2 of 3)", "(escalated)". */
  subject: string;
  text: string;
  html: string;
}

/** The mail for a run that starts waiting for approval; pass it to sendMail. */
export function waitMail(options: WaitMailOptions): WaitMail;

/** The mail sent when a run ends failed or rejected (Dagu's `mail_on.failure`). */
export function runEndedMail(options: {
  run: WaitMailRun & { status: string; error?: { code: string; message: string } | null; rejection?: any };
  subjectPrefix?: string;
  from: string;
  to: string | string[];
}): MailMessage & { subject: string; text: string };

/** Validates and renders a message (RFC 5322 + MIME, CRLF, 7-bit) without sending it. */
export function buildMessage(
  message: MailMessage,
  now?: Date,
): { envelopeFrom: string; recipients: string[]; messageId: string; data: string };

/** Quoted-printable of UTF-8 text with CRLF line endings. */
export function quotedPrintable(text: string): string;

/** RFC 5322 date-time in local time, e.g. "Tue, 05 May 2026 14:03:09 +0200". */
export function rfc5322Date(date?: Date): string;
