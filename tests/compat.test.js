// Smithers' runtime semantics that real workflow files rely on, end to end: the contract
// tests of Smithers' engine (packages/engine/tests/deferred-contract.test.js,
// durable-deferred-contract.test.js, approval-extended.test.jsx) written again here against
// our runtime, then <HumanTask>, <ApprovalGate>, <Runbook>, loops without ids, one schema
// under several keys, and the CLI as Smithers' docs write it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { z } from "zod";
import {
  Approval,
  ApprovalGate,
  EscalationChain,
  HumanTask,
  Loop,
  Runbook,
  Sequence,
  SmithersEngine,
  Task,
  Workflow,
  approvalDecisionSchema,
  approvalRankingSchema,
  approvalSelectionSchema,
  commandResultSchema,
  createSmithers,
} from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
import { loadServeConfig, startServer } from "../npm/smithers-rs/src/serve/index.js";
import { EXAMPLES, expectExit, hasSqlite3, inspectRun, outputsOf, runIdOf, sandbox, sql } from "./helpers/cli.js";
import { freshDir, removeDirs } from "./helpers/durability.js";
import { client } from "./helpers/serve.js";

after(() => removeDirs());

const h = (type, props, ...children) =>
  jsx(type, children.length === 0 ? { ...props } : { ...props, children: children.length === 1 ? children[0] : children });

function newEngine(t) {
  const engine = new SmithersEngine({ dbPath: join(freshDir("smithers-compat-"), "smithers.db") });
  t.after(() => engine.close());
  return engine;
}

const nodeState = (info, id) => info.nodes.find((n) => n.nodeId === id)?.state;
const rows = (info, table) => outputsOf(info, table).map((o) => ({ nodeId: o.nodeId, iteration: o.iteration, ...o.value }));

// ------------------------------------------------------------------ Smithers' contract tests

