// The review-gate examples (examples/deploy-review.tsx, migration-approval.tsx,
// metrics-pushback.tsx) driven end to end through the `smithers` CLI: each test spawns
// `node bin/smithers.js`, checks exit codes and what it prints, then reads the database
// through the Node API, and the files the example scripts write.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  EXAMPLES,
  esc,
  expectExit,
  inspectRun,
  outputsOf,
  printedArgs,
  runIdOf,
  sandbox,
  smithers,
  withEngine,
} from "./helpers/cli.js";

const DEPLOY = join(EXAMPLES, "deploy-review.tsx");
const MIGRATION = join(EXAMPLES, "migration-approval.tsx");
const METRICS = join(EXAMPLES, "metrics-pushback.tsx");
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/**
 * A sandbox for one test, removed when it ends: the database, and the folders the example
 * scripts write to (DEPLOY_DIR for release files, NOTIFY_LOG for the onWait/onFailure lines).
 */
function box(t) {
  const b = sandbox("smithers-review-cli-");
  t.after(() => b.cleanup());
  const env = { DEPLOY_DIR: join(b.dir, "deploys"), NOTIFY_LOG: join(b.dir, "notify.log") };
  const read = (path) => (existsSync(path) ? readFileSync(path, "utf8") : null);
  return {
    ...b,
    env,
    /** The release file of an environment ("<version> <runId>\n"), or null. */
    release: (target) => read(join(env.DEPLOY_DIR, target)),
    /** The notifier's lines. */
    notified: () => (read(env.NOTIFY_LOG) ?? "").split("\n").filter(Boolean),
  };
}

const approvalOf = (info, nodeId) => info.approvals.find((a) => a.nodeId === nodeId);
const nodeOf = (info, nodeId) => info.nodes.find((n) => n.nodeId === nodeId);
/** The command printed after "  <label>:" in CLI output. */
const printed = (stdout, label) => {
  const m = new RegExp(`^  ${label}:\\s+(npx smithers .*)$`, "m").exec(stdout);
  assert.ok(m, `no "${label}:" command in:\n${stdout}`);
  return m[1];
};
/** Everything the engine recorded about a run, to show a refused command changed nothing. */
const snapshot = (db, runId) =>
  withEngine(db, (e) => {
    const { run, nodes, approvals, outputs } = e.inspect(runId);
    const strip = ({ waitingMs: _w, ...a }) => a; // waitingMs grows by itself
    return { run, nodes, approvals: approvals.map(strip), outputs, events: e.events(runId).length };
  });

