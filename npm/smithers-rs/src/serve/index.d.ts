import type { SmithersEngine } from "../index.js";

export interface ServeToken {
  user: string;
  scopes: string[];
  /** SHA-256 digest of the token. */
  hash: Buffer;
}

export interface MailOnWait {
  smtp: { host: string; port?: number; secure?: boolean; starttls?: "auto" | "always" | "never"; user?: string; pass?: string; rejectUnauthorized?: boolean; timeoutMs?: number };
  from: string;
  to: string[];
  subjectPrefix: string;
  inboxUrl: string | null;
}

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
}): Promise<RunningServer>;
