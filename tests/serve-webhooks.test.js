// Webhooks of `smithers serve`, against a real HTTP receiver on loopback that checks every
// signature: deliveries are rows, retried with backoff, across a kill -9 of serve, sent by
// one of two serve processes on one database; Slack payloads carry signed single-use
// approve/deny links, which decide once and refuse a second use, an expired or altered link.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { signLink } from "../npm/smithers-rs/src/serve/links.js";
import { newWebhookSecret, verifyWebhook } from "../npm/smithers-rs/src/serve/webhooks.js";
import { expectExit, smithers } from "./helpers/cli.js";
import { waitFor } from "./helpers/durability.js";
import { client, releaseBox, startServe } from "./helpers/serve.js";

const TOKEN = "webhook-test-token-0123456789";
const LINK_SECRET = "link-secret-for-tests-0123456789abcdef";

/**
 * A webhook receiver on 127.0.0.1. `respond(delivery)` gives each request's status (200 by
 * default); every request is kept with its headers, its body and whether its signature held.
 */
async function receiver(secret, respond = () => 200) {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let body = null;
      let signed = false;
      try {
        body = secret ? verifyWebhook(secret, req.headers, raw) : JSON.parse(raw);
        signed = Boolean(secret);
      } catch {
        body = null;
      }
      const delivery = { id: req.headers["webhook-id"], timestamp: req.headers["webhook-timestamp"], body, signed, raw };
      received.push(delivery);
      const status = respond(delivery, received.filter((d) => d.id === delivery.id).length);
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status < 300 ? "ok" : "try later");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks/smithers`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(resolve);
      }),
  };
}

const deliveriesOf = async (db, extra = []) => {
  const r = await smithers(["deliveries", "--json", ...extra], { db });
  assert.equal(r.code, 0, r.stderr);
  return r.json.deliveries;
};

test("gate events reach a receiver signed; failed attempts are retried with backoff, across a kill -9 of serve", async (t) => {
  const secret = newWebhookSecret();
  // The receiver refuses (503) until the test lets it take deliveries: what happens between is
  // decided by the rows, not by how fast this machine is.
  let accepting = false;
  const hook = await receiver(secret, () => (accepting ? 204 : 503));
  t.after(() => hook.close());
  const { box, config, file } = releaseBox(t, {
    tokens: [{ user: "alice", token: TOKEN, scopes: ["approve"] }],
    publicUrl: "https://approvals.example.com",
    webhooks: [{ name: "ops", url: hook.url, secret, timeoutMs: 2000, retry: { maxAttempts: 50, initialDelayMs: 300, maxDelayMs: 1000 } }],
  }, "smithers-webhooks-");
  let server = await startServe({ db: box.db, config });
  t.after(() => server.stop("SIGKILL"));

  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const runId = up.json.runId;
  // The attempts of each of the two gate.waiting deliveries fail; serve records that.
  const firstFailures = await waitFor(async () => {
    const rows = await deliveriesOf(box.db);
    return rows.length === 2 && rows.every((d) => d.attempts >= 1 && d.status === "pending" && d.lastStatusCode === 503) ? rows : null;
  }, { timeoutMs: 15_000, what: "two failed attempts" });
  assert.ok(firstFailures.every((d) => d.lastStatusCode === 503 && d.eventType === "gate.waiting" && d.runId === runId && d.target === "ops"));
  assert.ok(firstFailures.every((d) => d.nextAttemptAtMs > d.updatedAtMs), "the next attempt is later");

  // serve dies between attempts; the rows are all that is left of the retries.
  await server.stop("SIGKILL");
  const before = hook.received.length;
  accepting = true;
  server = await startServe({ db: box.db, config });
  const delivered = await waitFor(async () => {
    const rows = await deliveriesOf(box.db, ["--status", "delivered"]);
    return rows.length === 2 ? rows : null;
  }, { timeoutMs: 30_000, what: "both deliveries delivered by the restarted serve" });
  const after = hook.received.slice(before);
  assert.deepEqual(
    [...new Set(after.map((d) => d.id))].sort(),
    delivered.map((d) => d.deliveryId).sort(),
    "the restarted serve sent the retries of both",
  );
  assert.ok(delivered.every((d) => d.attempts >= 2 && d.lastStatusCode === 204));

  // Every attempt was signed and carried the delivery's id, the same on each attempt.
  assert.ok(hook.received.every((d) => d.signed), "every signature verified");
  const byId = new Map();
  for (const d of hook.received) byId.set(d.id, [...(byId.get(d.id) ?? []), d]);
  assert.deepEqual([...byId.keys()].sort(), delivered.map((d) => d.deliveryId).sort());
  for (const d of delivered) {
    const attempts = byId.get(d.deliveryId);
    // Every attempt counted in the row reached the receiver (one cut off by the kill may
    // have been counted without reaching it), and the last one was taken.
    assert.ok(attempts.length >= 2 && attempts.length <= d.attempts, `${d.deliveryId}: ${attempts.length} requests, ${d.attempts} attempts`);
    assert.ok(attempts.every((a) => a.raw === attempts[0].raw), "the same body on every attempt");
  }
  const waiting = hook.received.map((d) => d.body).find((b) => b.data.gate.nodeId === "security-review");
  assert.equal(waiting.type, "gate.waiting");
  assert.equal(waiting.data.run.runId, runId);
  assert.equal(waiting.data.run.workflowName, "release");
  assert.equal(waiting.data.gate.title, "Security sign-off for 2.0");
  assert.equal(waiting.data.gate.summary, "CVE scan clean");
  assert.equal(waiting.data.url, `https://approvals.example.com/runs/${runId}`);
  assert.equal(waiting.data.links, undefined, "no links unless configured");

  // A decision is a gate.decided event with who decided.
  const api = client(server.url, TOKEN);
  assert.equal((await api(`/v1/runs/${runId}/nodes/qa-review/approve`, { body: { note: "ship it" } })).status, 200);
  const decided = await waitFor(
    () => hook.received.find((d) => d.body?.type === "gate.decided" && d.body.data.gate.nodeId === "qa-review"),
    { timeoutMs: 15_000, what: "gate.decided" },
  );
  assert.deepEqual(
    { status: decided.body.data.decision.status, by: decided.body.data.decision.decidedBy, note: decided.body.data.decision.note },
    { status: "approved", by: "alice", note: "ship it" },
  );
  // The HTTP API shows the same log (no bodies: a waiting gate's may hold links).
  const listed = await api(`/v1/deliveries?run=${runId}&limit=10`);
  assert.equal(listed.status, 200);
  assert.ok(listed.body.deliveries.length >= 3);
  assert.ok(listed.body.deliveries.every((d) => d.body === undefined));
  assert.equal((await api("/v1/deliveries?status=lost")).body.error.code, "INVALID_DELIVERY");
  const text = await smithers(["deliveries"], { db: box.db });
  assert.match(text.stdout, /DELIVERY\s+TARGET\s+EVENT/);
  assert.match(text.stdout, /gate\.waiting\s+\S+\s+delivered\s+\d+\s+HTTP 204/);
});

