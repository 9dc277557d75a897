// A gate with a deadline and an escalation step in the inbox of `smithers serve`, in headless
// Chromium: the card says when the gate decides itself and how, and — once serve fired the
// escalation (the test clock is an hour and a minute ahead) — who may decide now. The deadline
// has not passed, so the gate still waits.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { expectExit, runIdOf, sandbox, smithers } from "./helpers/cli.js";
import { launchChromium, skip } from "./helpers/browser.js";
import { PKG_INDEX_URL, waitFor } from "./helpers/durability.js";
import { startServe } from "./helpers/serve.js";

const HOUR = 3_600_000;
const TOKEN = "bob-deadline-token-0123456789";
const SMITHERS_TOKENS = JSON.stringify([{ user: "bob", token: TOKEN, scopes: ["approve"] }]);

const WORKFLOW = `import { approval, fields, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
const build = task("build", { output: fields({ v: "number" }), run: () => ({ v: 1 }) });
const gate = approval("gate", {
  needs: { build },
  request: { title: "Ship it?" },
  allowedUsers: ["alice"],
  timeoutMs: ${2 * HOUR},
  onTimeout: "deny",
  escalate: [{ after: "1h", allowedUsers: ["bob"] }],
});
export default workflow({ name: "deadline-inbox", steps: [build, gate] });
`;

describe("smithers serve: a gate's deadline and escalation in the inbox", { skip }, () => {
  let box;
  let server;
  let browser;
  let runId;
  let requestedAtMs;

  before(async () => {
    box = sandbox("smithers-deadline-inbox-");
    const wf = box.write("gate.js", WORKFLOW);
    runId = runIdOf((await expectExit(assert, 3, ["up", wf], { db: box.db })).stdout);
    requestedAtMs = (await smithers(["inspect", runId, "--json"], { db: box.db })).json.approvals[0].requestedAtMs;
    // serve starts an hour and a minute later by its clock: the escalation is due, the deadline not.
    server = await startServe({ db: box.db, cwd: box.dir, env: { SMITHERS_TOKENS, SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(HOUR + 60_000) } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop("SIGTERM");
    box?.cleanup();
  });

  test("the card shows the deadline, what it decides, and who may decide after the escalation", async () => {
    // serve fired the escalation step (a row due an hour after the request) at start-up.
    const listed = await waitFor(
      async () => {
        const r = await fetch(`${server.url}/v1/approvals`, { headers: { authorization: `Bearer ${TOKEN}` } });
        const a = (await r.json()).approvals?.find((x) => x.runId === runId);
        return a?.escalated?.length === 1 ? a : null;
      },
      { what: "the escalation to fire", timeoutMs: 30_000 },
    );
    assert.equal(listed.status, "requested");
    assert.equal(listed.deadlineAtMs, requestedAtMs + 2 * HOUR);
    assert.equal(listed.onTimeout, "deny");
    assert.deepEqual(listed.allowedUsers, ["alice", "bob"]);
    assert.deepEqual(listed.escalated[0].added, { allowedUsers: ["bob"] });

    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}?token=${TOKEN}`);
    await page.getByRole("button", { name: "Sign in as bob" }).click();
    const card = page.locator('article.card[data-key*="/gate/"]');
    await card.waitFor();
    const deadline = card.locator("p.deadline");
    assert.match(await deadline.textContent(), /^Deadline .+: if nobody decides by then, it is denied by system:timeout\.$/);
    assert.equal(await deadline.locator("time").getAttribute("datetime"), new Date(requestedAtMs + 2 * HOUR).toISOString());
    assert.equal(await card.locator("p.restrict").textContent(), "Only users: alice, bob may decide now.");
    assert.equal(await card.locator("p.escalated").textContent(), "Escalated once: who may decide was widened.");
  });
});
