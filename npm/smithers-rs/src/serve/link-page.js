// `GET /v1/links/<token>`: the confirmation page of a signed decision link (links.js);
// `POST /v1/links/<token>`: the decision. No token or cookie: the link is the credential, for
// one approver, one gate (in one review round), one action, once, until it expires. The
// decider is the link's approver with the scopes the configuration gives that user, so the
// core checks allowedUsers / allowedScopes / the four-eyes rule as for any other decision.
import { SmithersError } from "../errors.js";
import { verifyLink } from "./links.js";

const PAGE_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "content-type": "text/html; charset=utf-8",
};
/** Failures that say nothing about the link: the approver may use it again. */
const PASSING = new Set(["DB_ERROR", "IO_ERROR", "RUN_OWNED", "INTERNAL"]);

const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

/**
 * @param {any} c the server's context with req, res, decideAs, readForm, statusOf
 * @param {string} token
 */
export async function linkRoute(c, token) {
  const json = /application\/json/.test(c.req.headers.accept ?? "") || /application\/json/.test(c.req.headers["content-type"] ?? "");
  try {
    if (!c.config.links) throw new SmithersError("NOT_FOUND", "decision links are not configured on this server");
    const claims = verifyLink(c.config.links.secret, token);
    const scopes = [...new Set(c.tokens.filter((t) => t.user === claims.approver).flatMap((t) => t.scopes))];
    if (scopes.length === 0) {
      throw new SmithersError("LINK_INVALID", `this decision link is not valid: ${claims.approver} is no longer a configured user`);
    }
    if (c.req.method === "GET") return await confirmation(c, claims, token);
    const body = await c.readForm(["note"]);
    if (body.note !== undefined && typeof body.note !== "string") throw new SmithersError("INVALID_REQUEST", "note must be a string");
    const native = c.engine.native;
    await native.useLinkAsync(
      { linkId: claims.linkId, runId: claims.runId, nodeId: claims.nodeId, iteration: claims.iteration, action: claims.action, approver: claims.approver },
      Date.now(),
    );
    let recorded;
    try {
      const gate = await waitingGate(c, claims);
      const kind = claims.action === "approve" ? "approve" : gate.kind === "review" ? "reject" : "deny";
      const note = body.note?.trim() ? body.note : `via a decision link`;
      recorded = await c.decideAs({ ...c, auth: { user: claims.approver, scopes } }, kind, claims.runId, claims.nodeId, { iteration: claims.iteration, note, expectDigest: claims.digest ?? undefined });
    } catch (e) {
      if (PASSING.has(e?.code)) await native.releaseLinkAsync(claims.linkId);
      else await native.recordLinkOutcomeAsync(claims.linkId, JSON.stringify({ error: { code: e?.code ?? "INTERNAL", message: String(e?.message ?? e) } }));
      throw e;
    }
    await native.recordLinkOutcomeAsync(claims.linkId, JSON.stringify({ status: recorded.status, decidedBy: claims.approver }));
    if (json) return send(c, 200, JSON.stringify(recorded), "application/json; charset=utf-8");
    return page(c, 200, `${capital(recorded.status)}`, [
      `<p><strong>${esc(claims.nodeId)}</strong> in run <code>${esc(claims.runId)}</code> was ${esc(recorded.status)} by ${esc(claims.approver)}.</p>`,
      `<p>The run's status is now <code>${esc(recorded.runStatus ?? "")}</code>. This link cannot be used again.</p>`,
    ]);
  } catch (e) {
    const code = typeof e?.code === "string" && /^[A-Z_]+$/.test(e.code) ? e.code : "INTERNAL";
    const status = code === "INTERNAL" ? 500 : c.statusOf(code);
    if (status === 500) c.log?.(`decision link: ${e?.stack ?? e}`);
    const message = status === 500 && !(e instanceof SmithersError) ? "internal error" : String(e?.message ?? e);
    if (json) return send(c, status, JSON.stringify({ error: { code, message, ...(e?.details && Object.keys(e.details).length ? { details: e.details } : {}) } }), "application/json; charset=utf-8");
    return page(c, status, "This link cannot be used", [`<p>${esc(message)}</p>`, `<p><code>${esc(code)}</code></p>`]);
  }
}

/** The gate the link names, still waiting in the link's round; else the link expired with it. */
async function waitingGate(c, claims) {
  const gate = (await c.engine.pendingApprovalsAsync({ runId: claims.runId, limit: 500 })).find((a) => a.runId === claims.runId && a.nodeId === claims.nodeId && a.iteration === claims.iteration);
  // A link is for what the approver was shown: another round of a review, or (once gates
  // carry one) another digest of what is shown, is another question.
  if (!gate || (gate.round ?? 1) !== claims.round || (claims.digest && gate.digest !== claims.digest)) {
    throw new SmithersError("LINK_EXPIRED", `${claims.nodeId} in run ${claims.runId} no longer waits for the decision this link was made for`, {
      runId: claims.runId,
      nodeId: claims.nodeId,
    });
  }
  return gate;
}

async function confirmation(c, claims, token) {
  const gate = await waitingGate(c, claims);
  const verb = claims.action === "approve" ? "Approve" : gate.kind === "review" ? "Reject" : "Deny";
  const texts = [gate.summary, gate.prompt].filter((t, i, all) => typeof t === "string" && t && t !== gate.title && all.indexOf(t) === i);
  return page(c, 200, `${verb} ${gate.title || gate.nodeId}?`, [
    `<p>Run <code>${esc(claims.runId)}</code> of <strong>${esc(gate.workflowName)}</strong> waits at <strong>${esc(gate.title || gate.nodeId)}</strong> (<code>${esc(gate.nodeId)}</code>${gate.iteration ? `, iteration ${gate.iteration}` : ""}).</p>`,
    ...texts.map((t) => `<p style="white-space:pre-wrap">${esc(t)}</p>`),
    `<form method="post" action="${esc(token)}">`,
    `<p><label>Note (optional)<br><textarea name="note" rows="3" cols="50"></textarea></label></p>`,
    `<p><button type="submit">${esc(verb)} as ${esc(claims.approver)}</button></p>`,
    "</form>",
    `<p style="color:#656d76">This link works once and expires at ${esc(new Date(claims.expiresAtMs).toISOString())}. Opening it records nothing; the button does.</p>`,
  ]);
}

const capital = (s) => String(s).charAt(0).toUpperCase() + String(s).slice(1);

function page(c, status, title, body) {
  const html = [
    "<!doctype html>",
    `<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(title)}</title></head>`,
    '<body style="font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;line-height:1.45;color:#1f2328">',
    `<h1 style="font-size:1.3em">${esc(title)}</h1>`,
    ...body,
    "</body></html>",
  ].join("\n");
  c.res.writeHead(status, { ...PAGE_HEADERS, "content-length": Buffer.byteLength(html) });
  c.res.end(c.req.method === "HEAD" ? undefined : html);
}

function send(c, status, text, type) {
  c.res.writeHead(status, { ...PAGE_HEADERS, "content-type": type, "content-length": Buffer.byteLength(text) });
  c.res.end(text);
}