test("a receiver that never takes them: failed after maxAttempts; `deliveries retry` makes one due again", async (t) => {
  const secret = newWebhookSecret();
  let down = true;
  const hook = await receiver(secret, () => (down ? 500 : 200));
  t.after(() => hook.close());
  const { box, config, file } = releaseBox(t, {
    tokens: [{ user: "alice", token: TOKEN, scopes: ["admin"] }],
    webhooks: [{ name: "ops", url: hook.url, secret, events: ["gate.waiting"], retry: { maxAttempts: 2, initialDelayMs: 100, maxDelayMs: 100 } }],
  }, "smithers-webhooks-");
  const server = await startServe({ db: box.db, config });
  t.after(() => server.stop("SIGKILL"));
  await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const failed = await waitFor(async () => {
    const rows = await deliveriesOf(box.db, ["--status", "failed"]);
    return rows.length === 2 ? rows : null;
  }, { timeoutMs: 15_000, what: "two failed deliveries" });
  assert.ok(failed.every((d) => d.attempts === 2 && d.lastError === "HTTP 500"));
  assert.equal(hook.received.length, 4);

  down = false;
  const api = client(server.url, TOKEN);
  const retried = await api(`/v1/deliveries/${failed[0].deliveryId}/retry`, { method: "POST" });
  assert.equal(retried.status, 200);
  assert.equal(retried.body.status, "pending");
  const cli = await smithers(["deliveries", "retry", failed[1].deliveryId, "--json"], { db: box.db });
  assert.equal(cli.code, 0, cli.stderr);
  await waitFor(async () => (await deliveriesOf(box.db, ["--status", "delivered"])).length === 2, { timeoutMs: 15_000, what: "the retried deliveries" });
  const again = await smithers(["deliveries", "retry", failed[1].deliveryId], { db: box.db });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /INVALID_DELIVERY/);
  const unknown = await smithers(["deliveries", "retry", "msg_404_ops"], { db: box.db });
  assert.equal(unknown.code, 4);
  assert.match(unknown.stderr, /DELIVERY_NOT_FOUND/);
});

