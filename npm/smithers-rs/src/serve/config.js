// `smithers serve` configuration: who may call the API (bearer tokens → user + scopes), the
// four-eyes rule, and mail on wait. From a JSON file and the environment.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, extname, resolve } from "node:path";
import { SmithersError } from "../errors.js";
import { DEFAULT_LINK_TTL_MS } from "./links.js";
import { GATE_EVENTS, WEBHOOK_FORMATS, webhookKey } from "./webhooks.js";

const KEYS = new Set(["tokens", "forbidSelfApproval", "mailOnWait", "publicUrl", "workflows", "workers", "webhooks", "links"]);
const WORKER_KEYS = new Set(["renderTimeoutMs", "blockedTimeoutMs", "max"]);
/** A name under which a workflow file may be started over HTTP (`/v1/runs`, Dagu's `/dags/{name}/start`). */
const WORKFLOW_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const TOKEN_KEYS = new Set(["user", "token", "tokenSha256", "scopes"]);
const MAIL_KEYS = new Set(["smtp", "from", "to", "subjectPrefix", "inboxUrl", "links"]);
const SMTP_KEYS = new Set(["host", "port", "secure", "starttls", "user", "pass", "auth", "rejectUnauthorized", "timeoutMs"]);
const WEBHOOK_KEYS = new Set(["name", "url", "secret", "events", "format", "links", "timeoutMs", "retry"]);
const RETRY_KEYS = new Set(["maxAttempts", "initialDelayMs", "maxDelayMs"]);
const LINKS_KEYS = new Set(["secret", "ttlMs"]);
const WEBHOOK_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** The file used when neither --config nor $SMITHERS_SERVE_CONFIG names one (if it exists). */
export const DEFAULT_CONFIG_FILE = "smithers.serve.json";

const invalid = (where, message) =>
  new SmithersError("SERVE_CONFIG_INVALID", `${where}: ${message}`, { where });

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest();

/**
 * Reads the configuration. Tokens come from the file's `tokens`, from $SMITHERS_TOKENS (the
 * same JSON array), and from $SMITHERS_API_KEY (one token, user $SMITHERS_API_USER or "api",
 * scope admin; Smithers' server reads that variable).
 * @param {{ configPath?: string, env?: NodeJS.ProcessEnv, cwd?: string }} [options]
 */
export function loadServeConfig(options = {}) {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const named = options.configPath ?? env.SMITHERS_SERVE_CONFIG;
  const path = named ? resolve(cwd, named) : resolve(cwd, DEFAULT_CONFIG_FILE);
  let file = {};
  if (named || existsSync(path)) {
    let text;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new SmithersError("SERVE_CONFIG_INVALID", `cannot read ${path}: ${e.message}`, { path });
    }
    try {
      file = JSON.parse(text);
    } catch (e) {
      throw invalid(path, `not valid JSON (${e.message})`);
    }
    if (!file || typeof file !== "object" || Array.isArray(file)) throw invalid(path, "must be a JSON object");
    for (const key of Object.keys(file)) {
      if (!KEYS.has(key)) throw invalid(path, `unknown key ${JSON.stringify(key)} (known: ${[...KEYS].join(", ")})`);
    }
  }
  const where = named || existsSync(path) ? path : "configuration";
  const tokens = [];
  if (file.tokens !== undefined) tokens.push(...parseTokens(file.tokens, `${where}: tokens`));
  if (env.SMITHERS_TOKENS) {
    let list;
    try {
      list = JSON.parse(env.SMITHERS_TOKENS);
    } catch (e) {
      throw invalid("$SMITHERS_TOKENS", `not valid JSON (${e.message}); expected [{"user":…,"token":…,"scopes":[…]}]`);
    }
    tokens.push(...parseTokens(list, "$SMITHERS_TOKENS"));
  }
  if (env.SMITHERS_API_KEY) {
    tokens.push({ user: env.SMITHERS_API_USER || "api", scopes: ["admin"], hash: sha256(env.SMITHERS_API_KEY) });
  }
  if (file.forbidSelfApproval !== undefined && typeof file.forbidSelfApproval !== "boolean") {
    throw invalid(where, "forbidSelfApproval must be true or false");
  }
  const forbidSelfApproval =
    file.forbidSelfApproval ?? /^(1|true|yes)$/i.test(env.SMITHERS_FORBID_SELF_APPROVAL ?? "");
  if (file.publicUrl !== undefined && !isHttpUrl(file.publicUrl)) throw invalid(where, "publicUrl must be an http(s) URL");
  const mailOnWait = file.mailOnWait === undefined ? null : parseMail(file.mailOnWait, `${where}: mailOnWait`, env);
  const workflows = file.workflows === undefined ? new Map() : parseWorkflows(file.workflows, `${where}: workflows`, dirname(path));
  const workers = parseWorkers(file.workers ?? {}, `${where}: workers`);
  const links = parseLinks(file.links, `${where}: links`, env);
  const webhooks = file.webhooks === undefined ? [] : parseWebhooks(file.webhooks, `${where}: webhooks`);
  // A link decides as a configured user: one the configuration does not know could never be used.
  const users = new Set(tokens.map((t) => t.user));
  const approvers = [
    ...webhooks.filter((w) => w.links).map((w) => [`${where}: webhooks.${w.name}.links.approver`, w.links.approver]),
    ...Object.values(mailOnWait?.links?.approvers ?? {}).map((user) => [`${where}: mailOnWait.links.approvers`, user]),
  ];
  for (const [at, user] of approvers) {
    if (!links) throw invalid(at, "decision links need a links secret (links.secret or $SMITHERS_LINK_SECRET)");
    if (!users.has(user)) throw invalid(at, `${JSON.stringify(user)} is not a user of any configured token`);
  }
  return { path: where === "configuration" ? null : where, tokens, forbidSelfApproval, mailOnWait, publicUrl: file.publicUrl ?? null, workflows, workers, webhooks, links };
}

