// Mail for `smithers serve` and workflows' `mail`: the message composition (RFC 5322 + MIME,
// ours), sending through nodemailer, and the "run is waiting for approval" message (mailOnWait).
//
// sendMail(smtp, message): one connection, one message, then QUIT. Everything it throws is a
// SmithersError whose code says what went wrong:
//   MAIL_INVALID_MESSAGE  the message is malformed (bad address, CR/LF in a header…); nothing was sent
//   MAIL_CONNECT_FAILED   no TCP connection, the server closed it, or it does not speak SMTP
//   MAIL_TLS_UNAVAILABLE  TLS was required but not offered, or the TLS handshake failed
//   MAIL_AUTH_FAILED      credentials refused, or no AUTH mechanism nodemailer supports
//   MAIL_REJECTED         the server refused a command (details: command, responseCode, response)
//   MAIL_TIMEOUT          the server stayed silent for smtp.timeoutMs (connect, greeting, any reply)
//   INVALID_ARGUMENT      the smtp options themselves are wrong
import { randomBytes } from "node:crypto";
import net from "node:net";
import os from "node:os";
import { SmithersError } from "../errors.js";

const DEFAULT_TIMEOUT_MS = 15_000;

// ===================================================================== the message

const ASCII = /^[\x00-\x7f]*$/;
/** Control characters other than tab; CR and LF among them (header injection). */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/;
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const ADDRESS_LITERAL = /^\[[A-Za-z0-9.:-]+\]$/;
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** Header names the message builds itself; `headers` may not set them. */
const OWN_HEADERS = new Set(["from", "to", "cc", "bcc", "subject", "mime-version", "content-type", "content-transfer-encoding"]);
/** Header names `headers` may set instead of the generated value. */
const REPLACEABLE_HEADERS = new Set(["date", "message-id"]);
/** Bytes of UTF-8 per RFC 2047 encoded-word: 42 bytes → 56 base64 chars → a 68-char word. */
const WORD_BYTES = 42;
const FOLD_AT = 78;

const invalid = (message, details) => new SmithersError("MAIL_INVALID_MESSAGE", message, details);

/**
 * Splits "a@x, B <b@y>" on the commas that separate addresses (not those inside a quoted
 * display name or angle brackets).
 */
function splitAddressList(text) {
  const parts = [];
  let current = "";
  let quoted = false;
  let angle = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      current += c;
      if (c === "\\" && i + 1 < text.length) current += text[++i];
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === "<") angle = true;
    else if (c === ">") angle = false;
    else if (c === "," && !angle) {
      parts.push(current);
      current = "";
      continue;
    }
    current += c;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** Checks an addr-spec (ASCII, no quoted local part); returns the reason it is not one, or null. */
function addressProblem(address) {
  if (!ASCII.test(address)) return "non-ASCII addresses are not supported (write the domain in its xn-- form)";
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return "not an email address";
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!LOCAL_PART.test(local) || local.startsWith(".") || local.endsWith(".") || local.includes("..")) return "bad local part";
  if (!DOMAIN.test(domain) && !ADDRESS_LITERAL.test(domain)) return "bad domain";
  if (address.length > 254) return "longer than 254 characters";
  return null;
}