describe("Smithers' approval contract", () => {
  // deferred-contract.test.js defines its decision schema inline.
  const contract = createSmithers({
    out: z.object({ v: z.number() }),
    decision: z.object({ approved: z.boolean(), note: z.string().nullable(), decidedBy: z.string().nullable(), decidedAt: z.string().nullable() }),
  });
  const gateThen = (name, gateProps, v) =>
    contract.smithers(() =>
      h(
        Workflow,
        { name },
        h(
          Sequence,
          {},
          h(Approval, { id: "gate", output: contract.outputs.decision, request: { title: "Approve deployment" }, ...gateProps }),
          h(Task, { id: "after", output: contract.outputs.out }, { v }),
        ),
      ),
    );

  test("an approval pauses the workflow until approved; then the task after it runs", async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(gateThen("deferred-approval-pauses", {}, 1));
    assert.equal(first.status, "waiting-approval");
    assert.deepEqual(outputsOf(engine.inspect(first.runId), "out"), []);
    const end = await (await engine.approve(first.runId, { nodeId: "gate" })).done;
    assert.equal(end.status, "finished");
    assert.deepEqual(rows(engine.inspect(first.runId), "out"), [{ nodeId: "after", iteration: 0, v: 1 }]);
  });

  test('onDeny "fail": the run fails and no decision row is written', async (t) => {
    const engine = newEngine(t);
    const wf = contract.smithers(() =>
      h(Workflow, { name: "deferred-approval-deny-fail" }, h(Approval, { id: "gate", output: contract.outputs.decision, request: { title: "Approve release" }, onDeny: "fail" })),
    );
    const first = await engine.run(wf);
    const end = await (await engine.deny(first.runId, { nodeId: "gate" })).done;
    assert.equal(end.status, "failed");
    assert.deepEqual(outputsOf(engine.inspect(first.runId), "decision"), []);
  });

  test('onDeny "skip" still records the denial and runs the work after it', async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(gateThen("deferred-approval-deny-skip", { onDeny: "skip" }, 2));
    const end = await (await engine.deny(first.runId, { nodeId: "gate" })).done;
    assert.equal(end.status, "finished");
    const info = engine.inspect(first.runId);
    assert.equal(rows(info, "decision")[0].approved, false);
    assert.deepEqual(rows(info, "out"), [{ nodeId: "after", iteration: 0, v: 2 }]);
  });

  test("durable-deferred: the decision row holds approved, note and decider", async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(gateThen("durable-deferred", {}, 1));
    const end = await (await engine.approve(first.runId, { nodeId: "gate", note: "ship it", decidedBy: "reviewer" })).done;
    assert.equal(end.status, "finished");
    const [row] = rows(engine.inspect(first.runId), "decision");
    assert.deepEqual([row.approved, row.note, row.decidedBy], [true, "ship it", "reviewer"]);
  });

  const ab = createSmithers({ a: z.object({ v: z.number() }), b: z.object({ v: z.number() }) });

  test("approval-extended: a denied needsApproval task fails the run; with continueOnFail the run goes on", async (t) => {
    const engine = newEngine(t);
    const single = ab.smithers(() => h(Workflow, { name: "deny-fail" }, h(Task, { id: "gate", output: ab.outputs.a, needsApproval: true }, { v: 1 })));
    const r1 = await engine.run(single);
    assert.equal(r1.status, "waiting-approval");
    assert.equal((await (await engine.deny(r1.runId, { note: "rejected", decidedBy: "tester" })).done).status, "failed");

    const cont = ab.smithers(() =>
      h(Workflow, { name: "deny-continue" }, h(Sequence, {}, h(Task, { id: "gate", output: ab.outputs.a, needsApproval: true, continueOnFail: true }, { v: 1 }), h(Task, { id: "after", output: ab.outputs.b }, { v: 2 }))),
    );
    const r2 = await engine.run(cont);
    const end = await (await engine.deny(r2.runId, { note: "nope", decidedBy: "tester" })).done;
    assert.equal(end.status, "finished");
    const info = engine.inspect(r2.runId);
    assert.equal(nodeState(info, "gate"), "failed");
    assert.deepEqual(rows(info, "b"), [{ nodeId: "after", iteration: 0, v: 2 }]);
  });

  test("approval-extended: two gates in a sequence pause one after the other", async (t) => {
    const engine = newEngine(t);
    const wf = ab.smithers(() =>
      h(Workflow, { name: "multi-approval" }, h(Sequence, {}, h(Task, { id: "gate1", output: ab.outputs.a, needsApproval: true }, { v: 1 }), h(Task, { id: "gate2", output: ab.outputs.b, needsApproval: true }, { v: 2 }))),
    );
    const r1 = await engine.run(wf);
    assert.equal((await (await engine.approve(r1.runId, { nodeId: "gate1", decidedBy: "tester" })).done).status, "waiting-approval");
    assert.equal((await (await engine.approve(r1.runId, { nodeId: "gate2", decidedBy: "tester" })).done).status, "finished");
  });

  test("approval-extended: async lets the task after the gate run before the decision", async (t) => {
    const engine = newEngine(t);
    const s = createSmithers({ approval: approvalDecisionSchema, result: z.object({ v: z.number() }) });
    const wf = s.smithers(() =>
      h(Workflow, { name: "async-approval-flow" }, h(Sequence, {}, h(Approval, { id: "gate", output: s.outputs.approval, request: { title: "Ship it?" }, async: true }), h(Task, { id: "after", output: s.outputs.result }, { v: 2 }))),
    );
    const first = await engine.run(wf);
    assert.equal(first.status, "waiting-approval");
    assert.deepEqual(rows(engine.inspect(first.runId), "result"), [{ nodeId: "after", iteration: 0, v: 2 }]);
    assert.equal(engine.pendingApprovals({ runId: first.runId })[0].async, true);
    const end = await (await engine.approve(first.runId, { nodeId: "gate", note: "ok", decidedBy: "tester" })).done;
    assert.equal(end.status, "finished");
  });

  test("approval-extended: select and rank decisions are typed rows", async (t) => {
    const engine = newEngine(t);
    const s = createSmithers({ selection: approvalSelectionSchema, ranking: approvalRankingSchema, result: z.object({ selected: z.string() }) });
    const wf = s.smithers((ctx) => {
      const selection = ctx.outputMaybe("selection", { nodeId: "pick-plan" });
      return h(
        Workflow,
        { name: "approval-selection" },
        h(
          Sequence,
          {},
          h(Approval, { id: "pick-plan", mode: "select", output: s.outputs.selection, request: { title: "Pick a plan" }, options: [{ key: "light", label: "Light" }, { key: "balanced", label: "Balanced" }] }),
          h(Approval, { id: "rank-plans", mode: "rank", output: s.outputs.ranking, request: { title: "Rank" }, options: [{ key: "canary", label: "Canary" }, { key: "regional", label: "Regional" }, { key: "global", label: "Global" }] }),
          selection ? h(Task, { id: "record-selection", output: s.outputs.result }, { selected: selection.selected }) : null,
        ),
      );
    });
    const first = await engine.run(wf);
    await (await engine.approve(first.runId, { nodeId: "pick-plan", decidedBy: "planner", decision: { selected: "balanced", notes: "balanced is safest" } })).done;
    const end = await (await engine.approve(first.runId, { nodeId: "rank-plans", decidedBy: "planner", decision: { ranked: ["canary", "regional", "global"], notes: "canary first" } })).done;
    assert.equal(end.status, "finished");
    const info = engine.inspect(first.runId);
    assert.deepEqual(rows(info, "selection"), [{ nodeId: "pick-plan", iteration: 0, selected: "balanced", notes: "balanced is safest" }]);
    assert.deepEqual(rows(info, "ranking"), [{ nodeId: "rank-plans", iteration: 0, ranked: ["canary", "regional", "global"], notes: "canary first" }]);
    assert.equal(rows(info, "result")[0].selected, "balanced");
  });

  test("approval-extended: autoApprove after two manual approvals decides the third run itself", async (t) => {
    const engine = newEngine(t);
    const s = createSmithers({ approval: approvalDecisionSchema });
    const wf = s.smithers(() =>
      h(Workflow, { name: "approval-auto-approve" }, h(Approval, { id: "checkout", output: s.outputs.approval, request: { title: "Confirm checkout" }, autoApprove: { after: 2, audit: true } })),
    );
    for (const who of ["human-1", "human-2"]) {
      const run = await engine.run(wf);
      assert.equal(run.status, "waiting-approval");
      assert.equal((await (await engine.approve(run.runId, { nodeId: "checkout", note: "ok", decidedBy: who })).done).status, "finished");
    }
    const auto = await engine.run(wf);
    assert.equal(auto.status, "finished");
    const info = engine.inspect(auto.runId);
    const approval = info.approvals.find((a) => a.nodeId === "checkout");
    assert.deepEqual([approval.status, approval.decidedBy], ["approved", "smithers:auto"]);
    assert.equal(engine.events(auto.runId).filter((e) => e.type === "ApprovalAutoApproved").length, 1);
    assert.deepEqual([rows(info, "approval")[0].approved, rows(info, "approval")[0].decidedBy], [true, "smithers:auto"]);
  });

  test("autoApprove condition and revertOn are read from ctx at render", async (t) => {
    const engine = newEngine(t);
    const s = createSmithers({ input: z.object({ amount: z.number() }), approval: approvalDecisionSchema });
    const wf = s.smithers(() =>
      h(
        Workflow,
        { name: "small-refunds" },
        h(Approval, {
          id: "refund",
          output: s.outputs.approval,
          request: { title: "Refund?" },
          autoApprove: { condition: (ctx) => ctx.input.amount < 100, revertOn: (ctx) => ctx.input.amount === 13 },
        }),
      ),
    );
    assert.equal((await engine.run(wf, { input: { amount: 20 } })).status, "finished");
    assert.equal((await engine.run(wf, { input: { amount: 500 } })).status, "waiting-approval");
    assert.equal((await engine.run(wf, { input: { amount: 13 } })).status, "waiting-approval");
  });
});

