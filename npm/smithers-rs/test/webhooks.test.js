// Webhook signatures (Standard Webhooks), decision-link tokens, and the serve configuration
// of webhooks and links: pure functions, no server.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadServeConfig } from "../src/serve/config.js";
import { signLink, verifyLink } from "../src/serve/links.js";
import { backoffMs, newWebhookSecret, signWebhook, verifyWebhook } from "../src/serve/webhooks.js";

test("signWebhook matches the Standard Webhooks reference vector; verifyWebhook checks signature and age", () => {
  // The example of the Standard Webhooks specification (and of its reference libraries).
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
  const ts = 1614265330;
  const body = '{"test": 2432232314}';
  const headers = signWebhook(secret, id, ts, body);
  assert.deepEqual(headers, {
    "webhook-id": id,
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
  });
  assert.deepEqual(verifyWebhook(secret, headers, body, { nowSec: ts + 10 }), { test: 2432232314 });
  // Several signatures (a secret being rotated): one that matches is enough.
  const rotated = { ...headers, "webhook-signature": `v1,AAAA ${headers["webhook-signature"]}` };
  assert.ok(verifyWebhook(secret, rotated, body, { nowSec: ts }));
  const fails = (h, b, nowSec, code) => assert.throws(() => verifyWebhook(secret, h, b, { nowSec }), { code });
  fails(headers, '{"test": 2432232315}', ts, "WEBHOOK_SIGNATURE_INVALID");
  fails({ ...headers, "webhook-id": "msg_other" }, body, ts, "WEBHOOK_SIGNATURE_INVALID");
  fails(headers, body, ts + 301, "WEBHOOK_TIMESTAMP_INVALID");
  fails({ "webhook-id": id }, body, ts, "WEBHOOK_SIGNATURE_INVALID");
  assert.throws(() => verifyWebhook(newWebhookSecret(), headers, body, { nowSec: ts }), { code: "WEBHOOK_SIGNATURE_INVALID" });
});

test("backoff doubles from initialDelayMs up to maxDelayMs", () => {
  const retry = { initialDelayMs: 1000, maxDelayMs: 5000, maxAttempts: 8 };
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => backoffMs(retry, a)), [1000, 2000, 4000, 5000, 5000]);
});

test("a decision link verifies only with its secret, unaltered, before it expires", () => {
  const secret = "s".repeat(32);
  const claims = { runId: "r1", nodeId: "deploy", iteration: 0, round: 1, action: "approve", approver: "ann", expiresAtMs: 2_000 };
  const token = signLink(secret, claims);
  const got = verifyLink(secret, token, 1_000);
  assert.equal(got.approver, "ann");
  assert.equal(got.action, "approve");
  assert.match(got.linkId, /^[A-Za-z0-9_-]{16}$/);
  assert.notEqual(verifyLink(secret, signLink(secret, claims), 1_000).linkId, got.linkId, "every link has an id of its own");
  assert.throws(() => verifyLink(secret, token, 2_000), { code: "LINK_EXPIRED" });
  assert.throws(() => verifyLink("t".repeat(32), token, 1_000), { code: "LINK_INVALID" });
  // Another approver, another action, a later expiry: the signature no longer matches.
  const [v, payload, mac] = token.split(".");
  const forged = JSON.parse(Buffer.from(payload, "base64url").toString());
  for (const change of [{ u: "mallory" }, { a: "deny" }, { e: 9e15 }]) {
    const altered = Buffer.from(JSON.stringify({ ...forged, ...change })).toString("base64url");
    assert.throws(() => verifyLink(secret, `${v}.${altered}.${mac}`, 1_000), { code: "LINK_INVALID" });
  }
  for (const junk of ["", "l1..", "x.y.z", `${v}.${payload}`]) assert.throws(() => verifyLink(secret, junk, 1_000), { code: "LINK_INVALID" });
});