/** "Ann <ann@x>" | "ann@x" | '"Doe, J." <j@x>' → { name, address } */
function parseMailbox(text, field) {
  if (CONTROL.test(text)) throw invalid(`${field}: control characters (CR/LF) are not allowed in an address`, { field });
  let name = "";
  let address = text.trim();
  const angled = /^(.*?)\s*<([^<>]*)>$/s.exec(address);
  if (angled) {
    name = angled[1].trim();
    address = angled[2].trim();
    if (name.length >= 2 && name.startsWith('"') && name.endsWith('"')) name = name.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  const problem = addressProblem(address);
  if (problem) throw invalid(`${field}: ${JSON.stringify(text)} is not usable: ${problem}`, { field, address: text });
  return { name, address };
}

/** One or more mailboxes from a string (comma-separated) or an array of strings. */
function parseMailboxes(value, field) {
  const items = Array.isArray(value) ? value : [value];
  const out = [];
  for (const item of items) {
    if (typeof item !== "string") throw invalid(`${field}: expected a string or an array of strings`, { field });
    for (const part of splitAddressList(item)) out.push(parseMailbox(part, field));
  }
  return out;
}

const encodeWord = (text) => `=?UTF-8?B?${Buffer.from(text, "utf8").toString("base64")}?=`;

/** RFC 2047 encoded-words, each ≤ WORD_BYTES of UTF-8 and never splitting a code point. */
function encodedWords(text) {
  const words = [];
  let chunk = "";
  for (const ch of text) {
    if (chunk && Buffer.byteLength(chunk + ch, "utf8") > WORD_BYTES) {
      words.push(encodeWord(chunk));
      chunk = "";
    }
    chunk += ch;
  }
  if (chunk || words.length === 0) words.push(encodeWord(chunk));
  return words;
}

/**
 * A header as lines of at most ~78 characters: `tokens` are joined by single spaces, and a
 * line is folded (CRLF + space) only before a non-empty token, so unfolding gives back the
 * joined value exactly.
 */
function foldHeader(name, tokens) {
  const lines = [];
  let line = `${name}:`;
  for (const token of tokens) {
    if (token && line.length + 1 + token.length > FOLD_AT && line.trim() !== `${name}:`) {
      lines.push(line);
      line = ` ${token}`;
    } else {
      line += ` ${token}`;
    }
  }
  lines.push(line);
  if (lines.some((l) => l.length > 998)) throw invalid(`header ${name}: a line would exceed 998 characters`, { header: name });
  return lines.join("\r\n");
}

/** Tokens for unstructured text (Subject, X-…): as is when plain ASCII, else encoded-words. */
function unstructuredTokens(value) {
  const words = value.split(" ");
  if (ASCII.test(value) && !value.includes("=?") && words.every((w) => w.length <= 900)) return words;
  return encodedWords(value);
}

/** Tokens for a display name: atoms as they are, a quoted-string, or encoded-words. */
function phraseTokens(name) {
  if (!ASCII.test(name) || name.includes("=?") || name.length > 60) return encodedWords(name);
  if (/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+$/.test(name)) return name.split(" ");
  return [`"${name.replace(/[\\"]/g, "\\$&")}"`];
}

/** Tokens of an address-list header: "Name <a@x>," "b@y" … */
function mailboxTokens(mailboxes) {
  const tokens = [];
  mailboxes.forEach(({ name, address }, i) => {
    const comma = i < mailboxes.length - 1 ? "," : "";
    if (name) tokens.push(...phraseTokens(name), `<${address}>${comma}`);
    else tokens.push(`${address}${comma}`);
  });
  return tokens;
}

const pad2 = (n) => String(n).padStart(2, "0");
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** RFC 5322 date-time in local time: "Tue, 05 May 2026 14:03:09 +0200". */
export function rfc5322Date(date = new Date()) {
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return (
    `${DAYS[date.getDay()]}, ${pad2(date.getDate())} ${MONTHS[date.getMonth()]} ${date.getFullYear()} ` +
    `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())} ${sign}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`
  );
}

/**
 * Quoted-printable (RFC 2045) of UTF-8 text, CRLF line endings, lines ≤ 76 characters.
 * Space and tab stay literal except at the end of a line.
 */
export function quotedPrintable(text) {
  const out = [];
  for (const line of text.replace(/\r\n?/g, "\n").split("\n")) {
    const bytes = Buffer.from(line, "utf8");
    let current = "";
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && i < bytes.length - 1);
      const piece = literal ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
      if (current.length + piece.length > 75) {
        out.push(`${current}=`);
        current = "";
      }
      current += piece;
    }
    out.push(current);
  }
  return out.join("\r\n");
}

/** The body part headers and encoded content of one text part. */
const textPart = (subtype, body) =>
  `Content-Type: text/${subtype}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${quotedPrintable(body)}\r\n`;

/**
 * Validates a message and renders it (RFC 5322 + MIME, CRLF, 7-bit, not yet dot-stuffed).
 * Throws MAIL_INVALID_MESSAGE before anything touches the network.
 * @returns {{ envelopeFrom: string, recipients: string[], messageId: string, data: string }}
 */