// ------------------------------------------------------------------ one schema, several keys

describe("one schema object under several keys", () => {
  test("securityReview and qaReview: a table each, told apart by outputs.<key> and by string key", async (t) => {
    const engine = newEngine(t);
    const { smithers, outputs } = createSmithers({
      securityReview: approvalDecisionSchema,
      qaReview: approvalDecisionSchema,
      verdict: z.object({ security: z.boolean(), qa: z.boolean() }),
    });
    const wf = smithers((ctx) => {
      const security = ctx.outputMaybe(outputs.securityReview, { nodeId: "security" });
      const qa = ctx.outputMaybe("qaReview", { nodeId: "qa" });
      return h(
        Workflow,
        { name: "reviews" },
        h(
          Sequence,
          {},
          h(Approval, { id: "security", output: outputs.securityReview, request: { title: "Security?" } }),
          h(Approval, { id: "qa", output: outputs.qaReview, request: { title: "QA?" } }),
          security && qa ? h(Task, { id: "verdict", output: outputs.verdict }, { security: security.approved, qa: qa.approved }) : null,
        ),
      );
    });
    const first = await engine.run(wf);
    await (await engine.approve(first.runId, { nodeId: "security", decidedBy: "sam" })).done;
    const end = await (await engine.deny(first.runId, { nodeId: "qa", decidedBy: "quinn" })).done;
    assert.equal(end.status, "finished");
    const info = engine.inspect(first.runId);
    assert.deepEqual(rows(info, "securityReview").map((r) => [r.nodeId, r.approved]), [["security", true]]);
    assert.deepEqual(rows(info, "qaReview").map((r) => [r.nodeId, r.approved]), [["qa", false]]);
    assert.deepEqual(rows(info, "verdict")[0], { nodeId: "verdict", iteration: 0, security: true, qa: false });
    if (hasSqlite3()) {
      assert.deepEqual(sql(engine.dbPath, "SELECT node_id, decided_by FROM security_review"), [{ node_id: "security", decided_by: "sam" }]);
      assert.deepEqual(sql(engine.dbPath, "SELECT node_id, decided_by FROM qa_review"), [{ node_id: "qa", decided_by: "quinn" }]);
    }
  });
});

// ------------------------------------------------------------------ loops without an id

