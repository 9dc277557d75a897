// The web approval inbox of `smithers serve`, used as a person would: headless Chromium
// (playwright-core with the system's /usr/bin/chromium) against the real `smithers serve`
// child process on a database of its own, with runs started by the CLI. Decisions are
// made by clicking and typing; what the engine recorded is checked afterwards through
// `smithers inspect --json` (while serve runs) and the Node API (after it stopped).
//
// Skipped when there is no Chromium at $SMITHERS_CHROMIUM or /usr/bin/chromium (fails
// instead under CI=true).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EXAMPLES, expectExit, inspectRun, runIdOf, sandbox, smithers } from "./helpers/cli.js";
import { launchChromium, skip } from "./helpers/browser.js";
import { startServe } from "./helpers/serve.js";

const TOKENS = {
  alice: "alice-inbox-token-0123456789",
  reader: "reader-inbox-token-0123456789",
};
const SMITHERS_TOKENS = JSON.stringify([
  { user: "alice", token: TOKENS.alice, scopes: ["approve"] },
  { user: "reader", token: TOKENS.reader, scopes: ["read"] },
]);

/** Polls `fn` until it returns a truthy value; fails with `what` after `ms`. */
async function until(fn, what, ms = 20_000) {
  const t0 = Date.now();
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `smithers inspect <runId> --json` (a separate process: serve keeps the database open). */
async function inspectCli(db, runId) {
  const r = await smithers(["inspect", runId, "--json"], { db });
  assert.equal(r.code, 0, `inspect ${runId}: ${r.stderr}`);
  return r.json;
}

const approvalOf = (info, nodeId) => info.approvals.find((a) => a.nodeId === nodeId);
const nodeOf = (info, nodeId) => info.nodes.find((n) => n.nodeId === nodeId);

describe("smithers serve: the web approval inbox in a browser", { skip }, () => {
  let box;
  let server;
  let browser;
  let page; // alice's page
  const runs = {};
  const posts = []; // decision requests alice's page sent: { url, body }
  const pageErrors = []; // uncaught errors in alice's page

  const card = (nodeId, p = page) => p.locator(`article.card[data-key*="/${nodeId}/"]`);
  const panel = (c, action) => c.locator(`[data-action="${action}"]`);

  before(async () => {
    box = sandbox("smithers-inbox-");
    const env = { DEPLOY_DIR: join(box.dir, "deploys"), NOTIFY_LOG: join(box.dir, "notify.log") };
    const up = async (file, ...args) => runIdOf((await expectExit(assert, 3, ["up", join(EXAMPLES, file), ...args], { db: box.db, env })).stdout);
    runs.migration = await up("migration-approval.tsx", "--input", '{"database":"orders"}');
    runs.metrics = await up("metrics-pushback.tsx");
    runs.deploy = await up("deploy-review.tsx", "--input", '{"version":"1.4.2"}');
    runs.publish = await up("publish-approval.tsx", "--input", '{"title":"x"}');
    runs.parallel = await up("parallel-gates.tsx", "--input", '{"release":"v2.0"}');

    server = await startServe({ db: box.db, cwd: box.dir, env: { ...env, SMITHERS_TOKENS } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("request", (req) => {
      if (req.method() === "POST" && /\/v1\/runs\/.+\/nodes\//.test(req.url())) posts.push({ url: req.url(), body: req.postDataJSON() });
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop("SIGTERM");
    box?.cleanup();
  });

  test("signs in with an access token through the page's form", async () => {
    await page.goto(server.url);
    const token = page.getByLabel("Access token");
    await token.waitFor();
    await token.fill("not-a-token-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    const error = page.locator("form.signin .form-error");
    await error.waitFor();
    assert.match(await error.textContent(), /UNAUTHORIZED/);

    await token.fill(TOKENS.alice);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#who").getByText("alice").waitFor();
    assert.match(await page.locator("#who").textContent(), /Signed in as alice.*approve/);
    await until(async () => (await page.locator("article.card").count()) === 6, "six waiting approvals");
    assert.match(await page.locator(".count").textContent(), /^6 waiting/);
    await page.locator('#live[data-state="live"]').waitFor();

    // A review card shows its prompt, round, output and the inputs the reviewer may give.
    const mig = card("migration-plan");
    assert.match(await mig.textContent(), /migration-approval/);
    assert.match(await mig.locator(".card-title").textContent(), /Apply these 3 migrations to orders\?/);
    assert.equal(await mig.locator(".round").textContent(), "round 1");
    assert.match(await mig.locator("details.output.json").textContent(), /"exitCode": 0/);
    assert.match(await mig.locator(".waiting-clock").textContent(), /^waiting \d+s$/);
    assert.equal(await mig.getByRole("link", { name: runs.migration }).getAttribute("href"), `/runs/${runs.migration}`);
    // Gates say Deny, reviews Reject; only reviews can be pushed back.
    assert.equal(await card("publish-approval").getByRole("button", { name: "Deny" }).count(), 1);
    assert.equal(await card("publish-approval").getByRole("button", { name: "Push back" }).count(), 0);
    assert.equal(await mig.getByRole("button", { name: "Reject" }).count(), 1);
  });

  test("approving a review checks its required input in the page, then records the inputs", async () => {
    const mig = card("migration-plan");
    await mig.getByRole("button", { name: "Approve" }).click();
    const form = panel(mig, "approve");
    assert.match(await form.textContent(), /APPROVED_BY \*/);
    await form.getByLabel(/^MAINTENANCE_WINDOW/).fill("sat-02:00");
    await form.getByRole("button", { name: "Approve" }).click();
    const error = form.locator(".form-error");
    await error.waitFor();
    assert.match(await error.textContent(), /Required: APPROVED_BY/);
    assert.equal(await form.getByLabel(/^APPROVED_BY/).getAttribute("aria-invalid"), "true");
    assert.equal(posts.length, 0, "nothing was sent");
    const before = await inspectCli(box.db, runs.migration);
    assert.equal(approvalOf(before, "migration-plan").status, "requested");
    const digest = approvalOf(before, "migration-plan").digest;
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(approvalOf(before, "migration-plan").inputs, {});

    await form.getByLabel(/^APPROVED_BY/).fill("dba-carol");
    await form.getByLabel(/^Note/).fill("window agreed with the team");
    await form.getByRole("button", { name: "Approve" }).click();
    const result = mig.locator('.result[data-kind="ok"]');
    await result.waitFor();
    assert.match(await result.textContent(), /Approved.*by alice/);
    assert.equal(posts.length, 1);
    // The page sends the digest of what the card shows: the decision is bound to that view.
    assert.deepEqual(posts[0].body, { iteration: 0, inputs: { APPROVED_BY: "dba-carol", MAINTENANCE_WINDOW: "sat-02:00" }, note: "window agreed with the team", expectDigest: digest });

    const info = await until(async () => {
      const i = await inspectCli(box.db, runs.migration);
      return i.run.status === "finished" && i;
    }, "the migration run to finish");
    const a = approvalOf(info, "migration-plan");
    assert.equal(a.status, "approved");
    assert.equal(a.decidedBy, "alice");
    assert.equal(a.note, "window agreed with the team");
    assert.deepEqual(a.inputs, { APPROVED_BY: "dba-carol", MAINTENANCE_WINDOW: "sat-02:00" });
    const record = info.outputs.find((o) => o.table === "record");
    assert.deepEqual(record.value, { database: "orders", approvedBy: "dba-carol", maintenanceWindow: "sat-02:00" });
    // The decided card leaves the inbox by itself.
    await mig.waitFor({ state: "detached", timeout: 20_000 });
  });

  test("pushing back shows the next round live, with the history; user text stays text", async () => {
    // A second page of alice's that hears no live events keeps showing round 1.
    const staleCtx = await browser.newContext();
    await staleCtx.route("**/v1/events*", (route) => route.abort());
    const stale = await staleCtx.newPage();
    await stale.goto(`${server.url}?token=${TOKENS.alice}`);
    await stale.getByRole("button", { name: "Sign in as alice" }).click();
    const sm = card("metrics", stale);
    await sm.waitFor();
    const round1 = approvalOf(await inspectCli(box.db, runs.metrics), "metrics").digest;

    const m = card("metrics");
    await m.getByRole("button", { name: "Push back" }).click();
    const form = panel(m, "pushback");
    await form.getByLabel(/^DAYS/).fill("30");
    const note = 'a month, please <img src=x onerror="window.__pwned=1">';
    await form.getByLabel(/^Note/).fill(note);
    await form.getByRole("button", { name: "Push back" }).click();
    await m.locator('.result[data-kind="ok"]').waitFor();
    assert.match(await m.locator(".result").textContent(), /Pushed back.*by alice/);

    // Round 2 arrives through the event stream; no reload.
    await until(async () => (await m.locator(".round").textContent()) === "round 2", "round 2 on the card");
    const history = m.locator(".history-item");
    assert.equal(await history.count(), 1);
    assert.match(await history.textContent(), /Round 1.*pushed-back.*by alice/);
    assert.match(await history.textContent(), /DAYS=30/);
    assert.equal(await history.locator(".note").textContent(), note);
    assert.equal(await m.locator("img").count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.match(await m.locator("details.output.json").first().textContent(), /"days": 30/);
    // The action buttons are back for round 2.
    assert.equal(await m.getByRole("button", { name: "Approve" }).isVisible(), true);

    const info = await inspectCli(box.db, runs.metrics);
    const a = approvalOf(info, "metrics");
    assert.equal(a.status, "requested");
    assert.equal(a.round, 2);
    assert.equal(a.history.length, 1);
    assert.equal(a.history[0].by, "alice");
    assert.equal(a.history[0].note, note);
    assert.deepEqual(a.history[0].inputs, { DAYS: "30" });
    assert.notEqual(a.digest, round1);
    assert.equal(posts.at(-1).body.expectDigest, round1);

    // Approving on the stale page (round 1's view) is refused: STALE_VIEW, nothing recorded.
    await sm.getByRole("button", { name: "Approve" }).click();
    await panel(sm, "approve").getByRole("button", { name: "Approve" }).click();
    const sErr = sm.locator('.result[data-kind="error"]');
    await sErr.waitFor();
    assert.match(await sErr.textContent(), /STALE_VIEW/);
    assert.match(await sErr.textContent(), /HTTP 409/);
    await staleCtx.close();
    const after = approvalOf(await inspectCli(box.db, runs.metrics), "metrics");
    assert.deepEqual([after.status, after.round, after.digest], ["requested", 2, a.digest]);
  });

  test("rejecting a review needs a reason; the run fails and production never deploys", async () => {
    const d = card("deploy-staging");
    await d.getByRole("button", { name: "Reject" }).click();
    const form = panel(d, "deny");
    const sent = posts.length;
    await form.getByRole("button", { name: "Reject" }).click();
    await form.locator(".form-error").waitFor();
    assert.match(await form.locator(".form-error").textContent(), /reason/i);
    assert.equal(posts.length, sent, "nothing was sent");

    await form.getByLabel(/^Reason/).fill("staging is slow");
    await form.getByRole("button", { name: "Reject" }).click();
    await d.locator('.result[data-kind="ok"]').waitFor();
    assert.match(await d.locator(".result").textContent(), /Rejected.*by alice/);
    const { expectDigest, ...sentBody } = posts.at(-1).body;
    assert.deepEqual(sentBody, { iteration: 0, reason: "staging is slow" });
    assert.match(expectDigest, /^sha256:[0-9a-f]{64}$/);

    const info = await until(async () => {
      const i = await inspectCli(box.db, runs.deploy);
      return i.run.status === "rejected" && i;
    }, "the deploy run to end rejected");
    assert.equal(info.run.error.code, "APPROVAL_REJECTED");
    const a = approvalOf(info, "deploy-staging");
    assert.equal(a.status, "rejected");
    assert.equal(a.decidedBy, "alice");
    assert.equal(a.reason, "staging is slow");
    assert.equal(nodeOf(info, "deploy-staging").state, "rejected");
    assert.equal(nodeOf(info, "deploy-production").state, "cancelled");
    assert.equal(existsSync(join(box.dir, "deploys", "production")), false);
  });

  test("a decision made by the CLI in another process removes the card live", async () => {
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    const pub = card("publish-approval");
    await pub.waitFor();
    // Text typed into another card survives the re-render.
    const legal = card("legal-approval");
    await legal.getByRole("button", { name: "Deny" }).click();
    await panel(legal, "deny").getByLabel(/^Reason/).fill("typed before the update");

    await expectExit(assert, 0, ["approve", runs.publish, "--by", "carol", "--note", "from the terminal"], { db: box.db });
    await pub.waitFor({ state: "detached", timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
    assert.equal(await panel(legal, "deny").getByLabel(/^Reason/).inputValue(), "typed before the update");
    await panel(legal, "deny").getByRole("button", { name: "Cancel" }).click();
  });

  test("refusals are shown on the card: FORBIDDEN for a read-only user, ALREADY_DECIDED for a stale card", async () => {
    // A reader may look but not decide.
    const readerCtx = await browser.newContext();
    const readerPage = await readerCtx.newPage();
    await readerPage.goto(`${server.url}?token=${TOKENS.reader}`);
    // The link asks before it signs in (login CSRF), naming whose it is.
    await readerPage.getByRole("heading", { name: "Sign in as reader?" }).waitFor();
    assert.equal(await readerPage.locator("#who").isVisible(), false, "not signed in before the confirmation");
    await readerPage.getByRole("button", { name: "Sign in as reader" }).click();
    const rLegal = card("legal-approval", readerPage);
    await rLegal.waitFor();
    await rLegal.getByRole("button", { name: "Approve" }).click();
    await panel(rLegal, "approve").getByRole("button", { name: "Approve" }).click();
    const rErr = rLegal.locator('.result[data-kind="error"]');
    await rErr.waitFor();
    assert.match(await rErr.textContent(), /FORBIDDEN/);
    assert.match(await rErr.textContent(), /HTTP 403/);
    // The card and its form stay, to try again or leave.
    assert.equal(await panel(rLegal, "approve").isVisible(), true);
    await readerCtx.close();

    // A second page of alice's that hears no live events still shows the gate after it
    // was decided elsewhere; deciding there is refused and said so.
    const staleCtx = await browser.newContext();
    await staleCtx.route("**/v1/events*", (route) => route.abort());
    const stale = await staleCtx.newPage();
    await stale.goto(`${server.url}?token=${TOKENS.alice}`);
    await stale.getByRole("button", { name: "Sign in as alice" }).click();
    const sLegal = card("legal-approval", stale);
    await sLegal.waitFor();

    const legal = card("legal-approval");
    await legal.getByRole("button", { name: "Approve" }).click();
    await panel(legal, "approve").getByRole("button", { name: "Approve" }).click();
    await legal.locator('.result[data-kind="ok"]').waitFor();

    await sLegal.getByRole("button", { name: "Approve" }).click();
    await panel(sLegal, "approve").getByRole("button", { name: "Approve" }).click();
    const sErr = sLegal.locator('.result[data-kind="error"]');
    await sErr.waitFor();
    assert.match(await sErr.textContent(), /ALREADY_DECIDED/);
    assert.match(await sErr.textContent(), /HTTP 409/);
    assert.match(await sErr.textContent(), /approved by alice/);
    await staleCtx.close();

    const info = await inspectCli(box.db, runs.parallel);
    const a = approvalOf(info, "legal-approval");
    assert.equal(a.status, "approved");
    assert.equal(a.decidedBy, "alice");
  });

  test("the run page shows the nodes, approvals and events, and decides its pending review", async () => {
    await card("metrics").getByRole("link", { name: runs.metrics }).click();
    await page.waitForURL(`**/runs/${runs.metrics}`);
    await page.locator("h1.run-title").getByText("metrics-pushback").waitFor();
    const nodeRow = (id) => page.locator(`tr[data-node="${id}"][data-state]`);
    await nodeRow("metrics").waitFor();
    assert.equal(await nodeRow("metrics").getAttribute("data-state"), "waiting-approval");
    assert.equal(await nodeRow("report").getAttribute("data-state"), "pending");
    assert.match(await page.locator(".view-head .badge").textContent(), /waiting-approval/);
    assert.match(await page.locator(".summary").textContent(), /Created/);
    const events = page.locator("table").filter({ hasText: "ApprovalPushedBack" });
    assert.equal(await events.count(), 1);
    const approvals = page.locator("tr.history-row");
    assert.match(await approvals.first().textContent(), /pushed-back.*alice/);

    const m = page.locator("article.card");
    assert.equal(await m.count(), 1);
    await m.getByRole("button", { name: "Approve" }).click();
    await panel(m, "approve").getByRole("button", { name: "Approve" }).click();
    await m.locator('.result[data-kind="ok"]').waitFor();

    // Live: the run finishes and the report node runs, without a reload.
    await until(async () => (await page.locator(".view-head .badge").textContent()) === "finished", "the run badge to say finished");
    await until(async () => (await nodeRow("report").getAttribute("data-state")) === "finished", "the report node to finish");
    await page.getByRole("link", { name: "← Inbox" }).click();
    await page.waitForURL(server.url);
    await page.locator("article.card").first().waitFor();
    // Only the security gate is still waiting.
    await until(async () => (await page.locator("article.card").count()) === 1, "one card left");
    assert.equal(await card("security-approval").count(), 1);
  });

  test("the database says who decided what (Node API, after serve stopped)", async () => {
    assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
    await server.stop("SIGTERM");
    server = null;
    const metrics = inspectRun(box.db, runs.metrics);
    assert.equal(metrics.run.status, "finished");
    const a = approvalOf(metrics, "metrics");
    assert.equal(a.status, "approved");
    assert.equal(a.decidedBy, "alice");
    assert.equal(a.round, 2);
    assert.deepEqual(metrics.outputs.find((o) => o.table === "metrics").value.days, 30);

    const publish = inspectRun(box.db, runs.publish);
    assert.equal(approvalOf(publish, "publish-approval").decidedBy, "carol");
    assert.equal(publish.run.status, "finished");

    const parallel = inspectRun(box.db, runs.parallel);
    assert.equal(approvalOf(parallel, "security-approval").status, "requested");
    assert.equal(parallel.run.status, "waiting-approval");
    assert.equal(nodeOf(parallel, "legal-signoff")?.state, "finished");
  });
});