export function buildMessage(message, now = new Date()) {
  if (!message || typeof message !== "object") throw invalid("sendMail: message must be an object");
  const { from, to, subject = "", text, html, headers = {} } = message;
  if (typeof from !== "string") throw invalid("message.from must be a string", { field: "from" });
  const sender = parseMailboxes(from, "from");
  if (sender.length !== 1) throw invalid("message.from must be exactly one address", { field: "from" });
  if (to === undefined || to === null) throw invalid("message.to is required", { field: "to" });
  const recipients = parseMailboxes(to, "to");
  if (recipients.length === 0) throw invalid("message.to names no recipient", { field: "to" });
  if (typeof subject !== "string") throw invalid("message.subject must be a string", { field: "subject" });
  if (CONTROL.test(subject)) throw invalid("message.subject: control characters (CR/LF) are not allowed", { field: "subject" });
  if (typeof text !== "string") throw invalid("message.text must be a string", { field: "text" });
  if (html !== undefined && html !== null && typeof html !== "string") throw invalid("message.html must be a string", { field: "html" });
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) throw invalid("message.headers must be an object", { field: "headers" });

  const domain = sender[0].address.slice(sender[0].address.lastIndexOf("@") + 1);
  let messageId = `<${randomBytes(12).toString("hex")}.${now.getTime().toString(36)}@${domain}>`;
  let date = rfc5322Date(now);
  const extra = [];
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined || raw === null) continue;
    if (!HEADER_NAME.test(name)) throw invalid(`header name ${JSON.stringify(name)} is not allowed`, { header: name });
    const lower = name.toLowerCase();
    if (OWN_HEADERS.has(lower)) throw invalid(`header ${name} is set by sendMail itself (use from/to/subject)`, { header: name });
    const value = typeof raw === "number" ? String(raw) : raw;
    if (typeof value !== "string") throw invalid(`header ${name}: the value must be a string`, { header: name });
    if (CONTROL.test(value)) throw invalid(`header ${name}: control characters (CR/LF) are not allowed`, { header: name });
    if (lower === "message-id") {
      if (!/^<[^<>\s@]+@[^<>\s@]+>$/.test(value) || !ASCII.test(value)) throw invalid(`header ${name}: expected <id@domain>`, { header: name });
      messageId = value;
    } else if (lower === "date") {
      if (!ASCII.test(value) || value.length > 200) throw invalid(`header ${name}: expected an RFC 5322 date`, { header: name });
      date = value;
    } else if (lower === "reply-to") {
      extra.push(foldHeader(name, mailboxTokens(parseMailboxes(value, name))));
    } else if (!REPLACEABLE_HEADERS.has(lower)) {
      extra.push(foldHeader(name, unstructuredTokens(value)));
    }
  }

  const head = [
    foldHeader("From", mailboxTokens(sender)),
    foldHeader("To", mailboxTokens(recipients)),
    foldHeader("Subject", unstructuredTokens(subject)),
    `Date: ${date}`,
    `Message-ID: ${messageId}`,
    "MIME-Version: 1.0",
    ...extra,
  ];
  let body;
  if (typeof html === "string") {
    // "=_" never occurs in quoted-printable output, so the boundary cannot occur in a part.
    const boundary = `=_smithers_${randomBytes(12).toString("hex")}`;
    head.push(`Content-Type: multipart/alternative; boundary="${boundary}"`);
    body =
      `\r\n--${boundary}\r\n${textPart("plain", text)}` +
      `--${boundary}\r\n${textPart("html", html)}` +
      `--${boundary}--\r\n`;
  } else {
    head.push("Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable");
    body = `${quotedPrintable(text)}\r\n`;
  }

  const seen = new Set();
  const envelope = [];
  for (const { address } of recipients) {
    if (seen.has(address.toLowerCase())) continue;
    seen.add(address.toLowerCase());
    envelope.push(address);
  }
  return { envelopeFrom: sender[0].address, recipients: envelope, messageId, data: `${head.join("\r\n")}\r\n\r\n${body}` };
}


// ===================================================================== sending (nodemailer)

function badOption(message) {
  return new SmithersError("INVALID_ARGUMENT", `sendMail: ${message}`);
}

/** The EHLO name: a domain, or an address literal; falls back to "localhost". */
function helloName(name) {
  if (net.isIPv4(name)) return `[${name}]`;
  if (net.isIPv6(name)) return `[IPv6:${name}]`;
  return DOMAIN.test(name) || ADDRESS_LITERAL.test(name) ? name : "localhost";
}

const hasUserOf = (user) => typeof user === "string";