describe("<Loop> without an id", () => {
  test("keeps its id across renders and across a resume in another engine", async (t) => {
    const dir = freshDir("smithers-compat-loop-");
    const dbPath = join(dir, "smithers.db");
    const { smithers, outputs } = createSmithers({ tick: z.object({ n: z.number() }), gate: approvalDecisionSchema });
    const wf = smithers((ctx) => {
      const n = ctx.iterationCount(outputs.tick, "tick");
      return h(
        Workflow,
        { name: "anon-loop" },
        h(
          Sequence,
          {},
          // A conditional sibling before the loop: it must not move the loop's id.
          n >= 2 ? h(Task, { id: "note", output: outputs.tick }, { n: -1 }) : null,
          h(Loop, { until: n >= 3, maxIterations: 5 }, h(Task, { id: "tick", output: outputs.tick }, () => ({ n: ctx.iteration }))),
          h(Approval, { id: "gate", output: outputs.gate, request: { title: "Done?" } }),
        ),
      );
    });
    const engine = new SmithersEngine({ dbPath });
    const first = await engine.run(wf);
    engine.close();
    assert.equal(first.status, "waiting-approval");
    const again = new SmithersEngine({ dbPath });
    t.after(() => again.close());
    const end = await (await again.approve(first.runId, { decidedBy: "ann", workflow: wf })).done;
    assert.equal(end.status, "finished");
    const info = again.inspect(first.runId);
    assert.deepEqual(info.loops.map((l) => [l.loopId, l.iteration, l.done]), [["loop:0.1", 2, true]]);
    assert.deepEqual(rows(info, "tick").filter((r) => r.nodeId === "tick").map((r) => [r.iteration, r.n]), [[0, 0], [1, 1], [2, 2]]);
  });
});

// ------------------------------------------------------------------ HumanTask