test("two serve processes on one database send each delivery once", async (t) => {
  const secret = newWebhookSecret();
  const hook = await receiver(secret);
  t.after(() => hook.close());
  const { box, config, file } = releaseBox(t, { tokens: [{ user: "alice", token: TOKEN, scopes: ["approve"] }], webhooks: [{ name: "ops", url: hook.url, secret }] }, "smithers-webhooks-");
  const [a, b] = await Promise.all([startServe({ db: box.db, config }), startServe({ db: box.db, config })]);
  t.after(() => Promise.all([a.stop("SIGKILL"), b.stop("SIGKILL")]));
  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const runId = up.json.runId;
  const api = client(a.url, TOKEN);
  await api(`/v1/runs/${runId}/nodes/qa-review/approve`, { body: {} });
  await client(b.url, TOKEN)(`/v1/runs/${runId}/nodes/security-review/deny`, { body: {} });
  await waitFor(async () => (await deliveriesOf(box.db, ["--status", "delivered"])).length === 4, { timeoutMs: 15_000, what: "four deliveries" });
  await new Promise((r) => setTimeout(r, 500));
  const ids = hook.received.map((d) => d.id);
  assert.equal(ids.length, 4, `each delivery sent once: ${ids.join(", ")}`);
  assert.equal(new Set(ids).size, 4);
  const types = hook.received.map((d) => `${d.body.type} ${d.body.data.gate.nodeId}`).sort();
  assert.deepEqual(types, ["gate.decided qa-review", "gate.decided security-review", "gate.waiting qa-review", "gate.waiting security-review"]);
});

test("a Slack payload's approve link: GET asks, POST decides once; a second use, an expired or altered link are refused", async (t) => {
  const slack = await receiver(null);
  t.after(() => slack.close());
  const { box, config, file } = releaseBox(t, {
    tokens: [
      { user: "alice", token: TOKEN, scopes: ["approve"] },
      { user: "bob", token: "bob-token-0123456789abcdef", scopes: ["approve"] },
    ],
    links: { secret: LINK_SECRET },
    webhooks: [{ name: "chat", url: slack.url, format: "slack", events: ["gate.waiting"], links: { approver: "alice" } }],
  }, "smithers-webhooks-");
  const server = await startServe({ db: box.db, config });
  t.after(() => server.stop("SIGKILL"));
  const api = client(server.url, TOKEN);
  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const runId = up.json.runId;
  const message = await waitFor(
    () => slack.received.find((d) => d.body?.blocks && JSON.stringify(d.body).includes("Security sign-off")),
    { timeoutMs: 15_000, what: "the Slack message" },
  );
  // Slack's shape: text, a section, and link buttons.
  assert.match(message.body.text, /Security sign-off for 2\.0 is waiting for approval in run/);
  const actions = message.body.blocks.find((b) => b.type === "actions").elements;
  assert.deepEqual(actions.map((e) => e.action_id), ["approve", "deny", "open"]);
  const approve = actions[0].url;
  const deny = actions[1].url;
  assert.ok(approve.startsWith(`${server.url}v1/links/`), approve);

  // Opening the link records nothing (mail scanners and chat previews open links).
  const page = await fetch(approve);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /Approve Security sign-off for 2\.0\?/);
  assert.match(html, /<form method="post"/);
  assert.match(page.headers.get("content-security-policy"), /default-src 'none'/);
  assert.equal((await api(`/v1/approvals?runId=${runId}`)).body.approvals.length, 2);

  // The POST decides, as alice.
  const used = await fetch(approve, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "note=looks+good" });
  assert.equal(used.status, 200);
  assert.match(await used.text(), /was approved by alice/);
  const run = (await api(`/v1/runs/${runId}`)).body;
  const decision = run.approvals.find((a) => a.nodeId === "security-review");
  assert.equal(decision.status, "approved");
  assert.equal(decision.decidedBy, "alice");
  assert.equal(decision.note, "looks good");

  // Used once: a second use is refused with a stable code, whatever it would do.
  const second = await fetch(approve, { method: "POST", headers: { accept: "application/json" } });
  assert.equal(second.status, 409);
  const refused = await second.json();
  assert.equal(refused.error.code, "LINK_USED");
  assert.equal(refused.error.details.outcome.status, "approved");
  // The other link of that gate expired with it: the gate no longer waits.
  const late = await fetch(deny, { method: "POST", headers: { accept: "application/json" } });
  assert.equal(late.status, 410);
  assert.equal((await late.json()).error.code, "LINK_EXPIRED");
  // A link past its expiry, and one whose claims were altered.
  const qa = { runId, nodeId: "qa-review", iteration: 0, round: 1, action: "approve", approver: "alice" };
  const expired = signLink(LINK_SECRET, { ...qa, expiresAtMs: Date.now() - 1 });
  const r1 = await fetch(`${server.url}v1/links/${expired}`, { method: "POST", headers: { accept: "application/json" } });
  assert.deepEqual([r1.status, (await r1.json()).error.code], [410, "LINK_EXPIRED"]);
  const [v, payload, mac] = signLink(LINK_SECRET, { ...qa, expiresAtMs: Date.now() + 60_000 }).split(".");
  const asBob = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url")), u: "bob" })).toString("base64url");
  const r2 = await fetch(`${server.url}v1/links/${v}.${asBob}.${mac}`, { method: "POST", headers: { accept: "application/json" } });
  assert.deepEqual([r2.status, (await r2.json()).error.code], [403, "LINK_INVALID"]);
  const r3 = await fetch(`${server.url}v1/links/${signLink("another-secret-0123456789abcdef0123", { ...qa, expiresAtMs: Date.now() + 60_000 })}`);
  assert.equal(r3.status, 403);
  assert.match(await r3.text(), /LINK_INVALID/);
  // None of them decided anything.
  assert.equal((await api(`/v1/approvals?runId=${runId}`)).body.approvals.length, 1);
});