function normalizeSmtp(smtp) {
  if (!smtp || typeof smtp !== "object") throw badOption("smtp options must be an object");
  const { host, port, secure = false, starttls = "auto", user, rejectUnauthorized = true, timeoutMs = DEFAULT_TIMEOUT_MS, clientName } = smtp;
  if (typeof host !== "string" || !host || /[\s/]/.test(host)) throw badOption("smtp.host must be a host name or address");
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw badOption("smtp.port must be a port number");
  const mode = starttls === true ? "always" : starttls === false ? "never" : starttls;
  if (!["auto", "always", "never"].includes(mode)) throw badOption('smtp.starttls must be "auto", "always" or "never"');
  if (user !== undefined && user !== null && typeof user !== "string") throw badOption("smtp.user must be a string");
  const pass = smtp.pass ?? "";
  if (typeof pass !== "string") throw badOption("smtp.pass must be a string");
  if (typeof user === "string" && (CONTROL.test(user) || CONTROL.test(pass))) throw badOption("smtp.user / smtp.pass contain control characters");
  if (!(typeof timeoutMs === "number" && timeoutMs > 0 && Number.isFinite(timeoutMs))) throw badOption("smtp.timeoutMs must be a positive number");
  if (clientName !== undefined && (typeof clientName !== "string" || CONTROL.test(clientName))) throw badOption("smtp.clientName must be a string");
  const auth = smtp.auth;
  if (auth !== undefined && (!auth || typeof auth !== "object" || auth.type !== "OAuth2" || typeof auth.user !== "string")) {
    throw badOption('smtp.auth must be {type: "OAuth2", user, accessToken | clientId + clientSecret + refreshToken}');
  }
  if (auth !== undefined && hasUserOf(user)) throw badOption("give smtp.user/pass or smtp.auth, not both");
  const hasUser = typeof user === "string";
  return {
    auth: auth === undefined ? undefined : { ...auth },
    host: host.replace(/^\[(.*)\]$/, "$1"),
    port: port ?? (secure ? 465 : hasUser || auth ? 587 : 25),
    secure: Boolean(secure),
    starttls: mode,
    user: hasUser ? user : undefined,
    pass,
    rejectUnauthorized: rejectUnauthorized !== false,
    timeoutMs,
    clientName: helloName(clientName ?? os.hostname()),
  };
}

/** A reply as one line: "250-a\n250 b" → "250 a b". */
function replyText(reply) {
  const lines = String(reply).split(/\r?\n/).filter(Boolean);
  const code = /^\d{3}/.exec(lines[0] ?? "")?.[0];
  if (!code) return lines.join(" ");
  return `${code} ${lines.map((l) => l.replace(/^\d{3}[ -]?/, "")).join(" ")}`.trim();
}

/** What the exchange was doing when it stopped, from nodemailer's transcript. */
class Stage {
  constructor() {
    this.last = null;
    const record = (meta, format, ...args) => {
      if (meta?.tnx !== "client") return;
      const line = String(args[0] ?? format ?? "").split("\r\n")[0];
      // Credentials are never part of a message.
      this.last = /^AUTH\b/i.test(line) ? line.split(" ").slice(0, 2).join(" ") : line.startsWith("<") ? "the message" : line;
    };
    const ignore = () => {};
    this.logger = { trace: ignore, debug: record, info: ignore, warn: ignore, error: ignore, fatal: ignore };
  }
  get text() {
    return this.last ? this.last : "waiting for the greeting";
  }
}

