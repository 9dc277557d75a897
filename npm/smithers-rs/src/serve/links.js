// Signed single-use decision links: a URL that approves or denies one gate as one approver,
// without a token. The link carries its claims (gate, round, action, approver, expiry, and
// the gate's digest when it has one), signed with HMAC-SHA256 under the serve's link secret,
// so any serve process with the same secret can check it. Opening it (GET) only shows a
// confirmation page (mail scanners and chat unfurlers fetch links); the decision is the POST.
// Single use is a row (`_smithers_link_uses`, the core's `useLink`): the first use wins, a
// second is LINK_USED, whichever process it reaches.
//
// Codes: LINK_INVALID (malformed, bad signature, an approver no longer configured),
// LINK_EXPIRED (past its expiry, or the gate it names no longer waits in that round),
// LINK_USED (used before; details say when and what it did).
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { SmithersError } from "../errors.js";

const VERSION = "l1";
export const LINK_ACTIONS = ["approve", "deny"];
/** Default lifetime of a link; a gate that stops waiting ends it sooner. */
export const DEFAULT_LINK_TTL_MS = 24 * 60 * 60 * 1000;

const mac = (secret, text) => createHmac("sha256", secret).update(text, "utf8").digest();

/**
 * A signed link token for one gate, one action, one approver.
 * @param {string} secret
 * @param {{ runId: string, nodeId: string, iteration: number, round?: number, action: "approve" | "deny",
 *   approver: string, expiresAtMs: number, digest?: string | null }} claims
 */
export function signLink(secret, claims) {
  const body = {
    id: randomBytes(12).toString("base64url"),
    r: claims.runId,
    n: claims.nodeId,
    i: claims.iteration,
    o: claims.round ?? 1,
    a: claims.action,
    u: claims.approver,
    e: claims.expiresAtMs,
    ...(claims.digest ? { d: claims.digest } : {}),
  };
  const payload = Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
  return `${VERSION}.${payload}.${mac(secret, `${VERSION}.${payload}`).toString("base64url")}`;
}

/**
 * The claims of a token this secret signed, or LINK_INVALID / LINK_EXPIRED.
 * @returns {{ linkId: string, runId: string, nodeId: string, iteration: number, round: number,
 *   action: "approve" | "deny", approver: string, expiresAtMs: number, digest: string | null }}
 */
export function verifyLink(secret, token, nowMs = Date.now()) {
  const invalid = (why) => new SmithersError("LINK_INVALID", `this decision link is not valid: ${why}`);
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3 || parts[0] !== VERSION) throw invalid("it is not a link this server made");
  const expected = mac(secret, `${parts[0]}.${parts[1]}`);
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid("its signature does not match");
  let c;
  try {
    c = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    throw invalid("its claims are not readable");
  }
  const ok =
    c && typeof c.id === "string" && typeof c.r === "string" && typeof c.n === "string" && Number.isInteger(c.i) &&
    Number.isInteger(c.o) && LINK_ACTIONS.includes(c.a) && typeof c.u === "string" && Number.isFinite(c.e);
  if (!ok) throw invalid("its claims are incomplete");
  const claims = { linkId: c.id, runId: c.r, nodeId: c.n, iteration: c.i, round: c.o, action: c.a, approver: c.u, expiresAtMs: c.e, digest: c.d ?? null };
  if (nowMs >= c.e) {
    throw new SmithersError("LINK_EXPIRED", `this decision link expired at ${new Date(c.e).toISOString()}`, {
      runId: c.r,
      nodeId: c.n,
      expiresAt: new Date(c.e).toISOString(),
    });
  }
  return claims;
}

/**
 * Approve and deny links for one gate as one approver: `{approve, deny, approver, expiresAt}`.
 * @param {{ secret: string, ttlMs: number }} links the serve's `links` configuration
 * @param {string} baseUrl where this serve is reached (publicUrl), ending in "/"
 * @param {{ runId: string, nodeId: string, iteration: number, round?: number, digest?: string | null,
 *   deadlineAtMs?: number | null }} gate a gate with a deadline ends its links then, if sooner
 * @param {string} approver
 */
export function decisionLinks(links, baseUrl, gate, approver, nowMs = Date.now()) {
  const expiresAtMs = Math.min(nowMs + links.ttlMs, gate.deadlineAtMs ?? Number.POSITIVE_INFINITY);
  const { runId, nodeId, iteration, round = 1, digest = null } = gate;
  const url = (action) => `${baseUrl}v1/links/${signLink(links.secret, { runId, nodeId, iteration, round, digest, action, approver, expiresAtMs })}`;
  return { approve: url("approve"), deny: url("deny"), approver, expiresAt: new Date(expiresAtMs).toISOString() };
}