describe("<HumanTask>", () => {
  const s = createSmithers({
    review: z.object({ approved: z.boolean(), comments: z.string(), severity: z.enum(["low", "medium", "high"]) }),
    summary: z.object({ status: z.string() }),
  });
  // The example of Smithers' docs (docs/components/human-task.mdx).
  const reviewFlow = (props = {}) =>
    s.smithers((ctx) => {
      const review = ctx.outputMaybe(s.outputs.review, { nodeId: "human-review" });
      return h(
        Workflow,
        { name: "review-flow" },
        h(
          Sequence,
          {},
          h(HumanTask, { id: "human-review", output: s.outputs.review, prompt: "Review the PR. Provide approved, comments, severity.", maxAttempts: 3, ...props }),
          review ? h(Task, { id: "record", output: s.outputs.summary }, { status: review.approved ? "approved" : "changes-requested" }) : null,
        ),
      );
    });

  test("waits for JSON valid for the schema; invalid answers are refused and counted", async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(reviewFlow());
    assert.equal(first.status, "waiting-approval");
    const [pending] = engine.pendingApprovals({ runId: first.runId });
    assert.deepEqual([pending.mode, pending.title, pending.prompt, pending.maxAttempts], ["human", "human:human-review", "Review the PR. Provide approved, comments, severity.", 3]);
    assert.deepEqual(Object.keys(pending.schema.properties), ["approved", "comments", "severity"]);

    const bad = await engine.approve(first.runId, { nodeId: "human-review", note: '{"approved":true,"comments":"ok","severity":"urgent"}', decidedBy: "rev" });
    assert.equal(bad.status, "invalid");
    assert.equal(bad.error.code, "HUMAN_TASK_VALIDATION_FAILED");
    assert.deepEqual([bad.attempt, bad.maxAttempts, bad.runStatus], [1, 3, "waiting-approval"]);
    assert.equal(bad.done, null);
    assert.equal(engine.getRun(first.runId).status, "waiting-approval");

    const good = await engine.approve(first.runId, { nodeId: "human-review", note: '{"approved":false,"comments":"fix the tests","severity":"high"}', decidedBy: "rev" });
    assert.equal(good.status, "approved");
    assert.equal((await good.done).status, "finished");
    const info = engine.inspect(first.runId);
    assert.deepEqual(rows(info, "review"), [{ nodeId: "human-review", iteration: 0, approved: false, comments: "fix the tests", severity: "high" }]);
    assert.deepEqual(rows(info, "summary")[0].status, "changes-requested");
    assert.equal(engine.events(first.runId).filter((e) => e.type === "HumanAnswerInvalid").length, 1);
  });

  test("maxAttempts invalid answers fail the task and the run", async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(reviewFlow({ maxAttempts: 2 }));
    await engine.approve(first.runId, { note: "not json" });
    const last = await engine.approve(first.runId, { note: "{}" });
    assert.deepEqual([last.status, last.attempt, last.maxAttempts], ["invalid", 2, 2]);
    const end = await last.done;
    assert.equal(end.status, "failed");
    assert.equal(end.error.code, "HUMAN_TASK_VALIDATION_FAILED");
    assert.equal(nodeState(engine.inspect(first.runId), "human-review"), "failed");
  });

  test("with continueOnFail a failed human task lets the run go on", async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(reviewFlow({ maxAttempts: 1, continueOnFail: true }));
    const end = await (await engine.approve(first.runId, { note: "[]" })).done;
    assert.equal(end.status, "finished");
  });

  test("the CLI: approve <run> <node> --note '<json>' (Smithers' docs), --input typed by the schema, exit codes", async (t) => {
    const b = sandbox();
    t.after(() => b.cleanup());
    const file = join(EXAMPLES, "incident-triage.tsx");
    const up = await expectExit(assert, 3, ["up", file, "--input", '{"service":"api","errors":420}'], { db: b.db });
    const runId = runIdOf(up.stdout);
    assert.match(up.stdout, /^  waiting for an answer: triage — api logged 420 errors\. Answer severity/m);
    assert.match(up.stdout, /^    fields: severity \(required\), owner \(required\), notes$/m);
    assert.match(up.stdout, new RegExp(`^  answer:  npx smithers approve ${runId} triage --db \\S+ --note '<json>'$`, "m"));
    const why = await expectExit(assert, 0, ["why", runId, "--json"], { db: b.db });
    assert.match(why.json.blockers[0].reason, /^Answer requested/);
    assert.deepEqual(why.json.blockers[0].schema.required, ["severity", "owner"]);

    const bad = await expectExit(assert, 1, ["approve", runId, "triage", "--note", '{"severity":"urgent","owner":"dana"}'], { db: b.db });
    assert.match(bad.stderr, /HUMAN_TASK_VALIDATION_FAILED/);
    assert.match(bad.stdout, /^answer 1 of 3 for triage refused; it waits for another answer \(2 left\)$/m);
    assert.match(bad.stdout, new RegExp(`^run ${runId}: waiting-approval$`, "m"));

    const ok = await expectExit(assert, 0, ["approve", runId, "triage", "--input", "severity=critical", "--input", "owner=dana", "--by", "dana"], { db: b.db });
    assert.match(ok.stdout, new RegExp(`^approved triage in run ${runId} by dana$`, "m"));
    assert.match(ok.stdout, /waiting for approval: page-everyone/);

    const paged = await expectExit(assert, 0, ["approve", runId, "page-everyone", "--by", "lee", "--json"], { db: b.db });
    assert.equal(paged.json.runStatus, "finished");
    const info = inspectRun(b.db, runId);
    assert.deepEqual(rows(info, "triage"), [{ nodeId: "triage", iteration: 0, severity: "critical", owner: "dana" }]);
    assert.deepEqual(rows(info, "outcome")[0], { nodeId: "outcome", iteration: 0, paged: true, severity: "critical", owner: "dana", decidedBy: "lee" });
  });

  test("over HTTP: POST …/approve with the answer as decision; a wrong answer is 422 and counts", async (t) => {
    const dir = freshDir("smithers-compat-http-");
    const dbPath = join(dir, "smithers.db");
    const engine = new SmithersEngine({ dbPath });
    const { runId } = await engine.start(join(EXAMPLES, "incident-triage.tsx"), { input: { service: "web", errors: 3 } });
    assert.equal((await engine.waitForRun(runId)).status, "waiting-approval");
    engine.close();
    const token = "compat-token-0123456789";
    const config = loadServeConfig({ env: { SMITHERS_TOKENS: JSON.stringify([{ user: "olive", token, scopes: ["approve"] }]) }, cwd: dir });
    const server = await startServer({ dbPath, port: 0, config, log: () => {} });
    t.after(() => server.close());
    const api = client(server.url, token);
    const path = `/v1/runs/${runId}/nodes/triage/approve`;
    const wrong = await api(path, { body: { decision: { severity: "sev1", owner: "olive" } } });
    assert.equal(wrong.status, 422);
    assert.equal(wrong.body.error.code, "HUMAN_TASK_VALIDATION_FAILED");
    assert.deepEqual([wrong.body.error.details.attempt, wrong.body.error.details.maxAttempts], [1, 3]);
    const [waiting] = (await api(`/v1/approvals?runId=${runId}`)).body.approvals;
    assert.equal(waiting.mode, "human");
    const right = await api(path, { body: { decision: { severity: "low", owner: "olive", notes: "flaky test" } } });
    assert.equal(right.status, 200);
    assert.equal(right.body.status, "approved");
    const deadline = Date.now() + 10_000;
    let run;
    while (Date.now() < deadline && (run = (await api(`/v1/runs/${runId}`)).body).run.status !== "finished") await new Promise((r) => setTimeout(r, 20));
    assert.equal(run.run.status, "finished");
    assert.deepEqual(run.outputs.find((o) => o.nodeId === "outcome").value, { paged: false, severity: "low", owner: "olive", decidedBy: null });
  });
});

// ------------------------------------------------------------------ ApprovalGate

