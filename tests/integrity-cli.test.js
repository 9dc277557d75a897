// Approvals that cannot be faked (issue 15, items 4-6) through the `smithers` CLI: the
// digest `inspect` and `why` print and `approve --expect-digest` checks (STALE_VIEW), the
// decision log `audit verify` / `audit export` check and write, and the two-person release
// example (quorum with a security veto).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { EXAMPLES, expectExit, hasSqlite3, inspectRun, sandbox } from "./helpers/cli.js";

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

describe("the decision log (smithers audit)", () => {
  const PUBLISH = join(EXAMPLES, "publish-approval.tsx");

  /** Three decided runs of the publish example: alice approves p1 and p3, bob denies p2. */
  async function decided(t) {
    const b = box(t);
    for (const [id, verb, by] of [["p1", "approve", "alice"], ["p2", "deny", "bob"], ["p3", "approve", "alice"]]) {
      await expectExit(assert, 3, ["up", PUBLISH, "--run-id", id, "--input", '{"title":"x"}'], { db: b.db });
      await expectExit(assert, 0, [verb, id, "--by", by, "--no-resume"], { db: b.db });
    }
    return b;
  }

  test("verify: exit 0 and the head when the chain holds; export --json writes every entry", async (t) => {
    const { db } = await decided(t);
    const ok = await expectExit(assert, 0, ["audit", "verify"], { db });
    assert.match(ok.stdout, /^decision log: 3 entries, chain intact; head 3 sha256:[0-9a-f]{64}$/m);
    const json = await expectExit(assert, 0, ["audit", "verify", "--json"], { db });
    assert.deepEqual([json.json.ok, json.json.entries, json.json.headSeq, json.json.broken], [true, 3, 3, null]);

    const exported = await expectExit(assert, 0, ["audit", "export", "--json"], { db });
    const entries = exported.json.entries;
    assert.deepEqual(entries.map((e) => [e.seq, e.kind, e.runId, e.nodeId, e.actor, e.data.status]), [
      [1, "decision", "p1", "publish-approval", "alice", "approved"],
      [2, "decision", "p2", "publish-approval", "bob", "denied"],
      [3, "decision", "p3", "publish-approval", "alice", "approved"],
    ]);
    assert.equal(entries[1].prevHash, entries[0].entryHash);
    assert.equal(entries[2].entryHash, json.json.headHash);
    assert.match(entries[0].data.digest, DIGEST);
    const later = await expectExit(assert, 0, ["audit", "export", "--json", "--after", "2"], { db });
    assert.deepEqual(later.json.entries.map((e) => e.seq), [3]);
    const noJson = await expectExit(assert, 4, ["audit", "export"], { db });
    assert.match(noJson.stderr, /USAGE: audit export writes JSON for tools: add --json/);
    await expectExit(assert, 4, ["audit"], { db });
  });

  test("verify names the entry altered or removed with plain SQL: exit 1, AUDIT_CHAIN_BROKEN", { skip: !hasSqlite3() && "no sqlite3 shell" }, async (t) => {
    const { db } = await decided(t);
    execFileSync("sqlite3", [db, "UPDATE _smithers_audit_log SET actor = 'mallory' WHERE seq = 2"]);
    const altered = await expectExit(assert, 1, ["audit", "verify", "--json"], { db });
    assert.equal(altered.json.ok, false);
    assert.equal(altered.json.error.code, "AUDIT_CHAIN_BROKEN");
    assert.deepEqual([altered.json.error.details.seq, altered.json.error.details.problem], [2, "altered"]);
    const text = await expectExit(assert, 1, ["audit", "verify"], { db });
    assert.match(text.stderr, /^smithers: AUDIT_CHAIN_BROKEN: the decision log does not hold at entry 2 \(altered\)/m);
    const exported = await expectExit(assert, 1, ["audit", "export", "--json"], { db });
    assert.equal(exported.json.entries.length, 3, "export still writes what is stored");
    assert.equal(exported.json.verify.broken.seq, 2);

    const other = await decided(t);
    execFileSync("sqlite3", [other.db, "DELETE FROM _smithers_audit_log WHERE seq = 3"]);
    const removed = await expectExit(assert, 1, ["audit", "verify", "--json"], { db: other.db });
    assert.deepEqual([removed.json.broken.seq, removed.json.broken.problem], [3, "removed"]);
  });
});

