// The inbox shows Dagu runs as Dagu's Approval tab does: each waiting step with its prompt
// and its stdout inline, Approve and Retry (push-back) with the declared inputs, the
// iteration count, and Reject run with an optional reason. Headless Chromium against the
// real `smithers serve`, as tests/serve-inbox.test.js does; runs started by the CLI from
// examples/dagu in a temp copy.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchChromium, skip } from "./helpers/browser.js";
import { daguBox } from "./helpers/dagu.js";
import { startServe } from "./helpers/serve.js";

const TOKEN = "alice-dagu-inbox-token-0123456789";

async function until(fn, what, ms = 20_000) {
  const t0 = Date.now();
  for (;;) {
    const v = await Promise.resolve().then(fn).catch(() => null);
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("smithers serve: Dagu runs in the inbox", { skip }, () => {
  let box;
  let server;
  let browser;
  let page;
  const runs = {};
  const posts = [];
  /** The last decision the page sent, without the view digest it carries (checked here). */
  const sent = () => {
    const { expectDigest, ...body } = posts.at(-1).body;
    assert.match(expectDigest, /^sha256:[0-9a-f]{64}$/);
    return body;
  };

  const card = (runId, nodeId) => page.locator(`article.card[data-key="${runId}/${nodeId}/0"]`);
  const panel = (c, action) => c.locator(`[data-action="${action}"]`);

  before(async () => {
    // Removed in after() below (a hook has no test context to register it with).
    box = daguBox({ after() {} });
    runs.metrics = (await box.up("metrics-pushback.yaml")).runId;
    runs.migration = (await box.up("migration-inputs.yaml")).runId;
    runs.deploy = (await box.up("deploy-review.yaml")).runId;
    server = await startServe({ db: box.db, cwd: box.dir, env: { SMITHERS_TOKENS: JSON.stringify([{ user: "alice", token: TOKEN, scopes: ["approve"] }]) } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("request", (req) => {
      if (req.method() === "POST" && /\/v1\/runs\//.test(req.url())) posts.push({ url: req.url(), body: req.postDataJSON() });
    });
    await page.goto(`${server.url}?token=${TOKEN}`);
    // A sign-in link asks before it signs in (login CSRF).
    await page.getByRole("button", { name: /^Sign in as / }).click();
  });

  after(async () => {
    await browser?.close();
    await server?.stop("SIGTERM");
    box?.cleanup();
  });

  test("each waiting step shows its prompt and its stdout inline, with Approve, Retry and Reject run", async () => {
    const c = card(runs.metrics, "query_metrics");
    await c.waitFor();
    assert.match(await c.locator(".card-title").textContent(), /Review the error-rate summary/);
    const output = c.locator("details.stdout");
    assert.equal(await output.locator("summary").textContent(), "Step output");
    assert.equal(await output.getAttribute("open"), "", "the stdout is shown inline");
    assert.match(await output.locator("pre").textContent(), /Querying error rates \(since=7d, grouping=daily\)/);
    assert.equal(await c.locator("details.json").count(), 0, "not the {exitCode, stdout, stderr} row");
    const buttons = await c.locator(".action-bar button").allTextContents();
    assert.deepEqual(buttons, ["Approve", "Retry", "Reject run"]);
    assert.equal(await c.locator(".badge.iteration").count(), 0, "no iteration before a push-back");
  });

  test("Retry pushes back with the declared inputs; the card comes back with its iteration count", async () => {
    const c = card(runs.metrics, "query_metrics");
    await c.getByRole("button", { name: "Retry" }).click();
    const form = panel(c, "pushback");
    await form.getByLabel("SINCE").fill("30d");
    await form.getByLabel("GROUPING").fill("weekly");
    await form.getByRole("button", { name: "Retry" }).click();
    assert.deepEqual(sent(), { iteration: 0, inputs: { SINCE: "30d", GROUPING: "weekly" } });
    assert.match(posts.at(-1).url, new RegExp(`/v1/runs/${runs.metrics}/nodes/query_metrics/push-back$`));
    await until(async () => (await c.locator(".badge.iteration").textContent()) === "iteration 1", "iteration 1");
    await until(async () => /since=30d, grouping=weekly/.test(await c.locator("details.stdout pre").textContent()), "the new round's output");
    await c.getByRole("button", { name: "Approve" }).click();
    await panel(c, "approve").getByRole("button", { name: "Approve" }).click();
    await c.locator('.result[data-kind="ok"]').waitFor();
    await until(() => box.marks().some((m) => m.startsWith("slack Querying error rates (since=30d")), "the report step");
  });

  test("Approve asks for the required input before it sends", async () => {
    const c = card(runs.migration, "plan");
    await c.getByRole("button", { name: "Approve" }).click();
    const form = panel(c, "approve");
    await form.getByRole("button", { name: "Approve" }).click();
    assert.match(await form.locator(".form-error").textContent(), /Required: APPROVED_BY/);
    await form.getByLabel(/APPROVED_BY/).fill("alice");
    await form.getByRole("button", { name: "Approve" }).click();
    await c.locator('.result[data-kind="ok"]').waitFor();
    await until(() => box.marks().includes("migrate --approver alice --window next"), "the migration");
  });

  test("Reject run ends the whole run rejected, the reason optional", async () => {
    const c = card(runs.deploy, "deploy_staging");
    await c.getByRole("button", { name: "Reject run" }).click();
    const form = panel(c, "deny");
    assert.match(await form.textContent(), /ends the whole run as rejected/);
    await form.getByRole("button", { name: "Reject run" }).click();
    await c.locator('.result[data-kind="ok"]').waitFor();
    assert.deepEqual(sent(), { iteration: 0 });
    const info = await until(async () => {
      const i = await box.inspect(runs.deploy);
      return i.run.status === "rejected" && i;
    }, "the run to end rejected");
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state]), [["deploy_staging", "rejected"], ["deploy_prod", "cancelled"]]);
    // The run page says who rejected it.
    await page.goto(`${server.url}runs/${runs.deploy}`);
    await page.locator("dl.summary dt", { hasText: /^Rejected$/ }).waitFor();
    assert.match(await page.locator("dl.summary").textContent(), /Rejecteddeploy_staging by alice/);
  });
});
