// End-to-end tests of the `smithers` CLI: each test runs `node bin/smithers.js` as a child
// process on a database of its own, checks exit codes and output, then reads the database
// (through the Node API, and with the sqlite3 shell for raw columns when it is installed).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  BIN,
  EXAMPLES,
  REPO,
  esc,
  expectExit,
  hasSqlite3,
  inspectRun,
  listRuns,
  outputsOf,
  printedArgs,
  runIdOf,
  sandbox,
  smithers,
  sql,
  withEngine,
} from "./helpers/cli.js";
import { SmithersEngine, loadWorkflow } from "../npm/smithers-rs/src/index.js";

const PUBLISH = join(EXAMPLES, "publish-approval.tsx");
const PARALLEL = join(EXAMPLES, "parallel-gates.tsx");
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** A sandbox that removes itself when the test ends. */
function box(t) {
  const b = sandbox();
  t.after(() => b.cleanup());
  return b;
}

/** The approval row of `nodeId` in an `inspect` answer. */
const approvalOf = (info, nodeId) => info.approvals.find((a) => a.nodeId === nodeId);
const nodeOf = (info, nodeId) => info.nodes.find((n) => n.nodeId === nodeId);

// Tests are independent (own temp dir and db); a few run at once to keep the file fast.
describe("smithers CLI", { concurrency: 3 }, () => {
  // ------------------------------------------------------------ publish example

  test("publish: up waits at the gate, approve --note --by finishes the run", async (t) => {
    const { db } = box(t);
    const up = await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Hello World"}'], { db });
    const runId = runIdOf(up.stdout);
    assert.match(up.stdout, new RegExp(`^run ${runId}: waiting-approval$`, "m"));
    assert.match(up.stdout, /waiting for approval: publish-approval — Publish "Hello World"\?/);
    // The exact command that unblocks the run (one gate pending: no --node needed; the
    // database is not ./smithers.db here, so the command names it).
    assert.match(up.stdout, new RegExp(`^  approve: npx smithers approve ${runId} --db ${esc(db)}$`, "m"));
    assert.match(up.stdout, new RegExp(`^  deny:    npx smithers deny ${runId} --db ${esc(db)}$`, "m"));
    const printed = /^  approve: (.*)$/m.exec(up.stdout)[1];

    let info = inspectRun(db, runId);
    assert.equal(info.run.status, "waiting-approval");
    assert.equal(info.run.workflowPath, PUBLISH);
    assert.equal(info.run.owner, null, "a waiting run is owned by no process");
    assert.equal(approvalOf(info, "publish-approval").status, "requested");
    assert.deepEqual(outputsOf(info, "draft").map((o) => o.value), [{ title: "Hello World", words: 200 }]);
    assert.deepEqual(outputsOf(info, "publishApproval"), []);

    // Run the printed command as it is (no --db of ours), with a note and a decider.
    const ok = await expectExit(assert, 0, [...printedArgs(printed), "--note", "ship it", "--by", "alice"]);
    assert.match(ok.stdout, new RegExp(`^approved publish-approval in run ${runId} by alice$`, "m"));
    assert.match(ok.stdout, new RegExp(`^run ${runId}: finished$`, "m"));

    info = inspectRun(db, runId);
    assert.equal(info.run.status, "finished");
    assert.match(info.run.finishedAt, ISO);
    assert.deepEqual(
      info.nodes.map((n) => [n.nodeId, n.state]),
      [["draft", "finished"], ["publish-approval", "finished"], ["publish", "finished"]],
    );
    const a = approvalOf(info, "publish-approval");
    assert.equal(a.status, "approved");
    assert.equal(a.decidedBy, "alice");
    assert.equal(a.note, "ship it");
    const [decision] = outputsOf(info, "publishApproval");
    assert.deepEqual(decision.value, { approved: true, note: "ship it", decidedBy: "alice", decidedAt: a.decidedAt });
    assert.match(decision.value.decidedAt, ISO);
    assert.deepEqual(outputsOf(info, "published").map((o) => [o.nodeId, o.value]), [
      ["publish", { url: "https://blog.example.com/hello-world", approvedBy: "alice" }],
    ]);

    await t.test("the output tables, as SQL sees them", { skip: !hasSqlite3() && "sqlite3 shell not installed" }, () => {
      const columns = sql(db, "PRAGMA table_info(publish_approval)").map((c) => c.name);
      assert.deepEqual(columns, ["run_id", "node_id", "iteration", "approved", "note", "decided_by", "decided_at"]);
      assert.deepEqual(sql(db, "SELECT * FROM publish_approval"), [
        { run_id: runId, node_id: "publish-approval", iteration: 0, approved: 1, note: "ship it", decided_by: "alice", decided_at: a.decidedAt },
      ]);
      assert.deepEqual(sql(db, "SELECT run_id, node_id, url, approved_by FROM published"), [
        { run_id: runId, node_id: "publish", url: "https://blog.example.com/hello-world", approved_by: "alice" },
      ]);
    });
  });

  test('publish importing from "smithers-rs", from a folder without node_modules or package.json', async (t) => {
    const b = box(t);
    const source = readFileSync(PUBLISH, "utf8").replaceAll("smithers-orchestrator", "smithers-rs");
    assert.doesNotMatch(source, /smithers-orchestrator/);
    const file = b.write("publish.tsx", source);
    assert.equal(existsSync(join(b.dir, "node_modules")) || existsSync(join(b.dir, "package.json")), false);

    // Run from inside the workflow's folder, as a user would, with the default database.
    const up = await expectExit(assert, 3, ["up", "publish.tsx", "--input", '{"title":"Rust Inside"}'], { cwd: b.dir });
    const runId = runIdOf(up.stdout);
    assert.ok(existsSync(b.db), "./smithers.db was created");
    assert.match(up.stdout, new RegExp(`^  approve: npx smithers approve ${runId}$`, "m"), "no --db needed here");

    await expectExit(assert, 0, ["approve", runId, "--by", "alice"], { cwd: b.dir });
    const info = inspectRun(b.db, runId);
    assert.equal(info.run.status, "finished");
    assert.equal(info.run.workflowPath, file);
    assert.deepEqual(outputsOf(info, "published").map((o) => o.value), [
      { url: "https://blog.example.com/rust-inside", approvedBy: "alice" },
    ]);
  });

  test("deny with the default onDeny records approved:false; the run finishes without publishing (exit 0)", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "d1"], { db });
    const r = await expectExit(assert, 0, ["deny", "d1", "--reason", "not yet", "--by", "carol"], { db });
    assert.match(r.stdout, /^denied publish-approval in run d1 by carol$/m);
    assert.match(r.stdout, /^run d1: finished$/m);

    const info = inspectRun(db, "d1");
    assert.equal(info.run.status, "finished");
    assert.equal(nodeOf(info, "publish-approval").state, "finished");
    assert.equal(nodeOf(info, "publish"), undefined, "the publish task never rendered");
    const a = approvalOf(info, "publish-approval");
    assert.deepEqual([a.status, a.decidedBy, a.note], ["denied", "carol", "not yet"]);
    const [row] = outputsOf(info, "publishApproval").map((o) => o.value);
    assert.deepEqual([row.approved, row.note, row.decidedBy], [false, "not yet", "carol"]);
    assert.deepEqual(outputsOf(info, "published"), []);
    if (hasSqlite3()) assert.deepEqual(sql(db, "SELECT approved, note FROM publish_approval"), [{ approved: 0, note: "not yet" }]);

    // Nothing is left to decide on the finished run.
    const again = await expectExit(assert, 4, ["deny", "d1", "--json"], { db });
    assert.equal(again.json.error.code, "NO_PENDING_APPROVALS");
  });

  test("approve --no-resume only records; resume <runId> finishes the run", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "nr"], { db });
    const r = await expectExit(assert, 0, ["approve", "nr", "--no-resume"], { db, env: { SMITHERS_USER: "ci-bot" } });
    assert.match(r.stdout, /^approved publish-approval in run nr by ci-bot$/m);
    assert.match(r.stdout, new RegExp(`not resumed; run: npx smithers resume nr --db ${esc(db)}$`, "m"));

    let info = inspectRun(db, "nr");
    assert.equal(info.run.status, "running", "recorded, not resumed");
    assert.equal(info.run.owner, null);
    assert.equal(approvalOf(info, "publish-approval").decidedBy, "ci-bot");
    assert.equal(nodeOf(info, "publish"), undefined);
    assert.deepEqual(outputsOf(info, "published"), []);

    const why = await expectExit(assert, 0, ["why", "nr", "--json"], { db });
    assert.deepEqual(why.json.blockers.map((b) => [b.kind, b.unblocker]), [["resume", `npx smithers resume nr --db ${db}`]]);

    const resumed = await expectExit(assert, 0, ["resume", "nr"], { db });
    assert.match(resumed.stdout, /^run nr: finished$/m);
    info = inspectRun(db, "nr");
    assert.equal(info.run.status, "finished");
    assert.equal(outputsOf(info, "published")[0].value.approvedBy, "ci-bot");

    // Resuming a finished run changes nothing and reports its status.
    await expectExit(assert, 0, ["resume", "nr"], { db });
    assert.equal(outputsOf(inspectRun(db, "nr"), "published").length, 1);
  });

  test("approve --no-resume --json, then up <file> --run-id X --resume", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "X"], { db });
    const r = await expectExit(assert, 0, ["approve", "X", "--no-resume", "--by", "dave", "--json"], { db });
    assert.equal(r.json.ok, true);
    assert.equal(r.json.status, "approved");
    assert.equal(r.json.nodeId, "publish-approval");
    assert.equal(r.json.decidedBy, "dave");
    assert.equal(r.json.needsResume, true);
    assert.equal(r.json.run, null);
    assert.equal(withEngine(db, (e) => e.getRun("X").status), "running");

    const up = await expectExit(assert, 0, ["up", PUBLISH, "--run-id", "X", "--resume"], { db });
    assert.match(up.stdout, /^run X: finished$/m);
    const info = inspectRun(db, "X");
    assert.equal(info.run.status, "finished");
    assert.equal(outputsOf(info, "published")[0].value.approvedBy, "dave");
  });

  test("approve without --by records the OS user when $SMITHERS_USER and $USER are unset", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "who"], { db });
    const me = userInfo().username;
    const r = await expectExit(assert, 0, ["approve", "who"], { db, env: { USER: "", USERNAME: "" } });
    assert.match(r.stdout, new RegExp(`^approved publish-approval in run who by ${me}$`, "m"));
    const info = inspectRun(db, "who");
    assert.equal(approvalOf(info, "publish-approval").decidedBy, me);
    assert.equal(outputsOf(info, "published")[0].value.approvedBy, me);
  });

  test("approve when the run's workflow file is gone: the decision is kept and said so; up --resume recovers", async (t) => {
    const b = box(t);
    const file = b.write("moved.tsx", readFileSync(PUBLISH, "utf8"));
    await expectExit(assert, 3, ["up", file, "--run-id", "gone"], { db: b.db });
    rmSync(file);

    // Exit 0: the decision is recorded; that the run could not be resumed is said.
    const r = await expectExit(assert, 0, ["approve", "gone", "--by", "alice"], { db: b.db });
    assert.match(r.stdout, /^approved publish-approval in run gone by alice$/m);
    assert.match(r.stdout, /^run gone: running$/m);
    assert.match(r.stderr, /WORKFLOW_NOT_FOUND: the decision is recorded/);
    assert.ok(r.stderr.includes(`no such workflow file: ${file}`), r.stderr);
    assert.match(r.stderr, /npx smithers up <workflow\.tsx> --run-id gone --resume/);
    let info = inspectRun(b.db, "gone");
    assert.equal(info.run.status, "running");
    assert.equal(approvalOf(info, "publish-approval").decidedBy, "alice");

    const again = await expectExit(assert, 4, ["resume", "gone", "--json"], { db: b.db });
    assert.equal(again.json.error.code, "WORKFLOW_NOT_FOUND");

    // The same workflow from another file: resumed, and the run now records that file.
    await expectExit(assert, 0, ["up", PUBLISH, "--run-id", "gone", "--resume"], { db: b.db });
    info = inspectRun(b.db, "gone");
    assert.equal(info.run.status, "finished");
    assert.equal(info.run.workflowPath, PUBLISH);
    assert.equal(outputsOf(info, "published")[0].value.approvedBy, "alice");
  });

  // ------------------------------------------------------------ parallel gates

  test("parallel gates: ambiguity, one branch at a time, decision errors", async (t) => {
    const { db } = box(t);
    const up = await expectExit(assert, 3, ["up", PARALLEL, "--run-id", "pg", "--input", '{"release":"v2"}'], { db });
    assert.match(up.stdout, /^run pg: waiting-approval$/m);
    // One command per gate, each naming its node.
    for (const node of ["legal-approval", "security-approval"]) {
      assert.match(up.stdout, new RegExp(`waiting for approval: ${node} — `));
      assert.match(up.stdout, new RegExp(`^  approve: npx smithers approve pg --node ${node} --db ${esc(db)}$`, "m"));
      assert.match(up.stdout, new RegExp(`^  deny:    npx smithers deny pg --node ${node} --db ${esc(db)}$`, "m"));
    }
    let info = inspectRun(db, "pg");
    assert.deepEqual(info.approvals.map((a) => [a.nodeId, a.status]).sort(), [
      ["legal-approval", "requested"],
      ["security-approval", "requested"],
    ]);

    // Without --node: refused, naming both gates, nothing recorded.
    const amb = await expectExit(assert, 4, ["approve", "pg", "--by", "alice"], { db });
    assert.match(amb.stderr, /AMBIGUOUS_APPROVAL/);
    assert.match(amb.stderr, /legal-approval \(iteration 0\)/);
    assert.match(amb.stderr, /security-approval \(iteration 0\)/);
    const ambJson = await expectExit(assert, 4, ["deny", "pg", "--json"], { db });
    assert.equal(ambJson.json.ok, false);
    assert.equal(ambJson.json.error.code, "AMBIGUOUS_APPROVAL");
    assert.match(ambJson.json.error.message, /legal-approval[\s\S]*security-approval/);
    await t.test(
      "AMBIGUOUS_APPROVAL details name the candidates as data",
      () => {
        assert.deepEqual(
          ambJson.json.error.details.candidates,
          [{ nodeId: "legal-approval", iteration: 0 }, { nodeId: "security-approval", iteration: 0 }],
        );
      },
    );
    assert.deepEqual(inspectRun(db, "pg").approvals.map((a) => a.status), ["requested", "requested"]);

    // why: one blocker per gate, each with its own --node command.
    const whyJson = await expectExit(assert, 0, ["why", "pg", "--json"], { db });
    assert.deepEqual(
      whyJson.json.blockers.map((b) => [b.nodeId, b.unblocker, b.deny]).sort(),
      [
        ["legal-approval", `npx smithers approve pg --node legal-approval --db ${db}`, `npx smithers deny pg --node legal-approval --db ${db}`],
        ["security-approval", `npx smithers approve pg --node security-approval --db ${db}`, `npx smithers deny pg --node security-approval --db ${db}`],
      ],
    );

    // Approving one gate runs its branch; the run waits for the other.
    const one = await expectExit(assert, 0, ["approve", "pg", "--node", "legal-approval", "--by", "alice"], { db });
    assert.match(one.stdout, /^approved legal-approval in run pg by alice$/m);
    assert.match(one.stdout, /^run pg: waiting-approval$/m);
    assert.match(one.stdout, /waiting for approval: security-approval/);
    assert.match(one.stdout, new RegExp(`^  approve: npx smithers approve pg --db ${esc(db)}$`, "m"));
    info = inspectRun(db, "pg");
    assert.equal(info.run.status, "waiting-approval");
    assert.equal(nodeOf(info, "legal-signoff").state, "finished");
    assert.equal(nodeOf(info, "security-signoff"), undefined);
    assert.deepEqual(outputsOf(info, "signoff").map((o) => [o.nodeId, o.value]), [
      ["legal-signoff", { area: "legal", release: "v2", approved: true, by: "alice" }],
    ]);
    // One schema under two keys: each gate's decision is in its own key's table.
    assert.deepEqual(outputsOf(info, "legalReview").map((o) => [o.nodeId, o.value.approved, o.value.decidedBy]), [
      ["legal-approval", true, "alice"],
    ]);
    assert.deepEqual(outputsOf(info, "securityReview"), []);
    if (hasSqlite3()) assert.deepEqual(sql(db, "SELECT node_id, decided_by FROM legal_review"), [{ node_id: "legal-approval", decided_by: "alice" }]);

    // A second decision on the decided gate: who decided, and when.
    const twice = await expectExit(assert, 1, ["deny", "pg", "--node", "legal-approval", "--by", "mallory"], { db });
    assert.match(twice.stderr, /ALREADY_DECIDED/);
    assert.match(twice.stderr, /approved by alice at \d{4}-\d\d-\d\dT/);
    const twiceJson = await expectExit(assert, 1, ["approve", "pg", "--node", "legal-approval", "--by", "bob", "--json"], { db });
    assert.equal(twiceJson.json.error.code, "ALREADY_DECIDED");
    const decidedAt = approvalOf(inspectRun(db, "pg"), "legal-approval").decidedAt;
    assert.deepEqual(
      { status: twiceJson.json.error.details.status, decidedBy: twiceJson.json.error.details.decidedBy, decidedAt: twiceJson.json.error.details.decidedAt },
      { status: "approved", decidedBy: "alice", decidedAt },
    );

    // A node that exists but is not a waiting gate; a node that does not exist.
    const notWaiting = await expectExit(assert, 1, ["approve", "pg", "--node", "legal-signoff", "--json"], { db });
    assert.equal(notWaiting.json.error.code, "NOT_WAITING");
    assert.equal(notWaiting.json.error.details.state, "finished");
    const unknown = await expectExit(assert, 4, ["approve", "pg", "--node", "unknown"], { db });
    assert.match(unknown.stderr, /NODE_NOT_FOUND/);

    info = inspectRun(db, "pg");
    assert.equal(approvalOf(info, "legal-approval").decidedBy, "alice", "the refused decisions changed nothing");
    assert.equal(approvalOf(info, "security-approval").status, "requested");

    // why now names only the remaining gate, with the plain command.
    const why = await expectExit(assert, 0, ["why", "pg"], { db });
    assert.match(why.stdout, /security-approval/);
    assert.match(why.stdout, /Approval requested/);
    assert.match(why.stdout, new RegExp(`Unblock: npx smithers approve pg --db ${esc(db)}$`, "m"));
    assert.doesNotMatch(why.stdout, /legal-approval/);

    const last = await expectExit(assert, 0, ["approve", "pg", "--node", "security-approval", "--by", "bob"], { db });
    assert.match(last.stdout, /^run pg: finished$/m);
    info = inspectRun(db, "pg");
    assert.equal(info.run.status, "finished");
    assert.deepEqual(outputsOf(info, "signoff").map((o) => [o.nodeId, o.value.by]).sort(), [
      ["legal-signoff", "alice"],
      ["security-signoff", "bob"],
    ]);

    const done = await expectExit(assert, 4, ["approve", "pg", "--json"], { db });
    assert.equal(done.json.error.code, "NO_PENDING_APPROVALS");
  });

  test("parallel gates: denying one gate (default onDeny) records it, its branch goes on, the other still waits", async (t) => {
    const { db } = box(t);
    const up = await expectExit(assert, 3, ["up", PARALLEL, "--run-id", "pd", "--json"], { db });
    assert.equal(up.json.status, "waiting-approval");
    assert.deepEqual(up.json.pendingApprovals.map((p) => p.nodeId).sort(), ["legal-approval", "security-approval"]);
    // Smithers' docs' form: the node as the second word.
    const r = await expectExit(assert, 0, ["deny", "pd", "security-approval", "--by", "eve", "--json"], { db });
    assert.equal(r.json.status, "denied");
    assert.equal(r.json.runStatus, "waiting-approval");
    assert.deepEqual(r.json.pendingApprovals.map((p) => p.nodeId), ["legal-approval"]);
    let info = inspectRun(db, "pd");
    assert.equal(info.run.status, "waiting-approval");
    assert.equal(approvalOf(info, "security-approval").status, "denied");
    assert.deepEqual(outputsOf(info, "securityReview").map((o) => [o.value.approved, o.value.decidedBy]), [[false, "eve"]]);
    assert.deepEqual(outputsOf(info, "signoff").map((o) => [o.nodeId, o.value.approved, o.value.by]), [["security-signoff", false, "eve"]]);

    const text = await expectExit(assert, 0, ["approve", "pd", "legal-approval", "--by", "alice"], { db });
    assert.match(text.stdout, /^approved legal-approval in run pd by alice$/m);
    assert.match(text.stdout, /^run pd: finished$/m);
    info = inspectRun(db, "pd");
    assert.equal(info.run.status, "finished");
    const none = await expectExit(assert, 4, ["approve", "pd", "--json"], { db });
    assert.equal(none.json.error.code, "NO_PENDING_APPROVALS");
  });

  test('deny of an <Approval onDeny="fail">: the run fails, exit 0 (the denial is recorded), status printed', async (t) => {
    const b = box(t);
    const file = b.write("strict.tsx", readFileSync(PUBLISH, "utf8").replace("<Approval", '<Approval onDeny="fail"'));
    await expectExit(assert, 3, ["up", file, "--run-id", "sf"], { db: b.db });
    const r = await expectExit(assert, 0, ["deny", "sf", "--reason", "no", "--by", "eve"], { db: b.db });
    assert.match(r.stdout, /^run sf: failed \(APPROVAL_DENIED: /m);
    const info = inspectRun(b.db, "sf");
    assert.equal(info.run.status, "failed");
    assert.equal(info.run.error.code, "APPROVAL_DENIED");
    assert.deepEqual(outputsOf(info, "publishApproval"), [], "no decision row");
    const json = await expectExit(assert, 4, ["deny", "sf", "--json"], { db: b.db });
    assert.equal(json.json.error.code, "NO_PENDING_APPROVALS");
  });

  test("approve while another process drives the run: the decision is left to that process", async (t) => {
    const b = sandbox();
    // A gate, and in parallel a task that holds the run (and its driver) until a file exists.
    const file = b.write(
      "busy.tsx",
      HEADER +
        `import { Parallel, approvalDecisionSchema } from "smithers-orchestrator";
        import { existsSync } from "node:fs";
        const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema, done: z.object({ ok: z.boolean() }) });
        const waitFor = async (f) => { while (!existsSync(f)) await new Promise((r) => setTimeout(r, 20)); };
        export default smithers((ctx) => {
          const gate = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
          return (
            <Workflow name="busy">
              <Parallel>
                <Sequence>
                  <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} />
                  {gate ? <Task id="after-gate" output={outputs.done}>{{ ok: gate.approved }}</Task> : null}
                </Sequence>
                <Task id="blocker" output={outputs.done}>{async () => { await waitFor(ctx.input.release); return { ok: true }; }}</Task>
              </Parallel>
            </Workflow>
          );
        });`,
    );
    const release = join(b.dir, "release");
    const up = smithers(["up", file, "--run-id", "busy", "--input", JSON.stringify({ release })], { db: b.db });
    t.after(async () => {
      writeFileSync(release, ""); // never leave the child waiting
      await up;
      b.cleanup();
    });

    // Wait (bounded) until the gate is requested while the run is still driven.
    let waiting = false;
    for (let k = 0; k < 600 && !waiting; k++) {
      await new Promise((r) => setTimeout(r, 50));
      if (!existsSync(b.db)) continue;
      waiting = withEngine(b.db, (e) => e.pendingApprovals({ runId: "busy" }).length === 1);
    }
    assert.ok(waiting, "the gate was requested");

    const r = await expectExit(assert, 0, ["approve", "busy", "--by", "alice"], { db: b.db });
    assert.match(r.stdout, /^approved gate in run busy by alice$/m);
    assert.match(r.stdout, /^run busy is driven by \S+; it picks the decision up$/m);
    let info = inspectRun(b.db, "busy");
    assert.equal(info.run.status, "running");
    assert.notEqual(info.run.owner, null);
    assert.equal(approvalOf(info, "gate").status, "approved");

    writeFileSync(release, "");
    const done = await up;
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.match(done.stdout, /^run busy: finished$/m);
    info = inspectRun(b.db, "busy");
    assert.equal(info.run.status, "finished");
    assert.deepEqual(outputsOf(info, "done").map((o) => [o.nodeId, o.value]).sort(), [
      ["after-gate", { ok: true }],
      ["blocker", { ok: true }],
    ]);
  });

  test("cancel a waiting run: the gate is withdrawn, nothing is left to decide", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "cx"], { db });
    const r = await expectExit(assert, 0, ["cancel", "cx", "--json"], { db });
    assert.deepEqual(r.json, { ok: true, runId: "cx", status: "cancelled" });
    const info = inspectRun(db, "cx");
    assert.equal(info.run.status, "cancelled");
    assert.notEqual(approvalOf(info, "publish-approval").status, "requested");
    const [approve, why, resume] = await Promise.all([
      smithers(["approve", "cx", "--json"], { db }),
      smithers(["why", "cx", "--json"], { db }),
      smithers(["resume", "cx"], { db }),
    ]);
    assert.equal(approve.code, 4);
    assert.equal(approve.json.error.code, "NO_PENDING_APPROVALS");
    assert.equal(why.json.summary, "The run was cancelled.");
    assert.deepEqual(why.json.blockers, []);
    assert.equal(resume.code, 2, "exit 2: cancelled");
    assert.match(resume.stdout, /^run cx: cancelled$/m);
  });

  // ------------------------------------------------------------ lookups

  test("unknown run ids exit 4", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "real"], { db });
    const results = await Promise.all([
      smithers(["approve", "nope", "--json"], { db }),
      smithers(["deny", "nope", "--json"], { db }),
      smithers(["inspect", "nope", "--json"], { db }),
      smithers(["why", "nope", "--json"], { db }),
      smithers(["resume", "nope", "--json"], { db }),
      smithers(["up", PUBLISH, "--run-id", "nope", "--resume", "--json"], { db }),
    ]);
    for (const r of results) {
      assert.equal(r.code, 4, r.stdout + r.stderr);
      assert.equal(r.json.ok, false);
      assert.ok(["RUN_NOT_FOUND", "NO_PENDING_APPROVALS"].includes(r.json.error.code), r.json.error.code);
    }
    assert.deepEqual(listRuns(db).map((r) => r.runId), ["real"]);
  });

  test("a run id that exists already is refused", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "same"], { db });
    const r = await smithers(["up", PUBLISH, "--run-id", "same", "--json"], { db });
    assert.notEqual(r.code, 0);
    assert.equal(r.json.error.code, "RUN_EXISTS");
    assert.equal(listRuns(db).length, 1);
  });

  // ------------------------------------------------------------ views

  test("ps, ps --status, inspect, why: text and --json", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "wait", "--input", '{"title":"Views"}'], { db });
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "done"], { db });
    await expectExit(assert, 0, ["approve", "done", "--by", "alice"], { db });

    const [ps, psJson, psWaiting, psWaitingJson, insp, inspJson, why, whyJson, whyDone] = await Promise.all([
      smithers(["ps"], { db }),
      smithers(["ps", "--json"], { db }),
      smithers(["ps", "--status", "waiting-approval"], { db }),
      smithers(["ps", "--status", "waiting-approval", "--json"], { db }),
      smithers(["inspect", "wait"], { db }),
      smithers(["inspect", "wait", "--json"], { db }),
      smithers(["why", "wait"], { db }),
      smithers(["why", "wait", "--json"], { db }),
      smithers(["why", "done", "--json"], { db }),
    ]);
    for (const r of [ps, psJson, psWaiting, psWaitingJson, insp, inspJson, why, whyJson, whyDone]) {
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }

    assert.match(ps.stdout, /^RUN\s+WORKFLOW\s+STATUS\s+PENDING\s+CREATED$/m);
    assert.match(ps.stdout, /^wait\s+publish\s+waiting-approval\s+1\s/m);
    assert.match(ps.stdout, /^done\s+publish\s+finished\s+0\s/m);
    assert.equal(psJson.json.ok, true);
    assert.deepEqual(psJson.json.runs.map((r) => [r.runId, r.status, r.pendingApprovals]).sort(), [
      ["done", "finished", 0],
      ["wait", "waiting-approval", 1],
    ]);
    for (const r of psJson.json.runs) {
      assert.equal(r.workflowName, "publish");
      assert.equal(r.workflowPath, PUBLISH);
      assert.match(r.createdAt, ISO);
      assert.match(r.updatedAt, ISO);
    }
    assert.match(psWaiting.stdout, /^wait\s/m);
    assert.doesNotMatch(psWaiting.stdout, /^done\s/m);
    assert.deepEqual(psWaitingJson.json.runs.map((r) => r.runId), ["wait"]);

    assert.match(insp.stdout, /^run wait \(publish\): waiting-approval$/m);
    assert.match(insp.stdout, /^publish-approval\s+0\s+waiting-approval\s+publishApproval\s/m);
    assert.match(insp.stdout, /publish-approval \[0\] requested since .*Publish "Views"\?/);
    assert.match(insp.stdout, /draft draft \[0\]: \{"title":"Views","words":100\}/);
    const i = inspJson.json;
    assert.equal(i.ok, true);
    assert.equal(i.run.runId, "wait");
    assert.equal(i.run.status, "waiting-approval");
    assert.deepEqual(i.input, { title: "Views" });
    assert.deepEqual(i.nodes.map((n) => [n.nodeId, n.iteration, n.state, n.output]), [
      ["draft", 0, "finished", "draft"],
      ["publish-approval", 0, "waiting-approval", "publishApproval"],
    ]);
    assert.deepEqual(i.approvals.map((a) => [a.nodeId, a.status, a.title, a.summary]), [
      ["publish-approval", "requested", 'Publish "Views"?', "100 words, ready for review."],
    ]);
    assert.deepEqual(i.outputs, [{ table: "draft", nodeId: "draft", iteration: 0, value: { title: "Views", words: 100 } }]);

    assert.match(why.stdout, /^run wait: waiting-approval$/m);
    assert.match(why.stdout, /publish-approval: Approval requested — no decision yet/);
    assert.match(why.stdout, /Waiting since: \d{4}-/);
    assert.match(why.stdout, new RegExp(`^  Unblock: npx smithers approve wait --db ${esc(db)}$`, "m"));
    assert.match(why.stdout, new RegExp(`^  Deny instead: npx smithers deny wait --db ${esc(db)}$`, "m"));
    const w = whyJson.json;
    assert.equal(w.ok, true);
    assert.equal(w.runId, "wait");
    assert.equal(w.status, "waiting-approval");
    assert.match(w.summary, /Approval requested/);
    assert.equal(w.blockers.length, 1);
    const [b] = w.blockers;
    assert.equal(b.kind, "approval");
    assert.equal(b.nodeId, "publish-approval");
    assert.equal(b.iteration, 0);
    assert.equal(b.unblocker, `npx smithers approve wait --db ${db}`);
    assert.equal(b.deny, `npx smithers deny wait --db ${db}`);
    assert.equal(typeof b.waitingSince, "number");
    assert.deepEqual([whyDone.json.status, whyDone.json.summary, whyDone.json.blockers], ["finished", "The run finished.", []]);
  });

  test("ps on an empty database", async (t) => {
    const { db } = box(t);
    // A database with no runs yet (a missing file is DB_NOT_FOUND: tests/reliability-cli.test.js).
    withEngine(db, () => {});
    const [text, json] = await Promise.all([smithers(["ps"], { db }), smithers(["ps", "--json"], { db })]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^no runs$/m);
    assert.equal(json.code, 0);
    assert.deepEqual(json.json, { ok: true, runs: [] });
  });

  // ------------------------------------------------------------ usage

  test("every command's --help exits 0 with a usage line", async () => {
    const commands = ["up", "run", "resume", "approve", "deny", "ps", "inspect", "why", "cancel"];
    const results = await Promise.all([...commands.map((c) => smithers([c, "--help"])), smithers(["--help"]), smithers(["approve", "-h"])]);
    commands.forEach((c, k) => {
      const r = results[k];
      assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
      const name = c === "run" ? "up" : c;
      assert.match(r.stdout, new RegExp(`^Usage: smithers ${name} `, "m"), `${c} --help:\n${r.stdout}`);
    });
    const main = results[commands.length];
    assert.equal(main.code, 0);
    assert.match(main.stdout, /^Usage: smithers <command> \[options\]$/m);
    assert.equal(results.at(-1).code, 0);
    assert.match(results.at(-1).stdout, /^Usage: smithers approve /m);
  });

  test("unknown command, missing arguments, bad options exit 4", async (t) => {
    const { db } = box(t);
    const cases = [
      [["frobnicate"], /unknown command "frobnicate"/],
      [[], /Usage: smithers <command>/],
      [["up"], /a workflow file is required/],
      [["up", PUBLISH, "extra"], /unexpected argument "extra"/],
      [["up", PUBLISH, "--resume"], /--resume needs --run-id/],
      [["up", join(EXAMPLES, "no-such-file.tsx")], /WORKFLOW_NOT_FOUND/],
      [["up", PUBLISH, "--run-id", "bad id/x"], /--run-id "bad id\/x" must be 1-128 characters/],
      [["up", PUBLISH, "--run-id", ""], /--run-id "" must be 1-128 characters/],
      [["resume"], /a run id is required/],
      [["approve"], /a run id is required/],
      [["deny"], /a run id is required/],
      [["inspect"], /a run id is required/],
      [["why"], /a run id is required/],
      [["cancel"], /a run id is required/],
      [["ps", "--bogus"], /Unknown option '--bogus'/],
      [["approve", "r1", "--iteration", "x"], /--iteration must be a whole number/],
      [["approve", "r1", "--decision", "{oops"], /--decision is not valid JSON/],
      [["ps", "--limit", "0"], /--limit must be a whole number/],
    ];
    const results = await Promise.all(cases.map(([args]) => smithers(args, { db })));
    cases.forEach(([args, pattern], k) => {
      const r = results[k];
      assert.equal(r.code, 4, `smithers ${args.join(" ")} exited ${r.code}\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, pattern, `smithers ${args.join(" ")}`);
    });
    const json = await smithers(["inspect", "--json", "--nope"], { db });
    assert.equal(json.code, 4);
    assert.equal(json.json.ok, false);
    assert.equal(json.json.error.code, "USAGE");
    assert.deepEqual(listRuns(db), []);
  });

  test(
    "Node API: an invalid run id is refused with its own code, not INVALID_GRAPH",
    async (t) => {
      const { db } = box(t);
      const workflow = await loadWorkflow(PUBLISH);
      const engine = new SmithersEngine({ dbPath: db });
      try {
        await assert.rejects(engine.run(workflow, { runId: "bad id" }), (e) => {
          assert.notEqual(e.code, "INVALID_GRAPH");
          assert.doesNotMatch(e.message, /workflow graph/);
          return true;
        });
      } finally {
        engine.close();
      }
    },
  );

  test("stdout closed by the reader (smithers up … | head -1): no EPIPE crash, the exit code stands", async (t) => {
    const { db } = box(t);
    const child = spawn(process.execPath, [BIN, "up", PUBLISH, "--run-id", "piped", "--db", db], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.destroy(); // the reader is gone before the CLI writes anything
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise((done) => child.on("close", done));
    assert.doesNotMatch(stderr, /EPIPE/);
    assert.equal(code, 3, stderr);
    assert.equal(inspectRun(db, "piped").run.status, "waiting-approval");
  });

  test("ps --status with an unknown status is a usage error", async (t) => {
    const { db } = box(t);
    const r = await smithers(["ps", "--status", "bogus", "--json"], { db });
    assert.equal(r.code, 4, r.stdout + r.stderr);
    assert.equal(r.json.error.code, "USAGE");
    assert.match(r.json.error.message, /waiting-approval/);
  });

  test("--input that is not JSON exits 4 (USAGE) and starts nothing", async (t) => {
    const { db } = box(t);
    const [text, json] = await Promise.all([
      smithers(["up", PUBLISH, "--input", "{title: nope}"], { db }),
      smithers(["up", PUBLISH, "--input", "{title: nope}", "--json"], { db }),
    ]);
    assert.equal(text.code, 4);
    assert.match(text.stderr, /USAGE: --input is not valid JSON/);
    assert.equal(json.code, 4);
    assert.equal(json.json.error.code, "USAGE");
    assert.deepEqual(listRuns(db), []);
  });

  // ------------------------------------------------------------ malformed workflows

  const HEADER = [
    "/** @jsxImportSource smithers-orchestrator */",
    'import { Approval, Sequence, Task, createSmithers } from "smithers-orchestrator";',
    'import { z } from "zod";',
    "",
  ].join("\n");
  const SCHEMAS = "const { Workflow, smithers, outputs } = createSmithers({ a: z.object({ n: z.number() }) });\n";
  const MALFORMED = {
    DUPLICATE_ID:
      SCHEMAS +
      `export default smithers(() => (
        <Workflow name="dup"><Sequence>
          <Task id="x" output={outputs.a}>{{ n: 1 }}</Task>
          <Task id="x" output={outputs.a}>{{ n: 2 }}</Task>
        </Sequence></Workflow>));`,
    TASK_MISSING_OUTPUT: SCHEMAS + `export default smithers(() => (<Workflow name="no-output"><Task id="x">{{ n: 1 }}</Task></Workflow>));`,
    UNKNOWN_COMPONENT:
      SCHEMAS +
      `export default smithers(() => (<Workflow name="foo"><Sequence><Task id="x" output={outputs.a}>{{ n: 1 }}</Task><foo /></Sequence></Workflow>));`,
    INVALID_PROP:
      SCHEMAS +
      `const agent = { id: "llm" };
      export default smithers(() => (<Workflow name="agent"><Task id="x" output={outputs.a} agent={agent}>Count to one</Task></Workflow>));`,
  };

  for (const [code, body] of Object.entries(MALFORMED)) {
    test(`malformed workflow: ${code}; up exits 1 and creates no run`, async (t) => {
      const b = box(t);
      const file = b.write("bad.tsx", HEADER + body);
      const [text, json] = await Promise.all([smithers(["up", file], { db: b.db }), smithers(["up", file, "--json"], { db: b.db })]);
      assert.equal(text.code, 1, text.stdout + text.stderr);
      assert.match(text.stderr, new RegExp(`\\b${code}\\b`));
      assert.equal(json.code, 1, json.stdout + json.stderr);
      assert.equal(json.json.ok, false);
      assert.equal(json.json.error.code, code);
      assert.deepEqual(listRuns(b.db), []);
    });
  }

  // A file that cannot be loaded is the caller's input to fix: exit 4, as for a .toon file.
  const UNLOADABLE = {
    INVALID_IDENTIFIER: [
      HEADER +
        `const { Workflow, smithers, outputs } = createSmithers({ "bad key; drop": z.object({ n: z.number() }) });\n` +
        `export default smithers(() => (<Workflow name="bad-key"><Task id="x" output={outputs["bad key; drop"]}>{{ n: 1 }}</Task></Workflow>));`,
      /bad key; drop/,
    ],
    WORKFLOW_LOAD_FAILED: [HEADER + SCHEMAS + `export default smithers(() => (<Workflow name="x"><Task id="x" output={outputs.a}>{{ n: 1 }}</Task></Workflow>);\n`, /bad\.tsx:5:\d+: /],
    UNSUPPORTED_EXPORT: [
      `import { Sequence, Saga } from "smithers-orchestrator";\nexport default [Sequence, Saga];\n`,
      /smithers-orchestrator has no export "Saga"/,
    ],
  };
  for (const [code, [body, message]] of Object.entries(UNLOADABLE)) {
    test(`unloadable workflow: ${code}; up exits 4 with the code and creates no run`, async (t) => {
      const b = box(t);
      const file = b.write("bad.tsx", body);
      const [text, json] = await Promise.all([smithers(["up", file], { db: b.db }), smithers(["up", file, "--json"], { db: b.db })]);
      assert.equal(text.code, 4, text.stdout + text.stderr);
      assert.match(text.stderr, new RegExp(`^smithers: ${code}: `, "m"));
      assert.match(text.stderr, message);
      assert.doesNotMatch(text.stderr, /\n\s+at /, "no stack trace");
      assert.equal(json.code, 4);
      assert.equal(json.json.error.code, code);
      assert.deepEqual(listRuns(b.db), []);
    });
  }

  test("a workflow that throws while loading, an unsupported subpath and an unknown file type: stable codes with file and line", async (t) => {
    const b = box(t);
    const thrower = b.write("throws.tsx", `${HEADER}${SCHEMAS}const config = JSON.parse("{not json");\nexport default smithers(() => null);\n`);
    const r1 = await expectExit(assert, 4, ["up", thrower], { db: b.db });
    assert.match(r1.stderr, /^smithers: WORKFLOW_LOAD_FAILED: .*throws\.tsx:5(:\d+)?: SyntaxError: /m);
    const subpath = b.write("subpath.tsx", `import { x } from "smithers-orchestrator/observability";\nexport default x;\n`);
    const r2 = await expectExit(assert, 4, ["up", subpath], { db: b.db });
    assert.match(r2.stderr, /^smithers: UNSUPPORTED_EXPORT: smithers-orchestrator\/observability \(imported by .*subpath\.tsx\) is not provided/m);
    b.write("data.yaml", "a: 1\n");
    const yaml = b.write("yaml.tsx", `import data from "./data.yaml";\nexport default data;\n`);
    const r3 = await expectExit(assert, 4, ["up", yaml], { db: b.db });
    assert.match(r3.stderr, /^smithers: UNSUPPORTED_FILE_TYPE: .*data\.yaml: smithers-rs cannot load "\.yaml" files/m);
    assert.deepEqual(listRuns(b.db), []);
  });

  test("a compute task whose value does not match its schema fails the run with INVALID_OUTPUT", async (t) => {
    const b = box(t);
    const file = b.write(
      "bad-output.tsx",
      HEADER + SCHEMAS + `export default smithers(() => (<Workflow name="bad-output"><Task id="x" output={outputs.a}>{() => ({ n: "one" })}</Task></Workflow>));`,
    );
    const r = await expectExit(assert, 1, ["up", file, "--run-id", "bo"], { db: b.db });
    assert.match(r.stdout, /^run bo: failed$/m);
    assert.match(r.stdout, /error: INVALID_OUTPUT: /);
    const info = inspectRun(b.db, "bo");
    assert.equal(info.run.status, "failed");
    assert.equal(info.run.error.code, "INVALID_OUTPUT");
    assert.equal(nodeOf(info, "x").state, "failed");
    assert.deepEqual(info.outputs, []);

    const json = await expectExit(assert, 1, ["up", file, "--run-id", "bo2", "--json"], { db: b.db });
    assert.equal(json.json.ok, false);
    assert.equal(json.json.status, "failed");
    assert.equal(json.json.error.code, "INVALID_OUTPUT");
  });
});