/** nodemailer's error → our code and message. */
function mailError(e, options, stage) {
  const where = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
  const base = { host: options.host, port: options.port };
  const response = typeof e?.response === "string" ? replyText(e.response) : undefined;
  const cause = e?.originalCode ?? e?.code;
  const text = String(e?.message ?? e);
  if (e?.code === "ETIMEDOUT" || cause === "ETIMEDOUT") {
    return new SmithersError("MAIL_TIMEOUT", `mail to ${where} timed out after ${options.timeoutMs} ms (${stage.text})`, { ...base, timeoutMs: options.timeoutMs, stage: stage.text });
  }
  if (e?.code === "EAUTH" || e?.code === "ENOAUTH") {
    // AUTH is sent even when not offered (forceAuth), so a server without it says so here.
    if ([500, 502, 503, 504].includes(e.responseCode)) {
      return new SmithersError("MAIL_AUTH_FAILED", `${where} does not offer AUTH: ${response ?? text}`, { ...base, responseCode: e.responseCode, response });
    }
    return new SmithersError("MAIL_AUTH_FAILED", `${where} refused the credentials of ${JSON.stringify(options.user ?? options.auth?.user ?? "")}: ${response ?? text}`, {
      ...base,
      responseCode: e.responseCode || undefined,
      response,
    });
  }
  if (e?.code === "ETLS" || e?.code === "EREQUIRETLS" || /certificate|SSL routines|TLS/i.test(text)) {
    if (/STARTTLS/i.test(text) && options.starttls === "always") {
      return new SmithersError("MAIL_TLS_UNAVAILABLE", `${where} does not offer STARTTLS (smtp.starttls is "always")`, base);
    }
    return new SmithersError("MAIL_TLS_UNAVAILABLE", `TLS handshake with ${where} failed: ${text}`, base);
  }
  if (e?.code === "EENVELOPE" || e?.code === "EMESSAGE") {
    const command = e.command ?? "DATA";
    return new SmithersError("MAIL_REJECTED", `${where} refused ${command}: ${response ?? text}`, { ...base, command, responseCode: e.responseCode || undefined, response });
  }
  if (e?.code === "EPROTOCOL") {
    return new SmithersError("MAIL_CONNECT_FAILED", `${where} does not speak SMTP: ${text}`, base);
  }
  return new SmithersError("MAIL_CONNECT_FAILED", `cannot connect to ${where}: ${cause ?? ""} ${text}`.replace(/\s+/g, " ").trim(), { ...base, cause });
}

/**
 * Sends one message over SMTP with nodemailer (one connection, then QUIT). The message is
 * composed here (`buildMessage`) and handed to nodemailer as it is; nodemailer speaks SMTP:
 * STARTTLS, AUTH PLAIN / LOGIN / XOAUTH2 (`smtp.auth: {type: "OAuth2", …}`).
 * @param {import("./mail.d.ts").SmtpOptions} smtp
 * @param {import("./mail.d.ts").MailMessage} message
 * @returns {Promise<import("./mail.d.ts").SendMailResult>}
 */
export async function sendMail(smtp, message) {
  const options = normalizeSmtp(smtp);
  const prepared = buildMessage(message);
  const { default: nodemailer } = await import("nodemailer");
  const stage = new Stage();
  const transport = nodemailer.createTransport({
    host: options.host,
    port: options.port,
    secure: options.secure,
    requireTLS: options.starttls === "always",
    ignoreTLS: options.starttls === "never",
    name: options.clientName,
    auth: options.auth ?? (options.user !== undefined ? { user: options.user, pass: options.pass } : undefined),
    tls: { rejectUnauthorized: options.rejectUnauthorized, servername: net.isIP(options.host) ? undefined : options.host },
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    dnsTimeout: options.timeoutMs,
    logger: stage.logger,
    debug: true,
    // AUTH even when the server does not offer it, so the server's answer says why it fails
    // rather than the message going out unauthenticated.
    forceAuth: true,
  });
  let info;
  try {
    info = await transport.sendMail({ envelope: { from: prepared.envelopeFrom, to: prepared.recipients }, raw: prepared.data });
  } catch (e) {
    if (e?.code === "EENVELOPE" && e.command === "RCPT TO" && Array.isArray(e.rejectedErrors)) throw rejectedRecipients(options, e.rejectedErrors, []);
    throw mailError(e, options, stage);
  } finally {
    transport.close();
  }
  if (info.rejected?.length) throw rejectedRecipients(options, info.rejectedErrors ?? info.rejected.map((r) => ({ recipient: r })), info.accepted ?? []);
  return { messageId: prepared.messageId, accepted: [...prepared.recipients], response: replyText(info.response ?? "") };
}

/** Recipients the server refused (RCPT TO); `accepted` got the message anyway. */
function rejectedRecipients(options, errors, accepted) {
  const where = `${options.host}:${options.port}`;
  const rejected = errors.map((e) => ({
    recipient: e.recipient ?? String(e.message ?? "").replace(/^.*?Recipient command failed: /, ""),
    responseCode: e.responseCode || undefined,
    response: typeof e.response === "string" ? replyText(e.response) : undefined,
  }));
  const list = rejected.map((r) => `<${r.recipient}> (${r.response ?? "refused"})`).join(", ");
  return new SmithersError("MAIL_REJECTED", `${where} rejected recipient${rejected.length > 1 ? "s" : ""} ${list}${accepted.length ? `; delivered to ${accepted.join(", ")}` : ""}`, {
    host: options.host,
    port: options.port,
    command: "RCPT TO",
    responseCode: rejected[0]?.responseCode,
    response: rejected[0]?.response,
    rejected,
    accepted,
  });
}