describe("examples/release-two-person.tsx: two approvers, a security veto", () => {
  const RELEASE = join(EXAMPLES, "release-two-person.tsx");

  test("two distinct approvers release it; one person counts once; votes are shown and logged", async (t) => {
    const { db } = box(t);
    const up = await expectExit(assert, 3, ["up", RELEASE, "--run-id", "rel", "--input", '{"version":"2.4.0"}', "--by", "carol"], { db });
    assert.match(up.stdout, /waiting for approval: release-approval/);

    const alice = await expectExit(assert, 0, ["approve", "rel", "--by", "alice", "--note", "changelog read"], { db });
    assert.match(alice.stdout, /^vote recorded on release-approval in run rel by alice: 1 of 2 approvals$/m);
    assert.match(alice.stdout, /^  quorum: approved by alice \(2 needed\)$/m);
    assert.match(alice.stdout, /^run rel: waiting-approval$/m);
    // alice again: one person counts once (exit 1, nothing recorded).
    const again = await expectExit(assert, 1, ["approve", "rel", "--by", "alice", "--json"], { db });
    assert.equal(again.json.error.code, "ALREADY_VOTED");
    assert.equal(again.json.error.details.voter, "alice");
    // Someone who is not a voter of this gate.
    const eve = await expectExit(assert, 1, ["approve", "rel", "--by", "eve", "--json"], { db });
    assert.equal(eve.json.error.code, "FORBIDDEN");

    const shown = await expectExit(assert, 0, ["inspect", "rel"], { db });
    assert.match(shown.stdout, /^    quorum: 2 approvals from alice, bob, dave; veto: security$/m);
    assert.match(shown.stdout, /^      approve by alice at \S+ \(note: changelog read\)$/m);
    let a = pendingOf(db, "rel", "release-approval");
    assert.deepEqual(a.votes.map((v) => [v.voter, v.verdict, v.veto]), [["alice", "approve", false]]);

    // dave denies: a vote (alice, bob and security can still make up two).
    const dave = await expectExit(assert, 0, ["deny", "rel", "--by", "dave", "--reason", "not on a Friday", "--json"], { db });
    assert.equal(dave.json.status, "voted");
    assert.deepEqual(dave.json.quorum.denials, ["dave"]);

    const bob = await expectExit(assert, 0, ["approve", "rel", "--by", "bob", "--json"], { db });
    assert.equal(bob.json.status, "approved");
    assert.deepEqual(bob.json.quorum.approvals, ["alice", "bob"]);
    assert.equal(bob.json.runStatus, "finished");
    const info = inspectRun(db, "rel");
    a = info.approvals.find((x) => x.nodeId === "release-approval");
    assert.equal(a.status, "approved");
    assert.equal(a.decidedBy, "bob");
    assert.deepEqual(a.votes.map((v) => v.voter), ["alice", "dave", "bob"]);
    assert.deepEqual(info.outputs.find((o) => o.table === "shipped")?.value, { version: "2.4.0", tag: "v2.4.0", approvedBy: "bob" });

    const log = await expectExit(assert, 0, ["audit", "export", "--json"], { db });
    assert.deepEqual(log.json.entries.map((e) => [e.kind, e.actor]), [["vote", "alice"], ["vote", "dave"], ["vote", "bob"], ["decision", "bob"]]);
    assert.deepEqual(log.json.entries[3].data.quorum.approvals, ["alice", "bob"]);
    await expectExit(assert, 0, ["audit", "verify"], { db });
  });

  test("a denial by security vetoes it at once: the release halts", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", RELEASE, "--run-id", "rv", "--input", '{"version":"2.5.0"}', "--by", "carol"], { db });
    await expectExit(assert, 0, ["approve", "rv", "--by", "alice"], { db });
    const veto = await expectExit(assert, 0, ["deny", "rv", "--by", "security", "--reason", "CVE open", "--json"], { db });
    assert.equal(veto.json.status, "denied");
    assert.equal(veto.json.quorum.vetoedBy, "security");
    assert.equal(veto.json.runStatus, "finished");
    const info = inspectRun(db, "rv");
    assert.equal(info.outputs.find((o) => o.table === "shipped"), undefined);
    assert.deepEqual(info.outputs.find((o) => o.table === "halted")?.value, { version: "2.5.0", reason: "CVE open", by: "security" });
    // The starter may not approve under forbidSelfApproval, per vote.
    await expectExit(assert, 3, ["up", RELEASE, "--run-id", "rs", "--input", '{"version":"2.6.0"}', "--by", "alice"], { db });
    const own = await expectExit(assert, 1, ["approve", "rs", "--by", "alice", "--json"], { db, env: { SMITHERS_FORBID_SELF_APPROVAL: "1" } });
    assert.equal(own.json.error.code, "FORBIDDEN");
  });
});