test("a gate whose deadline passed while nothing ran: serve fires it at start-up and delivers gate.timed-out (and gate.decided), signed, once", async (t) => {
  const secret = newWebhookSecret();
  const hook = await receiver(secret);
  t.after(() => hook.close());
  const { box, config } = releaseBox(t, {
    tokens: [{ user: "alice", token: TOKEN, scopes: ["approve"] }],
    webhooks: [{ name: "ops", url: hook.url, secret, events: ["gate.timed-out", "gate.decided"] }],
  }, "smithers-webhooks-timeout-");
  const example = new URL("../examples/deploy-gate-timeout.tsx", import.meta.url).pathname;
  const up = await expectExit(assert, 3, ["up", example, "--input", '{"version":"9.9.9"}', "--json"], { db: box.db });
  const runId = up.json.runId;
  // serve starts two hours later by the test clock: the deadline is due at once.
  const server = await startServe({ db: box.db, config, env: { SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(2 * 3_600_000) } });
  t.after(() => server.stop("SIGKILL"));
  const timedOut = await waitFor(() => hook.received.find((d) => d.body?.type === "gate.timed-out"), { timeoutMs: 20_000, what: "gate.timed-out" });
  assert.ok(timedOut.signed);
  assert.equal(timedOut.body.data.run.runId, runId);
  assert.equal(timedOut.body.data.gate.nodeId, "deploy-approval");
  assert.equal(timedOut.body.data.decision.status, "denied");
  assert.equal(timedOut.body.data.decision.decidedBy, "system:timeout");
  assert.equal(timedOut.body.data.decision.onTimeout, "deny");
  const decided = await waitFor(() => hook.received.find((d) => d.body?.type === "gate.decided"), { timeoutMs: 20_000, what: "gate.decided" });
  assert.equal(decided.body.data.decision.decidedBy, "system:timeout");
  // serve resumed the run the deadline moved.
  const api = client(server.url, TOKEN);
  await waitFor(async () => (await api(`/v1/runs/${runId}`)).body.run?.status === "finished", { timeoutMs: 20_000, what: "the run to finish" });
  assert.equal(hook.received.filter((d) => d.body?.type === "gate.timed-out").length, 1);
});