/**
 * `links`: the secret that signs approve/deny links (at least 32 characters; or
 * $SMITHERS_LINK_SECRET) and how long a link lasts (`ttlMs`, default 24 h). Every serve on one
 * database should have the same secret, so a link works whichever of them it reaches.
 */
function parseLinks(value, where, env) {
  if (value === undefined && !env.SMITHERS_LINK_SECRET) return null;
  const links = value ?? {};
  if (!links || typeof links !== "object" || Array.isArray(links)) throw invalid(where, "must be an object");
  for (const key of Object.keys(links)) {
    if (!LINKS_KEYS.has(key)) throw invalid(where, `unknown key ${JSON.stringify(key)} (known: ${[...LINKS_KEYS].join(", ")})`);
  }
  const secret = links.secret ?? env.SMITHERS_LINK_SECRET;
  if (typeof secret !== "string" || secret.length < 32) throw invalid(where, "secret (or $SMITHERS_LINK_SECRET) must be at least 32 characters");
  const ttlMs = links.ttlMs ?? DEFAULT_LINK_TTL_MS;
  if (!(Number.isInteger(ttlMs) && ttlMs >= 1000)) throw invalid(where, "ttlMs must be a whole number of milliseconds ≥ 1000");
  return { secret, ttlMs };
}

/**
 * `webhooks`: `[{name, url, secret: "whsec_…", events, format: "json" | "slack", links:
 * {approver}, timeoutMs, retry: {maxAttempts, initialDelayMs, maxDelayMs}}]`.
 */