describe("review gates through the CLI", { concurrency: 2 }, () => {
  // ------------------------------------------------------------ deploy-review

  test("deploy-review: staging runs, waits for review with its output; approve deploys production", async (t) => {
    const b = box(t);
    const { db, env } = b;
    const up = await expectExit(assert, 3, ["up", DEPLOY, "--input", '{"version":"1.4.2"}'], { db, env });
    const runId = runIdOf(up.stdout);
    assert.match(up.stdout, new RegExp(`^run ${runId}: waiting-approval$`, "m"));
    assert.match(
      up.stdout,
      /^  waiting for approval: deploy-staging \(review, round 1\) — 1\.4\.2 is on staging\. Check it, then approve the production deploy\.$/m,
    );
    assert.match(up.stdout, new RegExp(`^    its output: npx smithers logs ${runId} --node deploy-staging --db ${esc(db)}$`, "m"));
    assert.match(up.stdout, new RegExp(`^  approve:   npx smithers approve ${runId} --db ${esc(db)}$`, "m"));
    assert.match(up.stdout, new RegExp(`^  push-back: npx smithers push-back ${runId} --db ${esc(db)}$`, "m"));
    assert.match(up.stdout, new RegExp(`^  reject:    npx smithers reject ${runId} --db ${esc(db)}$`, "m"));

    // The step ran before the review; production did not.
    assert.equal(b.release("staging"), `1.4.2 ${runId}\n`);
    assert.equal(b.release("production"), null);
    assert.deepEqual(b.notified(), [`waiting run=${runId} waiting=deploy-staging failed=`]);
    let info = inspectRun(db, runId);
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state]), [
      ["deploy-staging", "waiting-approval"],
      ["deploy-production", "pending"],
    ]);
    const a = approvalOf(info, "deploy-staging");
    assert.deepEqual([a.kind, a.status, a.round, a.input, a.required, a.history], ["review", "requested", 1, [], [], []]);
    assert.match(a.stdoutPath, new RegExp(`smithers\\.logs/${runId}/deploy-staging\\.0\\.1\\.stdout\\.log$`));
    assert.equal(readFileSync(a.stdoutPath, "utf8"), `deploying 1.4.2 to staging\nreleased 1.4.2 to staging (${env.DEPLOY_DIR}/staging)\n`);

    // The printed logs command, as printed.
    const logs = await expectExit(assert, 0, printedArgs(printed(up.stdout, "  its output")), { env });
    assert.equal(
      logs.stdout,
      `== deploy-staging (attempt 1, exit 0) ==\ndeploying 1.4.2 to staging\nreleased 1.4.2 to staging (${env.DEPLOY_DIR}/staging)\n`,
    );

    // The printed approve command, as printed, with a decider.
    const ok = await expectExit(assert, 0, [...printedArgs(printed(up.stdout, "approve")), "--by", "alice"], { env });
    assert.match(ok.stdout, new RegExp(`^approved deploy-staging in run ${runId} by alice$`, "m"));
    assert.match(ok.stdout, new RegExp(`^run ${runId}: finished$`, "m"));
    assert.equal(b.release("production"), `1.4.2 ${runId}\n`);
    assert.deepEqual(b.notified(), [`waiting run=${runId} waiting=deploy-staging failed=`], "onWait ran once; no failure");

    info = inspectRun(db, runId);
    assert.equal(info.run.status, "finished");
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state, n.attempts]), [
      ["deploy-staging", "finished", 1],
      ["deploy-production", "finished", 1],
    ]);
    const decided = approvalOf(info, "deploy-staging");
    assert.deepEqual([decided.status, decided.decidedBy], ["approved", "alice"]);
    assert.match(decided.decidedAt, ISO);
    assert.deepEqual(outputsOf(info, "deploy").map((o) => [o.nodeId, o.value.exitCode, o.value.stdout.split("\n")[0]]).sort(), [
      ["deploy-production", 0, "deploying 1.4.2 to production"],
      ["deploy-staging", 0, "deploying 1.4.2 to staging"],
    ]);

    // Both tasks' logs, oldest first; --json carries the text and the paths.
    const all = await expectExit(assert, 0, ["logs", runId], { db });
    assert.match(all.stdout, /^== deploy-staging \(attempt 1, exit 0\) ==\ndeploying 1\.4\.2 to staging\n[^\n]*\n== deploy-production \(attempt 1, exit 0\) ==\ndeploying 1\.4\.2 to production\n/);
    const json = await expectExit(assert, 0, ["logs", runId, "--json"], { db });
    assert.equal(json.json.ok, true);
    assert.deepEqual(json.json.attempts.map((x) => [x.nodeId, x.attempt, x.state, x.exitCode]), [
      ["deploy-staging", 1, "finished", 0],
      ["deploy-production", 1, "finished", 0],
    ]);
    for (const x of json.json.attempts) {
      assert.equal(x.stdout, readFileSync(x.stdoutPath, "utf8"));
      assert.equal(x.stderr, "");
      assert.match(x.startedAt, ISO);
    }
  });

  test("deploy-review: reject with a reason ends the run rejected; production is cancelled and never deploys; onFailure runs", async (t) => {
    const b = box(t);
    const { db, env } = b;
    await expectExit(assert, 3, ["up", DEPLOY, "--run-id", "rj", "--input", '{"version":"2.0"}'], { db, env });
    const r = await expectExit(assert, 0, ["reject", "rj", "--node", "deploy-staging", "--reason", "staging is slow", "--by", "carol"], { db, env });
    assert.match(r.stdout, /^rejected deploy-staging in run rj by carol$/m);
    assert.match(r.stdout, /^run rj: rejected \(APPROVAL_REJECTED: deploy-staging was rejected by carol: staging is slow\)$/m);

    let info = inspectRun(db, "rj");
    assert.equal(info.run.status, "rejected");
    assert.deepEqual(info.run.rejection, { nodeId: "deploy-staging", rejectedAt: info.run.rejection.rejectedAt, rejectedBy: "carol", rejectionReason: "staging is slow" });
    assert.equal(info.run.error.code, "APPROVAL_REJECTED");
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state, n.attempts]), [
      ["deploy-staging", "rejected", 1],
      ["deploy-production", "cancelled", 0],
    ]);
    const a = approvalOf(info, "deploy-staging");
    assert.deepEqual([a.status, a.decidedBy, a.reason], ["rejected", "carol", "staging is slow"]);
    assert.equal(b.release("production"), null);
    assert.deepEqual(b.notified(), ["waiting run=rj waiting=deploy-staging failed=", "failed run=rj waiting= failed=deploy-staging"]);

    // inspect and why say who rejected it and why.
    const [insp, why, whyJson] = await Promise.all([
      smithers(["inspect", "rj"], { db }),
      smithers(["why", "rj"], { db }),
      smithers(["why", "rj", "--json"], { db }),
    ]);
    assert.match(insp.stdout, /^deploy-staging\s+0\s+rejected\s+deploy\s+1\s+deploy-staging was rejected by carol: staging is slow$/m);
    assert.match(insp.stdout, /^deploy-production\s+0\s+cancelled\s/m);
    assert.match(insp.stdout, /^  deploy-staging \[0\] rejected by carol at \S+ \(review, round 1\): 2\.0 is on staging/m);
    assert.match(insp.stdout, /^    rejected by carol: staging is slow$/m);
    assert.match(why.stdout, /^The run was rejected at deploy-staging by carol: staging is slow$/m);
    assert.match(why.stdout, /^  Rejected: deploy-staging by carol at \d{4}-\S+: staging is slow$/m);
    assert.deepEqual(whyJson.json.rejected.map((x) => [x.nodeId, x.by, x.reason, x.round]), [["deploy-staging", "carol", "staging is slow", 1]]);
    assert.deepEqual(whyJson.json.blockers, []);

    // The rejection sticks: nothing left to decide, a second decision names the first,
    // and resuming re-runs nothing.
    const none = await expectExit(assert, 4, ["approve", "rj", "--json"], { db, env });
    assert.equal(none.json.error.code, "NO_PENDING_APPROVALS");
    const again = await expectExit(assert, 1, ["approve", "rj", "--node", "deploy-staging", "--json"], { db, env });
    assert.equal(again.json.error.code, "ALREADY_DECIDED");
    assert.deepEqual([again.json.error.details.status, again.json.error.details.decidedBy], ["rejected", "carol"]);
    const resumed = await expectExit(assert, 1, ["resume", "rj"], { db, env });
    assert.match(resumed.stdout, /^run rj: rejected$/m);
    info = inspectRun(db, "rj");
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state, n.attempts]), [
      ["deploy-staging", "rejected", 1],
      ["deploy-production", "cancelled", 0],
    ]);
    assert.equal(b.release("production"), null);
    assert.equal(b.notified().length, 2, "no handler ran again");
  });

  test("deploy-review: a failing staging deploy fails the run and never waits for review", async (t) => {
    const b = box(t);
    const { db } = b;
    const env = { ...b.env, FAIL_ON: "staging" };
    const up = await expectExit(assert, 1, ["up", DEPLOY, "--run-id", "bad", "--input", '{"version":"3.0"}'], { db, env });
    assert.match(up.stdout, /^run bad: failed$/m);
    assert.match(up.stdout, /^  error: COMMAND_FAILED: .*exited with code 3: health check failed on staging$/m);
    assert.doesNotMatch(up.stdout, /waiting for approval/);

    const info = inspectRun(db, "bad");
    assert.equal(info.run.status, "failed");
    assert.equal(info.run.error.code, "COMMAND_FAILED");
    assert.equal(info.run.pendingApprovals, 0);
    assert.deepEqual(info.approvals, [], "no review was ever requested");
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state]), [
      ["deploy-staging", "failed"],
      ["deploy-production", "cancelled"],
    ]);
    assert.equal(b.release("staging"), null);
    assert.deepEqual(b.notified(), ["failed run=bad waiting= failed=deploy-staging"], "onFailure ran; onWait never did");

    const [out, err, both] = await Promise.all([
      smithers(["logs", "bad", "--node", "deploy-staging"], { db }),
      smithers(["logs", "bad", "--node", "deploy-staging", "--stderr"], { db }),
      smithers(["logs", "bad", "--both"], { db }),
    ]);
    assert.equal(out.stdout, "== deploy-staging (attempt 1, exit 3) ==\ndeploying 3.0 to staging\n");
    assert.equal(err.stdout, "== deploy-staging (attempt 1, exit 3) stderr ==\nhealth check failed on staging\n");
    assert.equal(
      both.stdout,
      "== deploy-staging (attempt 1, exit 3) ==\n-- stdout --\ndeploying 3.0 to staging\n-- stderr --\nhealth check failed on staging\n",
    );
    const approve = await expectExit(assert, 4, ["approve", "bad", "--json"], { db });
    assert.equal(approve.json.error.code, "NO_PENDING_APPROVALS");
  });

  // ------------------------------------------------------------ migration-approval

  test("migration-approval: required and undeclared inputs are refused with exit 4 and nothing recorded; inputs reach the migrate step", async (t) => {
    const b = box(t);
    const { db } = b;
    const up = await expectExit(assert, 3, ["up", MIGRATION, "--run-id", "mig", "--input", '{"database":"orders"}'], { db });
    assert.match(up.stdout, /^  waiting for approval: migration-plan \(review, round 1\) — Apply these 3 migrations to orders\? Say who approves, and when\.$/m);
    assert.match(up.stdout, /^    inputs: APPROVED_BY \(required\), MAINTENANCE_WINDOW; pass them as --input KEY=VALUE$/m);
    const before = snapshot(db, "mig");
    assert.equal(before.outputs[0].value.stdout.split("\n")[0], "migration plan for orders:");

    // No APPROVED_BY; a blank one; HOME and an invented name; a malformed --input.
    const missing = await expectExit(assert, 4, ["approve", "mig", "--input", "MAINTENANCE_WINDOW=sat", "--by", "alice"], { db });
    assert.match(missing.stderr, /^smithers: MISSING_REQUIRED_INPUTS: Approving migration-plan needs the inputs: APPROVED_BY$/m);
    assert.match(missing.stderr, /^  nothing was recorded; add --input APPROVED_BY=VALUE$/m);
    assert.equal(missing.stdout, "");
    const blank = await expectExit(assert, 4, ["approve", "mig", "--input", "APPROVED_BY=  ", "--json"], { db });
    assert.equal(blank.json.error.code, "MISSING_REQUIRED_INPUTS");
    assert.deepEqual(blank.json.error.details.missing, ["APPROVED_BY"]);
    const undeclared = await expectExit(assert, 4, ["approve", "mig", "-i", "APPROVED_BY=alice", "-i", "HOME=/tmp/evil", "-i", "EXTRA=1"], { db });
    assert.match(undeclared.stderr, /UNDECLARED_INPUT: migration-plan does not declare the inputs EXTRA, HOME \(declared: APPROVED_BY, MAINTENANCE_WINDOW\)/);
    assert.match(undeclared.stderr, /nothing was recorded; leave out --input EXTRA=… --input HOME=…/);
    const undeclaredJson = await expectExit(assert, 4, ["approve", "mig", "-i", "APPROVED_BY=alice", "-i", "SMITHERS_RUN_ID=spoofed", "--json"], { db });
    assert.equal(undeclaredJson.json.error.code, "UNDECLARED_INPUT");
    assert.deepEqual(undeclaredJson.json.error.details.keys, ["SMITHERS_RUN_ID"]);
    assert.deepEqual(undeclaredJson.json.error.details.allowed, ["APPROVED_BY", "MAINTENANCE_WINDOW"]);
    const pushUndeclared = await expectExit(assert, 4, ["push-back", "mig", "--input", "PATH=/evil", "--json"], { db });
    assert.equal(pushUndeclared.json.error.code, "UNDECLARED_INPUT");
    for (const [args, pattern] of [
      [["--input", "APPROVED_BY"], /--input "APPROVED_BY" must be KEY=VALUE/],
      [["--input", "=alice"], /--input "=alice" has no key before "="/],
      [["--input", "APPROVED_BY=a", "--input", "APPROVED_BY=b"], /--input APPROVED_BY is given twice/],
    ]) {
      const r = await expectExit(assert, 4, ["approve", "mig", ...args, "--json"], { db });
      assert.equal(r.json.error.code, "USAGE");
      assert.match(r.json.error.message, pattern);
    }
    assert.deepEqual(snapshot(db, "mig"), before, "the refused decisions recorded nothing");

    // APPROVED_BY (with an "=" in a value, split at the first one) reaches the migrate step
    // as env, and the JS record step as ctx.approvalInputs.
    const ok = await expectExit(
      assert,
      0,
      ["approve", "mig", "--input", "APPROVED_BY=alice", "--input", "MAINTENANCE_WINDOW=sat 02:00=UTC", "--by", "alice"],
      { db },
    );
    assert.match(ok.stdout, /^approved migration-plan in run mig by alice$/m);
    assert.match(ok.stdout, /^  inputs: APPROVED_BY=alice, MAINTENANCE_WINDOW=sat 02:00=UTC$/m);
    assert.match(ok.stdout, /^run mig: finished$/m);
    const info = inspectRun(db, "mig");
    assert.equal(info.run.status, "finished");
    const a = approvalOf(info, "migration-plan");
    assert.deepEqual(a.inputs, { APPROVED_BY: "alice", MAINTENANCE_WINDOW: "sat 02:00=UTC" });
    assert.deepEqual(outputsOf(info, "step").find((o) => o.nodeId === "migrate").value, {
      exitCode: 0,
      stdout: "migrating orders, approved by alice, window sat 02:00=UTC\n",
      stderr: "",
    });
    assert.deepEqual(outputsOf(info, "record").map((o) => o.value), [
      { database: "orders", approvedBy: "alice", maintenanceWindow: "sat 02:00=UTC" },
    ]);

    const insp = await expectExit(assert, 0, ["inspect", "mig"], { db });
    assert.match(insp.stdout, /^  migration-plan \[0\] approved by alice at \S+ \(review, round 1\): Apply these 3 migrations/m);
    assert.match(insp.stdout, /^    inputs: APPROVED_BY \(required\), MAINTENANCE_WINDOW$/m);
    assert.match(insp.stdout, /^    approved with: APPROVED_BY=alice, MAINTENANCE_WINDOW=sat 02:00=UTC$/m);
  });

  test("migration-approval: approve --json carries the inputs; deny takes no --input", async (t) => {
    const b = box(t);
    const { db } = b;
    await expectExit(assert, 3, ["up", MIGRATION, "--run-id", "mj"], { db });
    const deny = await expectExit(assert, 4, ["deny", "mj", "--input", "APPROVED_BY=x", "--json"], { db });
    assert.equal(deny.json.error.code, "USAGE");
    assert.match(deny.json.error.message, /deny takes no --input/);
    const reject = await expectExit(assert, 4, ["reject", "mj", "--input", "APPROVED_BY=x"], { db });
    assert.match(reject.stderr, /reject takes no --input/);
    assert.equal(inspectRun(db, "mj").approvals[0].status, "requested");

    const r = await expectExit(assert, 0, ["approve", "mj", "--input", "APPROVED_BY=bob", "--by", "bob", "--json"], { db });
    assert.equal(r.json.ok, true);
    assert.deepEqual([r.json.status, r.json.kind, r.json.round, r.json.nodeId], ["approved", "review", 1, "migration-plan"]);
    assert.deepEqual(r.json.inputs, { APPROVED_BY: "bob" });
    assert.deepEqual(r.json.run, { runId: "mj", status: "finished" });
    const migrate = outputsOf(inspectRun(db, "mj"), "step").find((o) => o.nodeId === "migrate");
    assert.equal(migrate.value.stdout, "migrating app, approved by bob, window now\n");
  });

  // ------------------------------------------------------------ metrics-pushback

  test("metrics-pushback: push back with DAYS=30, then DAYS=90, then approve; rounds, history and logs", async (t) => {
    const b = box(t);
    const { db } = b;
    const up = await expectExit(assert, 3, ["up", METRICS, "--run-id", "mx"], { db });
    assert.match(up.stdout, /^  waiting for approval: metrics \(review, round 1\) — Do these numbers answer the question\?/m);
    assert.match(up.stdout, /^    inputs: DAYS; pass them as --input KEY=VALUE$/m);
    assert.deepEqual(outputsOf(inspectRun(db, "mx"), "metrics").map((o) => o.value), [{ days: 7, activeUsers: 875, round: 1 }]);

    const weeks = await expectExit(assert, 4, ["push-back", "mx", "--input", "WEEKS=4"], { db });
    assert.match(weeks.stderr, /UNDECLARED_INPUT: metrics does not declare the input WEEKS \(declared: DAYS\)/);

    const p1 = await expectExit(assert, 0, ["push-back", "mx", "--node", "metrics", "--input", "DAYS=30", "--note", "a month, please", "--by", "bob"], { db });
    assert.match(p1.stdout, /^pushed-back metrics \(round 1\) in run mx by bob$/m);
    assert.match(p1.stdout, /^  inputs: DAYS=30$/m);
    assert.match(p1.stdout, /^run mx: waiting-approval$/m);
    assert.match(p1.stdout, /^  waiting for approval: metrics \(review, round 2\) — /m);
    assert.match(p1.stdout, /^    last round: round 1 pushed-back by bob at \d{4}-\S+: DAYS=30 \(note: a month, please\)$/m);
    let info = inspectRun(db, "mx");
    assert.deepEqual(outputsOf(info, "metrics").map((o) => o.value), [{ days: 30, activeUsers: 3635, round: 2 }]);
    let a = approvalOf(info, "metrics");
    assert.deepEqual([a.status, a.round], ["requested", 2]);
    assert.deepEqual(a.history.map((h) => [h.iteration, h.status, h.by, h.inputs, h.note, h.output]), [
      [1, "pushed-back", "bob", { DAYS: "30" }, "a month, please", { days: 7, activeUsers: 875, round: 1 }],
    ]);
    assert.match(a.history[0].at, ISO);

    // why: the round, the earlier round, and the three commands.
    const why = await expectExit(assert, 0, ["why", "mx"], { db });
    assert.match(why.stdout, /^  metrics: Review requested \(round 2\) — no decision yet: Do these numbers/m);
    assert.match(why.stdout, /^  Inputs: DAYS$/m);
    assert.match(why.stdout, /^  Earlier: round 1 pushed-back by bob at \S+: DAYS=30 \(note: a month, please\)$/m);
    assert.match(why.stdout, new RegExp(`^  Its output: npx smithers logs mx --node metrics --db ${esc(db)}$`, "m"));
    assert.match(why.stdout, new RegExp(`^  Unblock: npx smithers approve mx --db ${esc(db)}$`, "m"));
    assert.match(why.stdout, new RegExp(`^  Push back: npx smithers push-back mx --db ${esc(db)}$`, "m"));
    assert.match(why.stdout, new RegExp(`^  Reject instead: npx smithers reject mx --db ${esc(db)}$`, "m"));
    const whyJson = await expectExit(assert, 0, ["why", "mx", "--json"], { db });
    const [blocker] = whyJson.json.blockers;
    assert.deepEqual(
      [blocker.kind, blocker.approvalKind, blocker.round, blocker.input, blocker.required, blocker.history.length],
      ["approval", "review", 2, ["DAYS"], [], 1],
    );

    // Again, without --node (one gate pending), through the printed command.
    const p2 = await expectExit(assert, 0, [...printedArgs(printed(p1.stdout, "push-back")), "-i", "DAYS=90", "--by", "carol"], {});
    assert.match(p2.stdout, /^pushed-back metrics \(round 2\) in run mx by carol$/m);
    a = approvalOf(inspectRun(db, "mx"), "metrics");
    assert.equal(a.round, 3);
    assert.deepEqual(a.history.map((h) => [h.iteration, h.by, h.inputs.DAYS, h.output.days]), [
      [1, "bob", "30", 7],
      [2, "carol", "90", 30],
    ]);
    const insp = await expectExit(assert, 0, ["inspect", "mx"], { db });
    assert.match(insp.stdout, /^  metrics \[0\] requested since \S+ \(review, round 3\): Do these numbers/m);
    assert.match(insp.stdout, /^    history:\n      round 1 pushed-back by bob at \S+: DAYS=30 \(note: a month, please\)\n      round 2 pushed-back by carol at \S+: DAYS=90$/m);

    // Each round is an attempt of its own in the logs.
    const logs = await expectExit(assert, 0, ["logs", "mx", "--node", "metrics", "--both"], { db });
    assert.equal(
      logs.stdout,
      [1, 2, 3]
        .map((n) => {
          const days = [7, 30, 90][n - 1];
          return `== metrics (attempt ${n}, exit 0) ==\n-- stdout --\n{"days":${days},"activeUsers":${days * 120 + 35},"round":${n}}\n-- stderr --\nquerying active users over the last ${days} days\n`;
        })
        .join(""),
    );
    const second = await expectExit(assert, 0, ["logs", "mx", "--node", "metrics", "--attempt", "2", "--json"], { db });
    assert.deepEqual(second.json.attempts.map((x) => [x.attempt, x.stdout]), [[2, '{"days":30,"activeUsers":3635,"round":2}\n']]);

    const ok = await expectExit(assert, 0, ["approve", "mx", "--by", "dave"], { db });
    assert.match(ok.stdout, /^approved metrics \(round 3\) in run mx by dave$/m);
    assert.match(ok.stdout, /^run mx: finished$/m);
    info = inspectRun(db, "mx");
    assert.deepEqual(outputsOf(info, "report").map((o) => o.value.stdout), ["report: active users over the last 90 days\n"]);
    assert.deepEqual(approvalOf(info, "metrics").history.map((h) => [h.iteration, h.status, h.by]), [
      [1, "pushed-back", "bob"],
      [2, "pushed-back", "carol"],
      [3, "approved", "dave"],
    ]);
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state, n.attempts]), [
      ["metrics", "finished", 3],
      ["report", "finished", 1],
    ]);
  });

  test("push-back --no-resume only records (exit 0); the same round cannot be decided again; resume runs round 2", async (t) => {
    const b = box(t);
    const { db } = b;
    await expectExit(assert, 3, ["up", METRICS, "--run-id", "nr"], { db });
    const r = await expectExit(assert, 0, ["push-back", "nr", "-i", "DAYS=14", "--no-resume", "--by", "erin", "--json"], { db });
    assert.deepEqual([r.json.ok, r.json.status, r.json.round, r.json.needsResume, r.json.run], [true, "pushed-back", 1, true, null]);
    assert.deepEqual(r.json.inputs, { DAYS: "14" });
    let info = inspectRun(db, "nr");
    assert.equal(info.run.status, "running");
    assert.equal(nodeOf(info, "metrics").attempts, 1, "not re-run yet");
    const late = await expectExit(assert, 1, ["approve", "nr", "--node", "metrics", "--json"], { db });
    assert.equal(late.json.error.code, "NOT_WAITING");

    const resumed = await expectExit(assert, 3, ["resume", "nr"], { db });
    assert.match(resumed.stdout, /^  waiting for approval: metrics \(review, round 2\)/m);
    info = inspectRun(db, "nr");
    assert.deepEqual(outputsOf(info, "metrics").map((o) => o.value), [{ days: 14, activeUsers: 1715, round: 2 }]);
  });

  test("push-back of a plain <Approval> gate: PUSH_BACK_UNSUPPORTED, exit 4, nothing recorded", async (t) => {
    const b = box(t);
    const { db } = b;
    await expectExit(assert, 3, ["up", join(EXAMPLES, "publish-approval.tsx"), "--run-id", "pb"], { db });
    const before = snapshot(db, "pb");
    const r = await expectExit(assert, 4, ["push-back", "pb", "--json"], { db });
    assert.equal(r.json.error.code, "PUSH_BACK_UNSUPPORTED");
    assert.equal(r.json.error.details.nodeId, "publish-approval");
    const text = await expectExit(assert, 4, ["push-back", "pb", "--node", "publish-approval"], { db });
    assert.match(text.stderr, /PUSH_BACK_UNSUPPORTED: publish-approval cannot be pushed back/);
    assert.deepEqual(snapshot(db, "pb"), before);
    // The plain gate still prints the plain commands.
    const why = await expectExit(assert, 0, ["why", "pb", "--json"], { db });
    assert.equal(why.json.blockers[0].approvalKind, "gate");
    assert.equal(why.json.blockers[0].pushBack, undefined);
  });

  // ------------------------------------------------------------ lookups and usage

  test("decisions and logs on an unknown run or node exit 4 and change nothing", async (t) => {
    const b = box(t);
    const { db, env } = b;
    await expectExit(assert, 3, ["up", DEPLOY, "--run-id", "known"], { db, env });
    const before = snapshot(db, "known");
    const cases = [
      ["approve", "nope"],
      ["deny", "nope"],
      ["reject", "nope", "--reason", "x"],
      ["push-back", "nope", "--input", "DAYS=1"],
      ["logs", "nope"],
      ["approve", "known", "--node", "nope"],
      ["reject", "known", "--node", "nope"],
      ["push-back", "known", "--node", "nope"],
      ["logs", "known", "--node", "nope"],
    ];
    const results = await Promise.all(cases.map((args) => smithers([...args, "--json"], { db, env })));
    cases.forEach((args, k) => {
      const r = results[k];
      assert.equal(r.code, 4, `smithers ${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.equal(r.json.ok, false);
      assert.equal(r.json.error.code, args[1] === "nope" ? "RUN_NOT_FOUND" : "NODE_NOT_FOUND", args.join(" "));
    });
    assert.deepEqual(snapshot(db, "known"), before);
    assert.equal(b.release("production"), null);
  });

  test("logs: filters, a task without command output, usage errors; help for the new commands", async (t) => {
    const b = box(t);
    const { db, env } = b;
    await expectExit(assert, 3, ["up", MIGRATION, "--run-id", "lg"], { db, env });
    await expectExit(assert, 0, ["approve", "lg", "-i", "APPROVED_BY=x"], { db, env });
    const [record, pending, iter, usage1, usage2, usage3] = await Promise.all([
      smithers(["logs", "lg", "--node", "record"], { db }),
      smithers(["logs", "lg", "--node", "migrate", "--iteration", "1"], { db }),
      smithers(["logs", "lg", "--node", "migrate", "--iteration", "0", "--attempt", "1"], { db }),
      smithers(["logs", "lg", "--stderr", "--both", "--json"], { db }),
      smithers(["logs", "lg", "--attempt", "0", "--json"], { db }),
      smithers(["logs", "--json"], { db }),
    ]);
    assert.equal(record.code, 0);
    assert.equal(record.stdout, "no command or agent output for record in run lg (it ran none yet)\n", "a JS task has no logs");
    assert.equal(pending.code, 0);
    assert.match(pending.stdout, /^no command or agent output for migrate/);
    assert.equal(iter.code, 0);
    assert.equal(iter.stdout, "== migrate (attempt 1, exit 0) ==\nmigrating app, approved by x, window now\n");
    for (const [r, pattern] of [
      [usage1, /--stderr and --both cannot be used together/],
      [usage2, /--attempt must be a whole number ≥ 1/],
      [usage3, /a run id is required/],
    ]) {
      assert.equal(r.code, 4, r.stdout + r.stderr);
      assert.equal(r.json.error.code, "USAGE");
      assert.match(r.json.error.message, pattern);
    }

    const commands = ["push-back", "reject", "logs", "approve", "deny"];
    const helps = await Promise.all([...commands.map((c) => smithers([c, "--help"])), smithers(["--help"])]);
    commands.forEach((c, k) => {
      assert.equal(helps[k].code, 0, helps[k].stderr);
      assert.match(helps[k].stdout, new RegExp(`^Usage: smithers ${c} <runId> `, "m"));
    });
    assert.match(helps[0].stdout, /--input, -i K=V/);
    assert.match(helps[3].stdout, /--input KEY=VALUE\]…/);
    assert.match(helps[3].stdout, /MISSING_REQUIRED_INPUTS, UNDECLARED_INPUT/);
    const main = helps.at(-1).stdout;
    for (const c of ["approve", "deny", "reject", "push-back", "logs"]) assert.match(main, new RegExp(`^  ${c}\\s+\\S`, "m"));
    assert.match(main, /`reject` is another name for `deny`/);
  });
});