test("serve configuration: webhooks and links are checked, nothing unknown is accepted", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "smithers-webhook-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = newWebhookSecret();
  const tokens = [{ user: "ann", token: "ann-token-0123456789", scopes: ["approve"] }];
  const load = (config, env = {}) => {
    const path = join(dir, "serve.json");
    writeFileSync(path, JSON.stringify({ tokens, ...config }));
    return loadServeConfig({ configPath: path, env });
  };
  const ok = load({ webhooks: [{ name: "ops", url: "https://hooks.example.com/x", secret, links: { approver: "ann" } }], links: { secret: "k".repeat(32) } });
  assert.deepEqual(ok.webhooks[0].events, ["gate.waiting", "gate.decided"]);
  assert.equal(ok.webhooks[0].format, "json");
  assert.deepEqual(ok.webhooks[0].retry, { maxAttempts: 8, initialDelayMs: 1000, maxDelayMs: 3_600_000 });
  assert.equal(ok.links.ttlMs, 24 * 3600 * 1000);
  assert.equal(load({}, { SMITHERS_LINK_SECRET: "e".repeat(40) }).links.secret, "e".repeat(40));
  assert.equal(load({ webhooks: [{ name: "chat", url: "https://hooks.slack.com/services/T/B/X", format: "slack" }] }).webhooks[0].secret, null);

  const refused = (config, pattern) => assert.throws(() => load(config), (e) => e.code === "SERVE_CONFIG_INVALID" && pattern.test(e.message));
  const hook = { name: "ops", url: "https://hooks.example.com/x", secret };
  refused({ webhooks: [{ ...hook, events: ["gate.waiting", "gate.wating"] }] }, /unknown event "gate.wating"/);
  assert.deepEqual(load({ webhooks: [{ ...hook, events: ["gate.reminder", "gate.escalated", "gate.timed-out"] }] }).webhooks[0].events, ["gate.reminder", "gate.escalated", "gate.timed-out"]);
  refused({ webhooks: [{ ...hook, secret: "not-a-secret" }] }, /whsec_/);
  refused({ webhooks: [{ ...hook, secret: undefined }] }, /secret .* is required/);
  refused({ webhooks: [{ ...hook, format: "teams" }] }, /format must be one of json, slack/);
  refused({ webhooks: [{ ...hook, headers: {} }] }, /unknown key "headers"/);
  refused({ webhooks: [{ ...hook, retry: { attempts: 3 } }] }, /unknown key "attempts"/);
  refused({ webhooks: [hook, hook] }, /two webhooks are named "ops"/);
  refused({ webhooks: [{ ...hook, url: "ftp://x" }] }, /url must be an http\(s\) URL/);
  refused({ webhooks: [{ ...hook, links: { approver: "ann" } }] }, /need a links secret/);
  refused({ webhooks: [{ ...hook, links: { approver: "bob" } }], links: { secret: "k".repeat(32) } }, /"bob" is not a user of any configured token/);
  refused({ links: { secret: "short" } }, /at least 32 characters/);
  refused({ links: { secret: "k".repeat(32), ttl: 5 } }, /unknown key "ttl"/);
  const mail = { smtp: { host: "127.0.0.1" }, from: "s@example.com", to: ["ops@example.com"] };
  refused({ mailOnWait: { ...mail, links: { approvers: { "qa@example.com": "ann" } } }, links: { secret: "k".repeat(32) } }, /an address of to/);
  refused({ mailOnWait: { ...mail, smtp: { host: "h", auth: { type: "OAuth2", user: "bot@example.com" } } } }, /give accessToken, or clientId/);
  // The OAuth2 secrets may stay out of the file.
  const oauth = load(
    { mailOnWait: { ...mail, smtp: { host: "h", auth: { type: "OAuth2", user: "bot@example.com", clientId: "id" } } } },
    { SMITHERS_SMTP_OAUTH_CLIENT_SECRET: "cs", SMITHERS_SMTP_OAUTH_REFRESH_TOKEN: "rt" },
  );
  assert.deepEqual(oauth.mailOnWait.smtp.auth, { type: "OAuth2", user: "bot@example.com", clientId: "id", clientSecret: "cs", refreshToken: "rt" });
});