describe("<ApprovalGate when>", () => {
  const s = createSmithers({ input: z.object({ risk: z.string() }), deployDecision: approvalDecisionSchema, deploy: z.object({ by: z.string().nullable() }) });
  const wf = (onDeny) =>
    s.smithers((ctx) => {
      const decision = ctx.outputMaybe(s.outputs.deployDecision, { nodeId: "deploy-approval" });
      return h(
        Workflow,
        { name: "deploy-pipeline" },
        h(
          Sequence,
          {},
          h(ApprovalGate, { id: "deploy-approval", output: s.outputs.deployDecision, when: ctx.input.risk === "high", request: { title: "Approve high-risk deploy?" }, onDeny }),
          decision?.approved ? h(Task, { id: "deploy", output: s.outputs.deploy }, { by: decision.decidedBy }) : null,
        ),
      );
    });

  test("when false: approved at once with a valid decision row, nobody asked", async (t) => {
    const engine = newEngine(t);
    const run = await engine.run(wf(), { input: { risk: "low" } });
    assert.equal(run.status, "finished");
    const info = engine.inspect(run.runId);
    assert.deepEqual(info.approvals, []);
    assert.deepEqual(rows(info, "deployDecision"), [{ nodeId: "deploy-approval", iteration: 0, approved: true, note: "auto-approved", decidedBy: null, decidedAt: null }]);
    assert.equal(info.nodes.find((n) => n.nodeId === "deploy-approval").label, "Approve high-risk deploy? (auto-approved)");
    assert.deepEqual(rows(info, "deploy").map((r) => r.by), [null]);
  });

  test("when true: a person decides; onDeny applies to that decision", async (t) => {
    const engine = newEngine(t);
    const run = await engine.run(wf(), { input: { risk: "high" } });
    assert.equal(run.status, "waiting-approval");
    assert.equal((await (await engine.approve(run.runId, { decidedBy: "ops" })).done).status, "finished");
    assert.deepEqual(rows(engine.inspect(run.runId), "deploy").map((r) => r.by), ["ops"]);

    const strict = await engine.run(wf("fail"), { input: { risk: "high" } });
    assert.equal((await (await engine.deny(strict.runId, { decidedBy: "ops" })).done).status, "failed");
  });

  test("props it does not honour are refused", async (t) => {
    const engine = newEngine(t);
    const bad = s.smithers(() => h(Workflow, {}, h(ApprovalGate, { id: "g", output: s.outputs.deployDecision, when: true, request: { title: "t" }, retries: 5 })));
    await assert.rejects(engine.run(bad, { input: { risk: "x" } }), (e) => e.code === "UNSUPPORTED_PROP" && e.details.prop === "retries");
  });
});

// ------------------------------------------------------------------ Runbook

describe("<Runbook>", () => {
  test("db-runbook example: safe steps run, risky and critical wait for an approval each", async (t) => {
    const engine = newEngine(t);
    const first = await engine.run(join(EXAMPLES, "db-runbook.tsx"), { input: { db: "orders" } });
    assert.equal(first.status, "waiting-approval");
    let info = engine.inspect(first.runId);
    assert.deepEqual(rows(info, "step").map((r) => [r.nodeId, r.stdout]), [["maint-health-check", "orders: healthy\n"]]);
    const [risky] = engine.pendingApprovals({ runId: first.runId });
    assert.deepEqual([risky.nodeId, risky.title], ["maint-backup-approval", "Approve risky step: backup"]);
    assert.deepEqual(risky.metadata, { stepId: "backup", risk: "risky" });

    const second = await (await engine.approve(first.runId, { decidedBy: "dba" })).done;
    assert.equal(second.status, "waiting-approval");
    const [critical] = engine.pendingApprovals({ runId: first.runId });
    assert.deepEqual([critical.nodeId, critical.title, critical.metadata.elevated], ["maint-migrate-approval", "Approve CRITICAL step: Apply migrations", true]);

    assert.equal((await (await engine.approve(first.runId, { decidedBy: "cto" })).done).status, "finished");
    info = engine.inspect(first.runId);
    assert.deepEqual(rows(info, "step").map((r) => r.nodeId).sort(), ["maint-backup", "maint-health-check", "maint-migrate", "maint-smoke-test"]);
    assert.deepEqual(info.nodes.map((n) => n.nodeId), [
      "maint-health-check", "maint-backup-approval", "maint-backup", "maint-migrate-approval", "maint-migrate", "maint-smoke-test",
    ]);
    // The decisions are stored in tables derived from <id>-<step>-approval-decision.
    assert.deepEqual(rows(info, "maintBackupApprovalDecision").map((r) => [r.approved, r.decidedBy]), [[true, "dba"]]);
    assert.deepEqual(rows(info, "maintMigrateApprovalDecision").map((r) => [r.approved, r.decidedBy]), [[true, "cto"]]);
  });

  const s = createSmithers({ step: commandResultSchema });
  const book = (onDeny) =>
    s.smithers(() =>
      h(
        Workflow,
        { name: "book" },
        h(Runbook, {
          onDeny,
          stepOutput: s.outputs.step,
          steps: [
            { id: "a", risk: "risky", command: "echo a" },
            { id: "b", risk: "safe", command: "echo b" },
          ],
        }),
      ),
    );

  test('a denied step fails the run by default; onDeny "skip" skips it and goes on', async (t) => {
    const engine = newEngine(t);
    const strict = await engine.run(book());
    const failed = await (await engine.deny(strict.runId, { decidedBy: "x" })).done;
    assert.equal(failed.status, "failed");
    assert.deepEqual(rows(engine.inspect(strict.runId), "step"), []);

    const lenient = await engine.run(book("skip"));
    const end = await (await engine.deny(lenient.runId, { decidedBy: "x" })).done;
    assert.equal(end.status, "finished");
    const info = engine.inspect(lenient.runId);
    assert.equal(nodeState(info, "runbook-a"), "skipped");
    assert.deepEqual(rows(info, "step").map((r) => r.nodeId), ["runbook-b"]);
  });

  test("a step without agent or command, or an unknown key, is refused", async (t) => {
    const engine = newEngine(t);
    const none = s.smithers(() => h(Workflow, {}, h(Runbook, { stepOutput: s.outputs.step, steps: [{ id: "x", risk: "safe" }] })));
    await assert.rejects(engine.run(none), (e) => e.code === "INVALID_PROP");
    const typo = s.smithers(() => h(Workflow, {}, h(Runbook, { stepOutput: s.outputs.step, steps: [{ id: "x", risk: "safe", command: "true", riks: "safe" }] })));
    await assert.rejects(engine.run(typo), (e) => e.code === "UNSUPPORTED_PROP" && e.details.prop === "steps[].riks");
  });
});

