// A <HumanTask> answered in the web inbox: headless Chromium against `smithers serve`, as in
// serve-inbox.test.js (skipped without Chromium on a developer's machine, failed under CI).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EXAMPLES, expectExit, runIdOf, sandbox, smithers } from "./helpers/cli.js";
import { startServe } from "./helpers/serve.js";

const CHROMIUM = process.env.SMITHERS_CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "olive-inbox-token-0123456789";
let playwright = null;
try {
  playwright = await import("playwright-core");
} catch {
  playwright = null;
}
const missing = !playwright ? "playwright-core is not installed" : !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}` : null;
const skip = missing && !process.env.CI ? missing : false;

describe("the inbox answers a human task", { skip }, () => {
  let box;
  let server;
  let browser;
  let runId;

  before(async () => {
    if (missing) throw new Error(missing);
    box = sandbox("smithers-compat-inbox-");
    const up = await expectExit(assert, 3, ["up", join(EXAMPLES, "incident-triage.tsx"), "--input", '{"service":"web","errors":7}'], { db: box.db });
    runId = runIdOf(up.stdout);
    server = await startServe({
      db: box.db,
      cwd: box.dir,
      env: { SMITHERS_TOKENS: JSON.stringify([{ user: "olive", token: TOKEN, scopes: ["approve"] }]) },
    });
    browser = await playwright.chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
  });

  after(async () => {
    await browser?.close();
    await server?.stop("SIGTERM");
    box?.cleanup();
  });

  test("a field per property of the schema; a required one left blank is said; the answer is the output", async () => {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${server.url}?token=${TOKEN}`);
    // A sign-in link asks before it signs in (login CSRF).
    await page.getByRole("button", { name: /^Sign in as / }).click();
    const card = page.locator(`article.card[data-key*="/triage/"]`);
    await card.waitFor();
    assert.match(await card.textContent(), /web logged 7 errors\. Answer severity/);
    assert.equal(await card.locator(".badge", { hasText: "answer" }).count(), 1);

    await card.getByRole("button", { name: "Approve" }).click();
    const form = card.locator('[data-action="approve"]');
    await form.getByLabel("severity").selectOption("high");
    await form.getByRole("button", { name: "Submit answer" }).click();
    assert.match(await form.locator(".form-error").textContent(), /Required: owner/);

    await form.getByLabel("owner").fill("olive");
    await form.getByLabel("notes").fill("a flaky deploy");
    await form.getByRole("button", { name: "Submit answer" }).click();
    await card.locator('.result[data-kind="ok"]').waitFor();

    // High severity: the page is approved at once (<ApprovalGate when={false}>) and the run ends.
    const deadline = Date.now() + 15_000;
    let info;
    do {
      info = (await smithers(["inspect", runId, "--json"], { db: box.db })).json;
    } while (info.run.status !== "finished" && Date.now() < deadline && !(await new Promise((r) => setTimeout(r, 100))));
    assert.equal(info.run.status, "finished");
    const triage = info.approvals.find((a) => a.nodeId === "triage");
    assert.deepEqual([triage.status, triage.decidedBy], ["approved", "olive"]);
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "triage").value, { severity: "high", owner: "olive", notes: "a flaky deploy" });
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "outcome").value, { paged: true, severity: "high", owner: "olive", decidedBy: null });
    assert.deepEqual(errors, []);
  });
});
