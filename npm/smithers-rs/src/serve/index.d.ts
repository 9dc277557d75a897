import type { SmithersEngine } from "../index.js";

export interface ServeToken {
  user: string;
  scopes: string[];
  /** SHA-256 digest of the token. */
  hash: Buffer;
}

export interface MailOnWait {
  smtp: {
    host: string; port?: number; secure?: boolean; starttls?: "auto" | "always" | "never"; user?: string; pass?: string;
    /** XOAUTH2 instead of user/pass. */
    auth?: { type: "OAuth2"; user: string; accessToken?: string; clientId?: string; clientSecret?: string; refreshToken?: string; accessUrl?: string };
    rejectUnauthorized?: boolean; timeoutMs?: number;
  };
  from: string;
  to: string[];
  subjectPrefix: string;
  inboxUrl: string | null;
  /** Recipients (addresses of `to`) who get their own message with approve/deny links, deciding as a configured user. */
  links: { approvers: Record<string, string> } | null;
}

/** The webhook events; those mapped to null are part of the contract but not produced yet. */
export const GATE_EVENTS: Record<"gate.waiting" | "gate.decided" | "gate.reminder" | "gate.escalated" | "gate.timed-out", string[] | null>;

export interface WebhookTarget {
  name: string;
  url: string;
  /** `whsec_` + base64 of 24-64 bytes; null only for `format: "slack"`. */
  secret: string | null;
  events: string[];
  format: "json" | "slack";
  /** Waiting gates carry approve/deny links deciding as this configured user. */
  links: { approver: string } | null;
  timeoutMs: number;
  retry: { maxAttempts: number; initialDelayMs: number; maxDelayMs: number };
}

/** Standard Webhooks headers for one attempt: webhook-id, webhook-timestamp, webhook-signature (`v1,<base64>`). */
export function signWebhook(secret: string, id: string, timestampSec: number, body: string): Record<string, string>;

/**
 * A receiver's check: the signature over `<id>.<timestamp>.<body>` and the timestamp within
 * `toleranceSec` (default 300). Returns the parsed body; throws a SmithersError with code
 * WEBHOOK_SIGNATURE_INVALID or WEBHOOK_TIMESTAMP_INVALID.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  options?: { toleranceSec?: number; nowSec?: number },
): any;

/** A new `whsec_…` secret (32 random bytes). */
export function newWebhookSecret(): string;

export interface ServeConfig {
  /** The file read, or null when none was. */
  path: string | null;
  tokens: ServeToken[];
  forbidSelfApproval: boolean;
  mailOnWait: MailOnWait | null;
  publicUrl: string | null;
  /**
   * The workflow files `POST /v1/runs` and Dagu's `POST /api/v1/dags/{name}/start` may start:
   * name -> absolute path (`"workflows": {"deploy": "./dags/deploy.yaml"}`, or a list of
   * paths named by file stem).
   */
  workflows: Map<string, string>;
  webhooks: WebhookTarget[];
  /** The secret that signs decision links, and how long a link lasts. */
  links: { secret: string; ttlMs: number } | null;
}

/** Reads `--config`/`$SMITHERS_SERVE_CONFIG`/`./smithers.serve.json` and the token variables. Throws SERVE_CONFIG_INVALID. */
export function loadServeConfig(options?: { configPath?: string; env?: Record<string, string | undefined>; cwd?: string }): ServeConfig;

/** A random admin token for `user` (what `smithers serve` does when none is configured). */
export function generatedToken(user: string): { token: string; entry: ServeToken };

export interface RunningServer {
  url: string;
  port: number;
  engine: SmithersEngine;
  /** Stops listening, lets runs driven here reach their next wait or end (up to graceMs), closes the database. */
  close(options?: { graceMs?: number }): Promise<void>;
}

export function startServer(options: {
  dbPath: string;
  host?: string;
  port?: number;
  config: ServeConfig;
  tokens?: ServeToken[];
  log?: (line: string) => void;
  pollMs?: number;
  /** How often webhook deliveries that are due are looked for (default 250 ms; new events are looked at when they commit). */
  webhookPollMs?: number;
  /** OpenTelemetry spans of the runs driven and decided here, when configured (SmithersEngine's `tracing`; `smithers serve` turns it on). */
  tracing?: boolean;
}): Promise<RunningServer>;