// ------------------------------------------------------------------ EscalationChain

describe("<EscalationChain>", () => {
  const s = createSmithers({
    tier: z.object({ answer: z.string(), confidence: z.number() }),
    // A plain JSON Schema: each check's fields and the decision's, none required.
    escalation: {
      type: "object",
      properties: {
        ...Object.fromEntries(["escalated", "approved"].map((f) => [f, { type: "boolean" }])),
        ...Object.fromEntries(["fromLevel", "toLevel"].map((f) => [f, { type: "integer" }])),
        ...Object.fromEntries(["note", "decidedBy", "decidedAt"].map((f) => [f, { type: ["string", "null"] }])),
      },
      additionalProperties: false,
    },
    checksOnly: z.object({ escalated: z.boolean(), fromLevel: z.number(), toLevel: z.number() }),
  });
  /** An AgentLike that answers with `value` as JSON (or throws `value` when it is an Error), and counts its calls. */
  const agent = (value) => {
    const a = {
      calls: 0,
      prompts: [],
      async generate({ prompt }) {
        a.calls += 1;
        a.prompts.push(prompt);
        if (value instanceof Error) throw value;
        return { text: `\`\`\`json\n${JSON.stringify(value)}\n\`\`\`` };
      },
    };
    return a;
  };
  const chain = (levels, props = {}) =>
    s.smithers(() =>
      h(
        Workflow,
        { name: "support" },
        h(
          EscalationChain,
          { id: "support", escalationOutput: s.outputs.escalation, levels: levels.map((agentLike, i) => ({ agent: agentLike, output: s.outputs.tier, label: `Tier ${i + 1}`, escalateIf: (r) => r.confidence < 0.7 })), ...props },
          "Resolve the ticket: my invoice is wrong.",
        ),
      ),
    );
  const nodeIds = (info) => info.nodes.map((n) => n.nodeId);

  test("a confident first level ends the chain: its check says so and no later level runs", async (t) => {
    const engine = newEngine(t);
    const [one, two] = [agent({ answer: "reissue it", confidence: 0.9 }), agent({ answer: "x", confidence: 1 })];
    const run = await engine.run(chain([one, two], { humanFallback: true }));
    assert.equal(run.status, "finished");
    const info = engine.inspect(run.runId);
    assert.deepEqual(nodeIds(info), ["support-level-0", "support-check-0"]);
    assert.deepEqual(rows(info, "escalation"), [{ nodeId: "support-check-0", iteration: 0, escalated: false, fromLevel: 0, toLevel: 1 }]);
    assert.equal(info.nodes[0].label, "Tier 1");
    assert.deepEqual([one.calls, two.calls], [1, 0]);
    assert.match(one.prompts[0], /Resolve the ticket: my invoice is wrong\./);
  });

  test("escalateIf and a failed level escalate; after the last level a person decides, in escalationOutput", async (t) => {
    const engine = newEngine(t);
    const levels = [agent({ answer: "not sure", confidence: 0.3 }), agent(new Error("model overloaded")), agent({ answer: "maybe", confidence: 0.5 })];
    const run = await engine.run(chain(levels, { humanFallback: true, humanRequest: { title: "Take the ticket?", summary: "All tiers are unsure." } }));
    assert.equal(run.status, "waiting-approval");
    let info = engine.inspect(run.runId);
    assert.equal(nodeState(info, "support-level-1"), "failed", "a failed level lets the chain go on (continueOnFail)");
    const [gate] = engine.pendingApprovals({ runId: run.runId });
    assert.deepEqual([gate.nodeId, gate.title, gate.summary], ["support-human-fallback", "Take the ticket?", "All tiers are unsure."]);
    assert.equal((await (await engine.approve(run.runId, { decidedBy: "bob", note: "I reissued it" })).done).status, "finished");
    info = engine.inspect(run.runId);
    assert.deepEqual(nodeIds(info), [
      "support-level-0", "support-check-0", "support-level-1", "support-check-1", "support-level-2", "support-check-2", "support-human-fallback",
    ]);
    assert.deepEqual(
      rows(info, "escalation").map((r) => [r.nodeId, r.escalated ?? r.approved, r.toLevel ?? r.decidedBy]),
      [["support-check-0", true, 1], ["support-check-1", true, 2], ["support-check-2", true, 3], ["support-human-fallback", true, "bob"]],
    );
    assert.deepEqual(levels.map((l) => l.calls), [1, 1, 1]);
  });

  test("without humanFallback the last level ends the chain; a denied fallback is recorded and the run goes on", async (t) => {
    const engine = newEngine(t);
    const unsure = () => agent({ answer: "?", confidence: 0.1 });
    const plain = await engine.run(chain([unsure(), unsure()]));
    assert.equal(plain.status, "finished");
    assert.deepEqual(nodeIds(engine.inspect(plain.runId)), ["support-level-0", "support-check-0", "support-level-1"]);

    const denied = await engine.run(chain([unsure()], { humanFallback: true }));
    const [gate] = engine.pendingApprovals({ runId: denied.runId });
    assert.deepEqual([gate.title, gate.summary], ["Escalation requires human review", "All 1 automated levels have been exhausted."]);
    assert.equal((await (await engine.deny(denied.runId, { decidedBy: "bob" })).done).status, "finished");
    assert.equal(rows(engine.inspect(denied.runId), "escalation").find((r) => r.nodeId === "support-human-fallback").approved, false);
  });

  test("props are checked: levels, their keys, and an escalationOutput that cannot hold what the chain writes", async (t) => {
    const engine = newEngine(t);
    const one = agent({ answer: "a", confidence: 1 });
    const run = (props) => engine.run(s.smithers(() => h(Workflow, {}, h(EscalationChain, { escalationOutput: s.outputs.escalation, levels: [{ agent: one, output: s.outputs.tier }], ...props }, "p"))));
    await assert.rejects(run({ levels: [] }), (e) => e.code === "INVALID_PROP" && e.details.prop === "levels");
    await assert.rejects(run({ levels: [{ agent: one, output: s.outputs.tier, escalateWhen: () => true }] }), (e) => e.code === "UNSUPPORTED_PROP" && e.details.prop === "levels[].escalateWhen");
    await assert.rejects(run({ maxLevels: 2 }), (e) => e.code === "UNSUPPORTED_PROP" && e.details.prop === "maxLevels");
    // Checks only: a schema of the check's fields is enough; with a human fallback it is not.
    const checks = { escalationOutput: s.outputs.checksOnly };
    assert.equal((await run(checks)).status, "finished");
    await assert.rejects(run({ ...checks, humanFallback: true }), (e) => e.code === "INVALID_PROP" && /requires escalated, fromLevel, toLevel/.test(e.message));
  });
});

