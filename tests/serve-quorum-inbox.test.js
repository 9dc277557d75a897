// The inbox of `smithers serve` on a quorum gate (examples/release-two-person.tsx), in headless
// Chromium (playwright-core, /usr/bin/chromium): alice's vote is recorded and the card stays,
// showing the quorum and the vote to bob's page live; bob's vote decides it; a second vote by
// alice is refused (ALREADY_VOTED). Every decision the pages send carries the card's digest.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EXAMPLES, expectExit, runIdOf, sandbox, smithers } from "./helpers/cli.js";
import { launchChromium, skip } from "./helpers/browser.js";
import { startServe } from "./helpers/serve.js";

const TOKENS = { alice: "alice-quorum-token-0123456789", bob: "bob-quorum-token-0123456789" };
const SMITHERS_TOKENS = JSON.stringify([
  { user: "alice", token: TOKENS.alice, scopes: ["approve"] },
  { user: "bob", token: TOKENS.bob, scopes: ["approve"] },
]);

async function until(fn, what, ms = 20_000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("smithers serve: a quorum gate in the inbox", { skip }, () => {
  let box;
  let server;
  let browser;
  let runId;
  const posts = [];

  before(async () => {
    box = sandbox("smithers-quorum-inbox-");
    const up = await expectExit(assert, 3, ["up", join(EXAMPLES, "release-two-person.tsx"), "--input", '{"version":"3.0.0"}', "--by", "carol"], { db: box.db });
    runId = runIdOf(up.stdout);
    server = await startServe({ db: box.db, cwd: box.dir, env: { SMITHERS_TOKENS } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop("SIGTERM");
    box?.cleanup();
  });

  async function pageOf(user) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on("request", (req) => {
      if (req.method() === "POST" && /\/v1\/runs\/.+\/nodes\//.test(req.url())) posts.push({ user, body: req.postDataJSON() });
    });
    await page.goto(`${server.url}?token=${TOKENS[user]}`);
    await page.getByRole("button", { name: `Sign in as ${user}` }).click();
    const card = page.locator('article.card[data-key*="/release-approval/"]');
    await card.waitFor();
    return { page, card };
  }

  async function approve(card) {
    await card.getByRole("button", { name: "Approve" }).click();
    await card.locator('[data-action="approve"]').getByRole("button", { name: "Approve" }).click();
  }

  test("a vote is recorded and shown; the second approver decides; one person counts once", async () => {
    const alice = await pageOf("alice");
    const bob = await pageOf("bob");
    assert.match(await alice.card.locator("section.quorum h4").textContent(), /^Quorum: 2 approvals; from alice, bob, dave; veto: security$/);
    assert.match(await alice.card.locator("section.quorum").textContent(), /No votes yet/);

    await approve(alice.card);
    const ok = alice.card.locator('.result[data-kind="ok"]');
    await ok.waitFor();
    assert.match(await ok.textContent(), /Vote recorded \(approve\): 1 of 2 approvals/);
    // Bob's page shows alice's vote live (ApprovalVoted), and the gate still waits.
    await until(async () => (await bob.card.locator('li.vote[data-voter="alice"]').count()) === 1, "alice's vote on bob's card");
    const a = (await smithers(["inspect", runId, "--json"], { db: box.db })).json.approvals[0];
    assert.equal(a.status, "requested");
    assert.deepEqual(a.votes.map((v) => v.voter), ["alice"]);

    // alice again, from a fresh page: refused.
    const again = await pageOf("alice");
    await approve(again.card);
    const err = again.card.locator('.result[data-kind="error"]');
    await err.waitFor();
    assert.match(await err.textContent(), /ALREADY_VOTED/);
    assert.match(await err.textContent(), /HTTP 409/);

    await approve(bob.card);
    await bob.card.locator('.result[data-kind="ok"]').waitFor();
    assert.match(await bob.card.locator(".result").textContent(), /Approved.*by bob/);
    const info = await until(async () => {
      const i = (await smithers(["inspect", runId, "--json"], { db: box.db })).json;
      return i.run.status === "finished" && i;
    }, "the release to finish");
    const decided = info.approvals[0];
    assert.deepEqual([decided.status, decided.decidedBy], ["approved", "bob"]);
    assert.deepEqual(decided.votes.map((v) => v.voter), ["alice", "bob"]);
    assert.equal(info.outputs.find((o) => o.table === "shipped")?.value.tag, "v3.0.0");
    // Each decision the pages sent was bound to the card's view.
    assert.equal(posts.length, 3);
    for (const p of posts) assert.equal(p.body.expectDigest, a.digest);
  });
});