// ===================================================================== the "waiting" mail

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

/** A word as a shell argument: as is when harmless, else single-quoted. */
const shellArg = (word) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/** The commands that decide one gate: approve/deny, or approve/push-back/reject for a review. */
function decisionCommands(runId, gate) {
  const sel = `${shellArg(runId)} --node ${shellArg(gate.nodeId)}${gate.iteration > 0 ? ` --iteration ${gate.iteration}` : ""}`;
  const verbs = gate.kind === "review" ? ["approve", "push-back", "reject"] : ["approve", "deny"];
  const width = Math.max(...verbs.map((v) => v.length)) + 1;
  return verbs.map((v) => ({ label: `${v}:`.padEnd(width), command: `npx smithers ${v} ${sel}` }));
}

/** "deploy, iteration 2, review round 3, waiting since …" */
function gateWhere(gate) {
  const parts = [`node ${gate.nodeId}`];
  if (gate.iteration > 0) parts.push(`iteration ${gate.iteration}`);
  if (gate.kind === "review") parts.push(gate.round > 1 ? `review round ${gate.round}` : "review");
  if (gate.requestedAt) parts.push(`waiting since ${gate.requestedAt}`);
  return parts.join(", ");
}

/** "decides itself at … (deny)": a gate's deadline and what it does then, or null. */
function gateDeadline(gate) {
  if (!Number.isFinite(gate.deadlineAtMs)) return null;
  const outcome = { deny: "denied", approve: "approved", fail: "the run fails" }[gate.onTimeout] ?? null;
  return `deadline ${new Date(gate.deadlineAtMs).toISOString()}${outcome ? ` (then ${outcome === "the run fails" ? outcome : `${outcome} by system:timeout`})` : ""}`;
}

/** Who may decide a gate now, when it restricts it. */
function gateDeciders(gate) {
  const parts = [];
  if (Array.isArray(gate.allowedUsers) && gate.allowedUsers.length) parts.push(`users ${gate.allowedUsers.join(", ")}`);
  if (Array.isArray(gate.allowedScopes) && gate.allowedScopes.length) parts.push(`scopes ${gate.allowedScopes.join(", ")}`);
  return parts.length ? `may decide: ${parts.join("; ")}` : null;
}

/** Why a mail about a waiting run is sent: the wait, a reminder, an escalation. */
function mailReason(reason) {
  if (!reason || reason.kind === "waiting" || reason.kind === undefined) return { kind: "waiting", tag: null, lead: null };
  if (reason.kind === "reminder") {
    const n = Number.isInteger(reason.n) ? reason.n : 1;
    const ofMax = Number.isInteger(reason.max) ? ` of ${reason.max}` : "";
    return { kind: "reminder", tag: `reminder ${n}${ofMax}`, lead: `Reminder ${n}${ofMax}: ` };
  }
  if (reason.kind === "escalated") {
    const added = reason.added ?? {};
    const who = [...(added.allowedUsers ?? []), ...(added.allowedScopes ?? []).map((s) => `scope ${s}`)];
    return { kind: "escalated", tag: "escalated", lead: "Escalated: ", who: who.length ? who.join(", ") : null };
  }
  throw new SmithersError("INVALID_ARGUMENT", `waitMail: reason.kind must be waiting, reminder or escalated, not ${JSON.stringify(reason.kind)}`);
}

/** The prompt and the summary, each once, without repeating the title. */
function gateTexts(gate) {
  const texts = [];
  for (const t of [gate.prompt, gate.summary]) {
    if (typeof t === "string" && t.trim() && t !== gate.title && !texts.includes(t)) texts.push(t.replace(/\r\n?/g, "\n"));
  }
  return texts;
}

/** The inputs an approver may give, required ones marked "*". */
function gateInputs(gate) {
  const required = new Set(gate.required ?? []);
  const names = [...(gate.input ?? [])];
  for (const r of required) if (!names.includes(r)) names.push(r);
  return names.map((name) => ({ name, required: required.has(name) }));
}