// ------------------------------------------------------------------ the CLI as Smithers' docs write it

describe("CLI forms from Smithers' docs", () => {
  test("up … --resume true / --resume <runId> / --resume false; approve <runId> <nodeId>", async (t) => {
    const b = sandbox();
    t.after(() => b.cleanup());
    const PUBLISH = join(EXAMPLES, "publish-approval.tsx");
    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "p1"], { db: b.db });
    const rec = await expectExit(assert, 0, ["approve", "p1", "publish-approval", "--no-resume", "--by", "ann"], { db: b.db });
    assert.match(rec.stdout, /^approved publish-approval in run p1 by ann\nrun p1: running\n/);
    const resumed = await expectExit(assert, 0, ["up", PUBLISH, "--run-id", "p1", "--resume", "true"], { db: b.db });
    assert.match(resumed.stdout, /^run p1: finished$/m);

    await expectExit(assert, 3, ["up", PUBLISH, "--run-id", "p2"], { db: b.db });
    await expectExit(assert, 0, ["deny", "p2", "publish-approval", "--no-resume"], { db: b.db });
    await expectExit(assert, 0, ["up", PUBLISH, "--resume", "p2"], { db: b.db });
    await expectExit(assert, 0, ["up", PUBLISH, "--resume=true", "--run-id", "p2"], { db: b.db }); // an ended run: its status

    // --resume false starts a run.
    const fresh = await expectExit(assert, 3, ["up", PUBLISH, "--resume", "false", "--run-id", "p3"], { db: b.db });
    assert.match(fresh.stdout, /^run p3: waiting-approval$/m);
    const both = await expectExit(assert, 4, ["approve", "p3", "publish-approval", "--node", "other"], { db: b.db });
    assert.match(both.stderr, /USAGE: the node is given twice/);
  });
});
