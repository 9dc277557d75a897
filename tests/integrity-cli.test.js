// Approvals that cannot be faked (issue 15, items 4-6) through the `smithers` CLI: the
// digest `inspect` and `why` print and `approve --expect-digest` checks (STALE_VIEW), the
// decision log `audit verify` / `audit export` check and write, and the two-person release
// example (quorum with a security veto).
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { EXAMPLES, expectExit, inspectRun, sandbox } from "./helpers/cli.js";

const METRICS = join(EXAMPLES, "metrics-pushback.tsx");
const DIGEST = /^sha256:[0-9a-f]{64}$/;

function box(t) {
  const b = sandbox("smithers-integrity-");
  t.after(() => b.cleanup());
  return b;
}

const pendingOf = (db, runId, nodeId) => inspectRun(db, runId).approvals.find((a) => a.nodeId === nodeId && a.status === "requested");

describe("decisions bound to what was seen (--expect-digest)", () => {
  test("inspect and why print the digest; a decision on the view before a push-back is STALE_VIEW, nothing recorded", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", METRICS, "--run-id", "mx"], { db });
    const first = pendingOf(db, "mx", "metrics").digest;
    assert.match(first, DIGEST);

    const shown = await expectExit(assert, 0, ["inspect", "mx"], { db });
    assert.match(shown.stdout, new RegExp(`^    digest: ${first}$`, "m"));
    const why = await expectExit(assert, 0, ["why", "mx"], { db });
    assert.match(why.stdout, new RegExp(`^  Digest: ${first}$`, "m"));
    const whyJson = await expectExit(assert, 0, ["why", "mx", "--json"], { db });
    assert.equal(whyJson.json.blockers[0].digest, first);
    const inspectJson = await expectExit(assert, 0, ["inspect", "mx", "--json"], { db });
    assert.equal(inspectJson.json.approvals[0].digest, first);

    // Bob sends it back with the digest he saw: accepted; it runs again (round 2).
    await expectExit(assert, 0, ["push-back", "mx", "--node", "metrics", "--input", "DAYS=30", "--by", "bob", "--expect-digest", first], { db });
    const second = pendingOf(db, "mx", "metrics");
    assert.equal(second.round, 2);
    assert.match(second.digest, DIGEST);
    assert.notEqual(second.digest, first);

    // Alice approves what she saw in round 1: refused, exit 1, nothing recorded (both paths:
    // the one that resumes, and the short --no-resume path).
    for (const extra of [[], ["--no-resume"]]) {
      const stale = await expectExit(assert, 1, ["approve", "mx", "--by", "alice", "--expect-digest", first, "--json", ...extra], { db });
      assert.equal(stale.json.error.code, "STALE_VIEW");
      assert.equal(stale.json.error.details.currentDigest, second.digest);
      const still = pendingOf(db, "mx", "metrics");
      assert.equal(still.status, "requested");
      assert.equal(still.digest, second.digest);
    }
    const text = await expectExit(assert, 1, ["approve", "mx", "--by", "alice", "--expect-digest", first], { db });
    assert.match(text.stderr, /STALE_VIEW: metrics \(iteration 0\) of run mx no longer shows what the decider saw/);
    // A digest that is not one: bad input (exit 1, INVALID_DECISION).
    const bad = await expectExit(assert, 1, ["approve", "mx", "--by", "alice", "--expect-digest", "nope", "--json"], { db });
    assert.equal(bad.json.error.code, "INVALID_DECISION");

    // The view she sees now: recorded.
    const ok = await expectExit(assert, 0, ["approve", "mx", "--by", "alice", "--expect-digest", second.digest, "--json"], { db });
    assert.equal(ok.json.status, "approved");
  });

  test("without --expect-digest a decision is not checked (scripts keep working)", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", METRICS, "--run-id", "m2"], { db });
    const ok = await expectExit(assert, 0, ["approve", "m2", "--by", "alice", "--no-resume", "--json"], { db });
    assert.equal(ok.json.status, "approved");
  });
});