/** A gate's signed decision links for this recipient (`gate.links`, see links.js), if any. */
function linkLines(gate) {
  const links = gate.links;
  if (!links || !isWebUrl(links.approve) || !isWebUrl(links.deny)) return [];
  const verbs = [["approve", "Approve"], ["deny", gate.kind === "review" ? "Reject" : "Deny"]];
  const width = Math.max(...verbs.map(([, v]) => `${v} as ${links.approver}:`.length)) + 1;
  return verbs.map(([key, verb]) => ({ verb, url: links[key], label: `${verb} as ${links.approver}:`.padEnd(width) }));
}

/** Only http(s) URLs become links. */
const isWebUrl = (url) => typeof url === "string" && /^https?:\/\/[^\s]+$/i.test(url);

/**
 * The mail sent when a run starts waiting for approval.
 * @param {import("./mail.d.ts").WaitMailOptions} options
 * @returns {import("./mail.d.ts").MailMessage & { subject: string, text: string, html: string }}
 */
export function waitMail({ run, gates: given, inboxUrl, subjectPrefix = "[smithers]", from, to, reason: why }) {
  if (!run || typeof run.runId !== "string") throw new SmithersError("INVALID_ARGUMENT", "waitMail: run.runId is required");
  const gates = Array.isArray(given) ? given : [];
  const reason = mailReason(why);
  const oneLine = (s) => String(s).replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  const runId = run.runId;
  const workflow = run.workflowName ? String(run.workflowName) : runId;
  const count = gates.length;
  const waiting = reason.tag ? `(${reason.tag})` : count > 1 ? `(waiting: ${count} approvals)` : "(waiting)";
  const subject = [oneLine(subjectPrefix ?? ""), oneLine(workflow), waiting].filter(Boolean).join(" ");

  const base = typeof inboxUrl === "string" && inboxUrl ? (inboxUrl.endsWith("/") ? inboxUrl : `${inboxUrl}/`) : null;
  const runUrl = base ? `${base}runs/${encodeURIComponent(runId)}` : null;
  const what = count > 1 ? `${count} approvals` : "approval";
  const headline =
    reason.kind === "waiting"
      ? `Run ${runId} of ${workflow} is waiting for ${what}.`
      : `${reason.lead}run ${runId} of ${workflow} is still waiting for ${what}${reason.who ? `; ${reason.who} may decide it now` : ""}.`;
  const facts = [
    ["workflow", workflow],
    ["run", runId],
    ...(run.status ? [["status", String(run.status)]] : []),
    ...(run.startedBy ? [["started by", String(run.startedBy)]] : []),
  ];
  const links = base ? [["inbox", inboxUrl], ["this run", runUrl]] : [];

  // ---- text
  const width = Math.max(...[...facts, ...links].map(([k]) => k.length)) + 2;
  const text = [headline, ""];
  for (const [k, v] of [...facts, ...links]) text.push(`  ${`${k}:`.padEnd(width)}${v}`);
  gates.forEach((gate, i) => {
    const title = gate.title || gate.nodeId;
    text.push("", `${count > 1 ? `${i + 1}. ` : ""}${title}`);
    const indent = count > 1 ? " ".repeat(`${i + 1}. `.length) : "";
    text.push(`${indent}${gateWhere(gate)}`);
    for (const line of [gateDeadline(gate), gateDeciders(gate)]) if (line) text.push(`${indent}${line}`);
    for (const t of gateTexts(gate)) for (const l of t.split("\n")) text.push(`${indent}${l}`.trimEnd());
    const inputs = gateInputs(gate);
    if (inputs.length) {
      const marked = inputs.map((x) => `${x.name}${x.required ? "*" : ""}`).join(", ");
      text.push(`${indent}inputs: ${marked}${inputs.some((x) => x.required) ? " (* required)" : ""}; pass them as --input KEY=VALUE`);
    }
    for (const { label, command } of decisionCommands(runId, gate)) text.push(`${indent}${label} ${command}`);
    for (const { label, url } of linkLines(gate)) text.push(`${indent}${label} ${url}`);
  });
  text.push("", "-- ", "smithers");

  // ---- html
  const link = (url, label) => (isWebUrl(url) ? `<a href="${escapeHtml(url)}">${escapeHtml(label)}</a>` : escapeHtml(url));
  const html = [
    "<!doctype html>",
    `<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>`,
    '<body style="font-family:system-ui,-apple-system,Segoe UI,sans-serif;line-height:1.45;color:#1f2328">',
    reason.kind === "waiting"
      ? `<p style="font-size:1.1em"><strong>${escapeHtml(workflow)}</strong> is waiting for ${what}.</p>`
      : `<p style="font-size:1.1em">${escapeHtml(reason.lead)}<strong>${escapeHtml(workflow)}</strong> is still waiting for ${what}${reason.who ? `; ${escapeHtml(reason.who)} may decide it now` : ""}.</p>`,
    '<table style="border-collapse:collapse">',
    ...facts.map(([k, v]) => `<tr><td style="color:#656d76;padding-right:1em">${escapeHtml(k)}</td><td><code>${escapeHtml(v)}</code></td></tr>`),
    "</table>",
  ];
  if (base) html.push(`<p>${link(inboxUrl, "Open the inbox")} · ${link(runUrl, "Open this run")}</p>`);
  for (const gate of gates) {
    html.push('<div style="border-left:3px solid #d0d7de;padding-left:12px;margin:16px 0">');
    html.push(`<h3 style="margin:0 0 4px">${escapeHtml(gate.title || gate.nodeId)}</h3>`);
    html.push(`<p style="margin:0;color:#656d76">${escapeHtml(gateWhere(gate))}</p>`);
    for (const line of [gateDeadline(gate), gateDeciders(gate)]) if (line) html.push(`<p style="margin:0;color:#656d76">${escapeHtml(line)}</p>`);
    for (const t of gateTexts(gate)) html.push(`<p style="white-space:pre-wrap">${escapeHtml(t)}</p>`);
    const inputs = gateInputs(gate);
    if (inputs.length) {
      const list = inputs.map((x) => `<code>${escapeHtml(x.name)}</code>${x.required ? "<strong>*</strong>" : ""}`).join(", ");
      html.push(`<p>Inputs: ${list}${inputs.some((x) => x.required) ? " (<strong>*</strong> required)" : ""}; pass them as <code>--input KEY=VALUE</code></p>`);
    }
    const commands = decisionCommands(runId, gate).map(({ label, command }) => `${label} ${command}`);
    html.push(`<pre style="background:#f6f8fa;padding:8px;overflow:auto">${escapeHtml(commands.join("\n"))}</pre>`);
    const links = linkLines(gate);
    if (links.length) {
      html.push(`<p>${links.map(({ verb, url }) => link(url, `${verb} as ${gate.links.approver}`)).join(" · ")}</p>`);
      html.push(`<p style="color:#656d76;font-size:0.9em">Each link works once and expires at ${escapeHtml(gate.links.expiresAt)}; it asks before it records.</p>`);
    }
    html.push("</div>");
  }
  html.push('<p style="color:#656d76;font-size:0.9em">smithers</p>', "</body></html>");

  return { from, to, subject, text: `${text.join("\n")}\n`, html: `${html.join("\n")}\n` };
}