function parseWebhooks(list, where) {
  if (!Array.isArray(list)) throw invalid(where, "must be an array of {name, url, secret, events, …}");
  const names = new Set();
  return list.map((w, i) => {
    const at = `${where}[${i}]`;
    if (!w || typeof w !== "object" || Array.isArray(w)) throw invalid(at, "must be an object");
    for (const key of Object.keys(w)) {
      if (!WEBHOOK_KEYS.has(key)) throw invalid(at, `unknown key ${JSON.stringify(key)} (known: ${[...WEBHOOK_KEYS].join(", ")})`);
    }
    if (typeof w.name !== "string" || !WEBHOOK_NAME.test(w.name)) throw invalid(at, "name must be 1-64 letters, digits, _ and -");
    if (names.has(w.name)) throw invalid(at, `two webhooks are named ${JSON.stringify(w.name)}`);
    names.add(w.name);
    if (!isHttpUrl(w.url)) throw invalid(at, "url must be an http(s) URL");
    const format = w.format ?? "json";
    if (!WEBHOOK_FORMATS.includes(format)) throw invalid(at, `format must be one of ${WEBHOOK_FORMATS.join(", ")}`);
    // Slack's incoming webhooks check no signature; every other receiver should.
    if (w.secret === undefined && format !== "slack") throw invalid(at, 'secret ("whsec_" + base64 of 24-64 random bytes) is required');
    if (w.secret !== undefined) {
      try {
        webhookKey(w.secret);
      } catch (e) {
        throw invalid(at, `secret: ${e.message}`);
      }
    }
    const events = w.events ?? ["gate.waiting", "gate.decided"];
    if (!Array.isArray(events) || events.length === 0) throw invalid(at, "events must be a non-empty array");
    for (const e of events) {
      if (!(e in GATE_EVENTS)) throw invalid(at, `unknown event ${JSON.stringify(e)} (known: ${Object.keys(GATE_EVENTS).join(", ")})`);
    }
    let links = null;
    if (w.links !== undefined) {
      if (!w.links || typeof w.links !== "object" || Object.keys(w.links).some((k) => k !== "approver") || typeof w.links.approver !== "string") {
        throw invalid(`${at}.links`, 'must be {"approver": "<a configured user>"}');
      }
      links = { approver: w.links.approver };
    }
    const timeoutMs = w.timeoutMs ?? 10_000;
    if (!(Number.isInteger(timeoutMs) && timeoutMs >= 100 && timeoutMs <= 120_000)) throw invalid(at, "timeoutMs must be a whole number from 100 to 120000");
    const retry = w.retry ?? {};
    if (!retry || typeof retry !== "object" || Array.isArray(retry)) throw invalid(`${at}.retry`, "must be an object");
    for (const key of Object.keys(retry)) {
      if (!RETRY_KEYS.has(key)) throw invalid(`${at}.retry`, `unknown key ${JSON.stringify(key)} (known: ${[...RETRY_KEYS].join(", ")})`);
    }
    const r = { maxAttempts: retry.maxAttempts ?? 8, initialDelayMs: retry.initialDelayMs ?? 1000, maxDelayMs: retry.maxDelayMs ?? 3_600_000 };
    if (!(Number.isInteger(r.maxAttempts) && r.maxAttempts >= 1 && r.maxAttempts <= 100)) throw invalid(`${at}.retry`, "maxAttempts must be a whole number from 1 to 100");
    for (const key of ["initialDelayMs", "maxDelayMs"]) {
      if (!(Number.isInteger(r[key]) && r[key] >= 10)) throw invalid(`${at}.retry`, `${key} must be a whole number of milliseconds ≥ 10`);
    }
    return { name: w.name, url: w.url, secret: w.secret ?? null, events, format, links, timeoutMs, retry: r };
  });
}

/**
 * The worker threads that run workflow code (isolation.js): how long a render may take
 * (`renderTimeoutMs`, default 30 s), how long workflow code may keep its thread busy
 * (`blockedTimeoutMs`, default 5 min), how many runs are driven at once (`max`, default 16).
 */
function parseWorkers(workers, where) {
  if (!workers || typeof workers !== "object" || Array.isArray(workers)) throw invalid(where, "must be an object");
  for (const key of Object.keys(workers)) {
    if (!WORKER_KEYS.has(key)) throw invalid(where, `unknown key ${JSON.stringify(key)} (known: ${[...WORKER_KEYS].join(", ")})`);
  }
  for (const key of ["renderTimeoutMs", "blockedTimeoutMs"]) {
    if (workers[key] !== undefined && !(Number.isInteger(workers[key]) && workers[key] >= 100)) {
      throw invalid(where, `${key} must be a whole number of milliseconds ≥ 100`);
    }
  }
  if (workers.max !== undefined && !(Number.isInteger(workers.max) && workers.max >= 1 && workers.max <= 1024)) {
    throw invalid(where, "max must be a whole number from 1 to 1024");
  }
  return { renderTimeoutMs: workers.renderTimeoutMs, blockedTimeoutMs: workers.blockedTimeoutMs, maxWorkers: workers.max };
}

/**
 * `workflows`: the files `POST /v1/runs` and `POST /api/v1/dags/{name}/start` may start,
 * `{ "name": "./path" }` or `["./path", …]` (named by file stem: deploy.yaml -> deploy).
 * Paths are relative to the configuration file and must exist. Returns name -> absolute path.
 */
