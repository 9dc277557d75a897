// End-to-end: .toon workflows (and a builder workflow file) through the `smithers` CLI, as a
// user runs them. Each test runs `node bin/smithers.js` on a database of its own, approves or
// denies through the CLI, and reads the output tables (Node API, and the sqlite3 shell for
// raw columns when installed).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { EXAMPLES, esc, expectExit, hasSqlite3, inspectRun, outputsOf, printedArgs, runIdOf, sandbox, sql } from "./helpers/cli.js";

const DEPLOY = join(EXAMPLES, "deploy.toon");
const RELEASE = join(EXAMPLES, "release-review.toon");
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function box(t) {
  const b = sandbox("smithers-toon-cli-");
  t.after(() => b.cleanup());
  return b;
}
const nodeStates = (info) => info.nodes.map((n) => [n.nodeId, n.iteration, n.state]);
const approvalOf = (info, nodeId) => info.approvals.find((a) => a.nodeId === nodeId);
const lines = (...l) => `${l.join("\n")}\n`;

describe("TOON and builder workflows through the CLI", { concurrency: 2 }, () => {
  // ------------------------------------------------------------ examples/deploy.toon

  test("deploy.toon: up waits at the approval, its title shows the build; approve deploys", async (t) => {
    const { db } = box(t);
    const up = await expectExit(assert, 3, ["up", DEPLOY, "--input", '{"service":"api","env":"prod"}'], { db });
    const runId = runIdOf(up.stdout);
    assert.match(up.stdout, /^  waiting for approval: approve-deploy — Deploy api 1\.4\.2 to prod\?$/m);
    assert.match(up.stdout, /^    Commit a1b2c3d, artifact api-1\.4\.2\.tgz\.$/m);
    const printed = /^  approve: (.*)$/m.exec(up.stdout)[1];
    assert.equal(printed, `npx smithers approve ${runId} --db ${db}`);

    let info = inspectRun(db, runId);
    assert.equal(info.run.workflowName, "deploy");
    assert.equal(info.run.workflowPath, DEPLOY);
    assert.deepEqual(nodeStates(info), [
      ["build", 0, "finished"],
      ["approve-deploy", 0, "waiting-approval"],
      ["deploy", 0, "pending"],
    ]);
    assert.deepEqual(outputsOf(info, "build").map((o) => o.value), [{ version: "1.4.2", commitSha: "a1b2c3d", artifact: "api-1.4.2.tgz" }]);

    // why and inspect work on a TOON run as on a JSX one.
    const why = await expectExit(assert, 0, ["why", runId], { db });
    assert.match(why.stdout, /approve-deploy: Approval requested — no decision yet: Deploy api 1\.4\.2 to prod\?/);
    assert.match(why.stdout, new RegExp(`Unblock: npx smithers approve ${runId} --db ${esc(db)}`));
    const shown = await expectExit(assert, 0, ["inspect", runId], { db });
    assert.match(shown.stdout, new RegExp(`workflow: ${esc(DEPLOY)}`));

    const ok = await expectExit(assert, 0, [...printedArgs(printed), "--note", "go", "--by", "alice"]);
    assert.match(ok.stdout, new RegExp(`^approved approve-deploy in run ${runId} by alice$`, "m"));
    assert.match(ok.stdout, new RegExp(`^run ${runId}: finished$`, "m"));

    info = inspectRun(db, runId);
    assert.equal(info.run.status, "finished");
    assert.deepEqual(nodeStates(info).map(([id, , s]) => [id, s]), [["build", "finished"], ["approve-deploy", "finished"], ["deploy", "finished"]]);
    const a = approvalOf(info, "approve-deploy");
    assert.deepEqual([a.status, a.decidedBy, a.note, a.title], ["approved", "alice", "go", "Deploy api 1.4.2 to prod?"]);
    // No output named: the decision lands in the table derived from the id.
    const [decision] = outputsOf(info, "approveDeploy");
    assert.deepEqual(decision.value, { approved: true, note: "go", decidedBy: "alice", decidedAt: a.decidedAt });
    assert.match(decision.value.decidedAt, ISO);
    assert.deepEqual(outputsOf(info, "deploy").map((o) => o.value), [{ url: "https://prod.example.com/api", version: "1.4.2", approvedBy: "alice" }]);

    await t.test("the output tables, as SQL sees them", { skip: !hasSqlite3() && "sqlite3 shell not installed" }, () => {
      assert.deepEqual(sql(db, "PRAGMA table_info(approve_deploy)").map((c) => c.name), ["run_id", "node_id", "iteration", "approved", "note", "decided_by", "decided_at"]);
      assert.deepEqual(sql(db, "SELECT node_id, approved, note, decided_by FROM approve_deploy"), [
        { node_id: "approve-deploy", approved: 1, note: "go", decided_by: "alice" },
      ]);
      assert.deepEqual(sql(db, "SELECT node_id, version, commit_sha, artifact FROM build"), [
        { node_id: "build", version: "1.4.2", commit_sha: "a1b2c3d", artifact: "api-1.4.2.tgz" },
      ]);
      assert.deepEqual(sql(db, "SELECT url, version, approved_by FROM deploy"), [{ url: "https://prod.example.com/api", version: "1.4.2", approved_by: "alice" }]);
    });
  });

  test("deploy.toon: deny fails the run (onDeny: fail) and deploys nothing; deny itself exits 0", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", DEPLOY, "--run-id", "d1", "--input", '{"service":"web","env":"staging"}'], { db });
    const r = await expectExit(assert, 0, ["deny", "d1", "--reason", "freeze", "--by", "carol"], { db });
    assert.match(r.stdout, /^denied approve-deploy in run d1 by carol$/m);
    assert.match(r.stdout, /^run d1: failed \(APPROVAL_DENIED: /m);
    const info = inspectRun(db, "d1");
    assert.equal(info.run.error.code, "APPROVAL_DENIED");
    assert.deepEqual(approvalOf(info, "approve-deploy").title, "Deploy web 1.4.2 to staging?");
    assert.deepEqual(nodeStates(info).map(([id, , s]) => [id, s]), [["build", "finished"], ["approve-deploy", "failed"], ["deploy", "cancelled"]]);
    assert.deepEqual(outputsOf(info, "approveDeploy"), []);
    assert.deepEqual(outputsOf(info, "deploy"), []);
  });

  test("deploy.toon: approve --no-resume records; resume re-loads the .toon file and finishes", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", DEPLOY, "--run-id", "nr", "--input", '{"service":"api","env":"prod"}'], { db });
    const rec = await expectExit(assert, 0, ["approve", "nr", "--no-resume", "--by", "dana"], { db });
    assert.match(rec.stdout, /not resumed; run: npx smithers resume nr/);
    assert.equal(inspectRun(db, "nr").run.status, "running");
    const why = await expectExit(assert, 0, ["why", "nr"], { db });
    assert.match(why.stdout, /Unblock: npx smithers resume nr/);
    const res = await expectExit(assert, 0, ["resume", "nr"], { db });
    assert.match(res.stdout, /^run nr: finished$/m);
    assert.deepEqual(outputsOf(inspectRun(db, "nr"), "deploy").map((o) => o.value.approvedBy), ["dana"]);
  });

  test("deploy.toon: input that does not match input: is refused", async (t) => {
    const { db } = box(t);
    const r = await expectExit(assert, 1, ["up", DEPLOY, "--input", '{"service":"api","env":"dev"}', "--json"], { db });
    assert.equal(r.json.error.code, "INVALID_INPUT");
  });

  // ------------------------------------------------------------ examples/release-review.toon

  test("release-review.toon: the QA loop runs until it passes; both gates wait at once; approving both publishes", async (t) => {
    const { db } = box(t);
    const up = await expectExit(assert, 3, ["up", RELEASE, "--run-id", "rr", "--input", '{"release":"v2.0","flakyRuns":2}'], { db });
    assert.match(up.stdout, /^  waiting for approval: legal-approval — Legal review of v2\.0$/m);
    assert.match(up.stdout, /^    QA passed on attempt 3; licences and notices checked\?$/m);
    assert.match(up.stdout, /^  waiting for approval: security-approval — Security review of v2\.0$/m);
    assert.match(up.stdout, /^    QA needed 3 runs; dependencies audited\?$/m);
    assert.match(up.stdout, /^  approve: npx smithers approve rr --node legal-approval --db /m);

    let info = inspectRun(db, "rr");
    assert.deepEqual(outputsOf(info, "qaRun").map((o) => [o.iteration, o.value]), [
      [0, { attempt: 1, passed: false }],
      [1, { attempt: 2, passed: false }],
      [2, { attempt: 3, passed: true }],
    ]);
    assert.deepEqual(info.loops, [{ loopId: "qa", iteration: 2, done: true }]);

    const ambiguous = await expectExit(assert, 4, ["approve", "rr", "--json"], { db });
    assert.equal(ambiguous.json.error.code, "AMBIGUOUS_APPROVAL");

    const one = await expectExit(assert, 0, ["approve", "rr", "--node", "legal-approval", "--by", "alice"], { db });
    assert.match(one.stdout, /^run rr: waiting-approval$/m);
    assert.match(one.stdout, /^  waiting for approval: security-approval — /m);
    assert.deepEqual(outputsOf(inspectRun(db, "rr"), "signoff").map((o) => [o.nodeId, o.value]), [
      ["legal-signoff", { area: "legal", approved: true, by: "alice" }],
    ]);
    await expectExit(assert, 0, ["approve", "rr", "--node", "security-approval", "--by", "bob"], { db });

    info = inspectRun(db, "rr");
    assert.equal(info.run.status, "finished");
    // Both gates named output: review, one table for both decisions.
    assert.deepEqual(outputsOf(info, "review").map((o) => [o.nodeId, o.value.approved, o.value.decidedBy]).sort(), [
      ["legal-approval", true, "alice"],
      ["security-approval", true, "bob"],
    ]);
    assert.deepEqual(outputsOf(info, "signoff").map((o) => o.value).sort((a, b) => a.area.localeCompare(b.area)), [
      { area: "legal", approved: true, by: "alice" },
      { area: "security", approved: true, by: "bob" },
    ]);
    assert.deepEqual(outputsOf(info, "publish").map((o) => o.value), [{ url: "https://releases.example.com/v2.0", notes: "Release notes for v2.0" }]);
    assert.deepEqual(outputsOf(info, "hold"), []);

    await t.test("review as SQL sees it", { skip: !hasSqlite3() && "sqlite3 shell not installed" }, () => {
      assert.deepEqual(sql(db, "SELECT node_id, approved, decided_by FROM review ORDER BY node_id"), [
        { node_id: "legal-approval", approved: 1, decided_by: "alice" },
        { node_id: "security-approval", approved: 1, decided_by: "bob" },
      ]);
      assert.deepEqual(sql(db, "SELECT iteration, attempt, passed FROM qa_run ORDER BY iteration"), [
        { iteration: 0, attempt: 1, passed: 0 },
        { iteration: 1, attempt: 2, passed: 0 },
        { iteration: 2, attempt: 3, passed: 1 },
      ]);
    });
  });

  test("release-review.toon: a denial (onDeny: continue) is recorded and the release is held", async (t) => {
    const { db } = box(t);
    await expectExit(assert, 3, ["up", RELEASE, "--run-id", "rd", "--input", '{"release":"v2.1","flakyRuns":0}'], { db });
    const denied = await expectExit(assert, 0, ["deny", "rd", "--node", "security-approval", "--reason", "CVE open", "--by", "bob"], { db });
    assert.match(denied.stdout, /^denied security-approval in run rd by bob$/m);
    assert.match(denied.stdout, /^run rd: waiting-approval$/m);
    await expectExit(assert, 0, ["approve", "rd", "--by", "alice"], { db });
    const info = inspectRun(db, "rd");
    assert.equal(info.run.status, "finished");
    assert.deepEqual(outputsOf(info, "qaRun").map((o) => o.value), [{ attempt: 1, passed: true }]);
    const security = outputsOf(info, "review").find((o) => o.nodeId === "security-approval");
    assert.deepEqual([security.value.approved, security.value.note, security.value.decidedBy], [false, "CVE open", "bob"]);
    assert.deepEqual(outputsOf(info, "signoff").find((o) => o.nodeId === "security-signoff").value, { area: "security", approved: false, by: "bob" });
    assert.deepEqual(outputsOf(info, "hold").map((o) => o.value), [{ reason: "security denied" }]);
    assert.deepEqual(outputsOf(info, "publish"), []);
  });

  // ------------------------------------------------------------ handlers, sub-workflows

  test("a .ts handler and an imported sub-workflow: approve its gate by its scoped id", async (t) => {
    const b = box(t);
    b.write(
      "tools.ts",
      lines(
        "export async function bundle({ input }: { input: { version: string } }) {",
        "  return { artifact: `app-${input.version}.tgz`, bytes: 1024 };",
        "}",
      ),
    );
    b.write(
      "release.toon",
      lines(
        "name: release",
        "input:",
        "  version: string",
        "steps[2]:",
        "  - id: bundle",
        "    handler: ./tools.ts#bundle",
        "    output:",
        "      artifact: string",
        "      bytes: number",
        "  - kind: approval",
        "    id: approve",
        "    request:",
        '      title: "Release {bundle.artifact} ({bundle.bytes} bytes)?"',
      ),
    );
    const main = b.write(
      "main.toon",
      lines(
        "name: main",
        "imports:",
        "  workflows[1]{from,as}:",
        "    ./release.toon,release",
        "steps[2]:",
        "  - kind: workflow",
        "    id: rel",
        "    use: release",
        "    with:",
        '      version: "{input.version}"',
        "  - id: announce",
        '    run: "({ text: `released ${rel.approved ? input.version : \'nothing\'}` })"',
        "    output:",
        "      text: string",
      ),
    );
    const up = await expectExit(assert, 3, ["up", main, "--run-id", "sw", "--input", '{"version":"4.2"}'], { cwd: b.dir });
    assert.match(up.stdout, /^  waiting for approval: rel\.approve — Release app-4\.2\.tgz \(1024 bytes\)\?$/m);
    await expectExit(assert, 0, ["approve", "sw", "--node", "rel.approve", "--by", "erin"], { cwd: b.dir });
    const info = inspectRun(b.db, "sw");
    assert.deepEqual(nodeStates(info).map(([id, , s]) => [id, s]), [["rel.bundle", "finished"], ["rel.approve", "finished"], ["announce", "finished"]]);
    assert.deepEqual(outputsOf(info, "relBundle").map((o) => o.value), [{ artifact: "app-4.2.tgz", bytes: 1024 }]);
    assert.equal(outputsOf(info, "relApprove")[0].value.decidedBy, "erin");
    assert.deepEqual(outputsOf(info, "announce").map((o) => o.value), [{ text: "released 4.2" }]);
  });

  test("a builder workflow in a .ts file runs, waits and resumes through the CLI", async (t) => {
    const b = box(t);
    const file = b.write(
      "svc.ts",
      lines(
        'import { approval, fields, task, workflow } from "smithers-rs";',
        "const build = task(\"build\", { output: fields({ version: \"string\" }), run: ({ input }) => ({ version: `${input.major}.0.0` }) });",
        "const gate = approval(\"approve-deploy\", { needs: { build }, request: ({ build }) => ({ title: `Deploy ${build.version}?` }) });",
        "const deploy = task(\"deploy\", { needs: { build, gate }, output: fields({ by: \"string?\" }), run: ({ gate }) => ({ by: gate.decidedBy }) });",
        'export default workflow({ name: "svc", input: fields({ major: "number" }), steps: [build, gate, deploy] });',
      ),
    );
    const up = await expectExit(assert, 3, ["up", file, "--run-id", "bt", "--input", '{"major":3}'], { cwd: b.dir });
    assert.match(up.stdout, /^  waiting for approval: approve-deploy — Deploy 3\.0\.0\?$/m);
    await expectExit(assert, 0, ["approve", "bt", "--by", "frank"], { cwd: b.dir });
    const info = inspectRun(b.db, "bt");
    assert.equal(info.run.workflowPath, file);
    assert.deepEqual(outputsOf(info, "deploy").map((o) => o.value), [{ by: "frank" }]);
    assert.equal(outputsOf(info, "approveDeploy")[0].value.approved, true);
  });

  // ------------------------------------------------------------ malformed files

  test("a malformed .toon file: exit 4, file, line, key and code; nothing runs, no database", async (t) => {
    const b = box(t);
    const cases = [
      {
        name: "bad-indent.toon",
        text: lines("name: x", "steps[1]:", "  - id: a", '     run: "1"'),
        code: "TOON_PARSE",
        line: 4,
        key: "steps[0].run",
      },
      {
        name: "bad-length.toon",
        text: lines("name: x", "steps[2]:", "  - id: a", '    run: "({ v: 1 })"', "    output:", "      v: number"),
        code: "TOON_PARSE",
        line: 6,
        key: "steps",
      },
      {
        name: "unknown-kind.toon",
        text: lines("name: x", "steps[1]:", "  - kind: gate", "    id: g"),
        code: "TOON_UNKNOWN_NODE",
        line: 3,
        key: "steps[0].kind",
      },
      {
        name: "unknown-need.toon",
        text: lines("name: x", "steps[1]:", "  - kind: approval", "    id: g", "    needs[1]: build", "    request:", "      title: t"),
        code: "TOON_UNKNOWN_NEED",
        line: 5,
        key: "steps[0].needs",
      },
      {
        name: "no-handler.toon",
        text: lines("name: x", "steps[1]:", "  - id: a", "    handler: ./nowhere.ts#run", "    output:", "      v: number"),
        code: "TOON_HANDLER_NOT_FOUND",
        line: 4,
        key: "steps[0].handler",
      },
      {
        name: "duplicate.toon",
        text: lines("name: x", "steps[2]:", "  - id: a", '    run: "1"', "    output:", "      v: number", "  - id: a", '    run: "1"', "    output:", "      v: number"),
        code: "TOON_DUPLICATE_STEP",
        line: 7,
        key: "steps[1].id",
      },
    ];
    for (const c of cases) {
      const file = b.write(c.name, c.text);
      const r = await expectExit(assert, 4, ["up", file], { cwd: b.dir });
      assert.match(r.stderr, new RegExp(`^smithers: ${c.code}: ${esc(file)}:${c.line}: ${esc(c.key)}: `, "m"), c.name);
      const j = await expectExit(assert, 4, ["up", file, "--json"], { cwd: b.dir });
      assert.equal(j.json.ok, false);
      assert.equal(j.json.error.code, c.code, c.name);
      assert.deepEqual({ file: j.json.error.details.file, line: j.json.error.details.line, key: j.json.error.details.key }, { file, line: c.line, key: c.key }, c.name);
    }
    assert.equal(existsSync(b.db), false, "no database was created");
  });
});
