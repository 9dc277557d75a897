// `smithers serve` configuration: who may call the API (bearer tokens → user + scopes), the
// four-eyes rule, and mail on wait. From a JSON file and the environment.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, extname, resolve } from "node:path";
import { SmithersError } from "../errors.js";

const KEYS = new Set(["tokens", "forbidSelfApproval", "mailOnWait", "publicUrl", "workflows", "workers"]);
const WORKER_KEYS = new Set(["renderTimeoutMs", "blockedTimeoutMs", "max"]);
/** A name under which a workflow file may be started over HTTP (`/v1/runs`, Dagu's `/dags/{name}/start`). */
const WORKFLOW_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const TOKEN_KEYS = new Set(["user", "token", "tokenSha256", "scopes"]);
const MAIL_KEYS = new Set(["smtp", "from", "to", "subjectPrefix", "inboxUrl"]);
const SMTP_KEYS = new Set(["host", "port", "secure", "starttls", "user", "pass", "rejectUnauthorized", "timeoutMs"]);

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
  return { path: where === "configuration" ? null : where, tokens, forbidSelfApproval, mailOnWait, publicUrl: file.publicUrl ?? null, workflows, workers };
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
  // The password may stay out of the file.
  const pass = smtp.pass ?? env.SMITHERS_SMTP_PASSWORD;
  return {
    smtp: { ...smtp, ...(pass !== undefined ? { pass } : {}) },
    from: mail.from,
    to,
    subjectPrefix: mail.subjectPrefix ?? "[smithers]",
    inboxUrl: mail.inboxUrl ?? null,
  };
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