function parseWorkflows(value, where, dir) {
  let entries;
  if (Array.isArray(value)) {
    entries = value.map((p, i) => {
      if (typeof p !== "string" || !p) throw invalid(`${where}[${i}]`, "must be the path of a workflow file");
      return [basename(p, extname(p)), p];
    });
  } else if (value && typeof value === "object") {
    entries = Object.entries(value);
  } else {
    throw invalid(where, 'must be { "name": "./file.yaml" } or a list of paths');
  }
  const out = new Map();
  for (const [name, p] of entries) {
    if (!WORKFLOW_NAME.test(name)) throw invalid(where, `name ${JSON.stringify(name)} must be 1-128 letters, digits and _ . -`);
    if (typeof p !== "string" || !p) throw invalid(`${where}.${name}`, "must be the path of a workflow file");
    if (out.has(name)) throw invalid(where, `two workflows are named ${JSON.stringify(name)}`);
    const file = resolve(dir, p);
    if (!existsSync(file)) throw invalid(`${where}.${name}`, `no such file: ${file}`);
    out.set(name, file);
  }
  return out;
}

function parseTokens(list, where) {
  if (!Array.isArray(list)) throw invalid(where, "must be an array of {user, token | tokenSha256, scopes}");
  const seen = new Set();
  return list.map((entry, i) => {
    const at = `${where}[${i}]`;
    if (!entry || typeof entry !== "object") throw invalid(at, "must be an object");
    for (const key of Object.keys(entry)) {
      if (!TOKEN_KEYS.has(key)) throw invalid(at, `unknown key ${JSON.stringify(key)} (known: ${[...TOKEN_KEYS].join(", ")})`);
    }
    if (typeof entry.user !== "string" || !/^[^\s\0]{1,256}$/.test(entry.user)) {
      throw invalid(at, "user must be 1-256 characters without spaces");
    }
    const scopes = entry.scopes ?? ["approve"];
    if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === "string" && /^[\w:.*-]{1,128}$/.test(s))) {
      throw invalid(at, "scopes must be an array of names like read, execute, approve, admin, deploy:prod, deploy:*");
    }
    let hash;
    if (typeof entry.token === "string" && entry.tokenSha256 === undefined) {
      if (entry.token.length < 16) throw invalid(at, "token must be at least 16 characters");
      hash = sha256(entry.token);
    } else if (typeof entry.tokenSha256 === "string" && entry.token === undefined) {
      if (!/^[0-9a-f]{64}$/i.test(entry.tokenSha256)) throw invalid(at, "tokenSha256 must be 64 hex digits");
      hash = Buffer.from(entry.tokenSha256, "hex");
    } else {
      throw invalid(at, "give exactly one of token or tokenSha256");
    }
    const key = hash.toString("hex");
    if (seen.has(key)) throw invalid(at, "the same token is listed twice");
    seen.add(key);
    return { user: entry.user, scopes, hash };
  });
}

function parseMail(mail, where, env) {
  if (!mail || typeof mail !== "object" || Array.isArray(mail)) throw invalid(where, "must be an object");
  for (const key of Object.keys(mail)) {
    if (!MAIL_KEYS.has(key)) throw invalid(where, `unknown key ${JSON.stringify(key)} (known: ${[...MAIL_KEYS].join(", ")})`);
  }
  const smtp = mail.smtp;
  if (!smtp || typeof smtp !== "object") throw invalid(where, "smtp {host, port, …} is required");
  for (const key of Object.keys(smtp)) {
    if (!SMTP_KEYS.has(key)) throw invalid(`${where}.smtp`, `unknown key ${JSON.stringify(key)} (known: ${[...SMTP_KEYS].join(", ")})`);
  }
  if (typeof smtp.host !== "string" || !smtp.host) throw invalid(`${where}.smtp`, "host is required");
  if (smtp.port !== undefined && !(Number.isInteger(smtp.port) && smtp.port > 0 && smtp.port < 65536)) {
    throw invalid(`${where}.smtp`, "port must be 1-65535");
  }
  if (typeof mail.from !== "string" || !mail.from.includes("@")) throw invalid(where, "from must be an address");
  const to = typeof mail.to === "string" ? [mail.to] : mail.to;
  if (!Array.isArray(to) || to.length === 0 || !to.every((t) => typeof t === "string" && t.includes("@"))) {
    throw invalid(where, "to must be an address or a non-empty array of addresses");
  }
  if (mail.inboxUrl !== undefined && !isHttpUrl(mail.inboxUrl)) throw invalid(where, "inboxUrl must be an http(s) URL");
  let links = null;
  if (mail.links !== undefined) {
    const approvers = mail.links?.approvers;
    const ok =
      mail.links && typeof mail.links === "object" && Object.keys(mail.links).every((k) => k === "approvers") &&
      approvers && typeof approvers === "object" && !Array.isArray(approvers) &&
      Object.entries(approvers).every(([address, user]) => to.includes(address) && typeof user === "string");
    if (!ok) throw invalid(`${where}.links`, 'must be {"approvers": {"<an address of to>": "<a configured user>", …}}');
    links = { approvers: { ...approvers } };
  }
  // The password (or the OAuth2 secrets) may stay out of the file.
  const pass = smtp.pass ?? env.SMITHERS_SMTP_PASSWORD;
  const auth = smtp.auth === undefined ? undefined : parseSmtpAuth(smtp.auth, `${where}.smtp.auth`, env);
  return {
    smtp: { ...smtp, ...(pass !== undefined ? { pass } : {}), ...(auth ? { auth } : {}) },
    from: mail.from,
    to,
    subjectPrefix: mail.subjectPrefix ?? "[smithers]",
    inboxUrl: mail.inboxUrl ?? null,
    links,
  };
}