/**
 * The mail sent when a run ends failed or rejected (a Dagu DAG's `mail_on.failure`):
 * subject `<prefix> <workflow> (failed)`, the error or the rejection in the body.
 * @param {{ run: any, subjectPrefix?: string, from: string, to: string | string[] }} options
 * @returns {import("./mail.d.ts").MailMessage & { subject: string, text: string }}
 */
export function runEndedMail({ run, subjectPrefix = "[smithers]", from, to }) {
  if (!run || typeof run.runId !== "string") throw new SmithersError("INVALID_ARGUMENT", "runEndedMail: run.runId is required");
  const oneLine = (s) => String(s).replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  const workflow = run.workflowName ? String(run.workflowName) : run.runId;
  const subject = [oneLine(subjectPrefix ?? ""), oneLine(workflow), `(${oneLine(run.status)})`].filter(Boolean).join(" ");
  const text = [`Run ${run.runId} of ${workflow} ${run.status}.`, ""];
  const rejection = run.rejection;
  if (rejection) {
    text.push(`  rejected: ${rejection.nodeId} by ${rejection.rejectedBy ?? "?"} at ${rejection.rejectedAt}`);
    if (rejection.rejectionReason) text.push(`  reason:   ${rejection.rejectionReason}`);
  } else if (run.error) {
    text.push(`  error: ${run.error.code}: ${run.error.message}`);
  }
  text.push("", `  npx smithers inspect ${shellArg(run.runId)}`, "", "-- ", "smithers");
  return { from, to, subject, text: `${text.join("\n")}\n` };
}