const OAUTH2_KEYS = new Set(["type", "user", "accessToken", "clientId", "clientSecret", "refreshToken", "accessUrl", "expires"]);

/**
 * `smtp.auth` for XOAUTH2 (Gmail, Microsoft 365): `{type: "OAuth2", user, accessToken}` or,
 * to have nodemailer fetch access tokens, `{type: "OAuth2", user, clientId, clientSecret,
 * refreshToken, accessUrl?}`. Secrets may come from $SMITHERS_SMTP_OAUTH_CLIENT_SECRET,
 * $SMITHERS_SMTP_OAUTH_REFRESH_TOKEN, $SMITHERS_SMTP_OAUTH_ACCESS_TOKEN.
 */
function parseSmtpAuth(auth, where, env) {
  if (!auth || typeof auth !== "object" || Array.isArray(auth)) throw invalid(where, "must be an object");
  for (const key of Object.keys(auth)) {
    if (!OAUTH2_KEYS.has(key)) throw invalid(where, `unknown key ${JSON.stringify(key)} (known: ${[...OAUTH2_KEYS].join(", ")})`);
  }
  if (auth.type !== "OAuth2") throw invalid(where, 'type must be "OAuth2" (for a password use smtp.user and smtp.pass)');
  const out = {
    ...auth,
    clientSecret: auth.clientSecret ?? env.SMITHERS_SMTP_OAUTH_CLIENT_SECRET,
    refreshToken: auth.refreshToken ?? env.SMITHERS_SMTP_OAUTH_REFRESH_TOKEN,
    accessToken: auth.accessToken ?? env.SMITHERS_SMTP_OAUTH_ACCESS_TOKEN,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  if (typeof out.user !== "string" || !out.user) throw invalid(where, "user is required");
  if (!out.accessToken && !(out.clientId && out.clientSecret && out.refreshToken)) {
    throw invalid(where, "give accessToken, or clientId, clientSecret and refreshToken");
  }
  return out;
}

function isHttpUrl(value) {
  try {
    return typeof value === "string" && /^https?:$/.test(new URL(value).protocol);
  } catch {
    return false;
  }
}

/** A token for the one user of a serve started without any configured: printed at start. */
export function generatedToken(user) {
  const token = randomBytes(24).toString("base64url");
  return { token, entry: { user, scopes: ["admin"], hash: sha256(token) } };
}

/**
 * The identity a presented token stands for, or null. Compares SHA-256 digests in constant
 * time, so neither the tokens nor their length leak through timing.
 * @param {{ user: string, scopes: string[], hash: Buffer }[]} tokens
 * @param {string | undefined} presented
 */
export function authenticate(tokens, presented) {
  if (!presented) return null;
  const digest = sha256(presented);
  let found = null;
  for (const t of tokens) {
    if (timingSafeEqual(t.hash, digest) && !found) found = { user: t.user, scopes: t.scopes };
  }
  return found;
}

