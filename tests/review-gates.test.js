// Dagu-style review gates: the acceptance scenarios and sharp edges of
// shared/reference/dagu.md §4.4 and §6, ported. Each workflow is a .tsx file written to a
// temp dir; its command tasks run there (a command's cwd is its workflow's folder) and leave
// marker files. Some scenarios go through the Node API in this process, the others through
// the CLI as child processes; the database is read back through the Node API.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { esc, expectExit, hasSqlite3, inspectRun, listRuns, outputsOf, sandbox, smithers, sql, withEngine } from "./helpers/cli.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

const HEADER = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Loop, Parallel, Sequence, Task, approvalDecisionSchema, approvalDecisionWithInputsSchema, commandResultSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";
`;

/**
 * A temp dir for one test (removed when it ends) with helpers to write workflows and scripts
 * into it and read what their commands left there.
 */
function box(t) {
  const b = sandbox("smithers-review-");
  t.after(() => b.cleanup());
  const path = (name) => join(b.dir, name);
  return {
    ...b,
    path,
    /** A workflow file: HEADER + `body`. */
    workflow: (name, body) => b.write(name, HEADER + body),
    /** A file's text, or null when it does not exist. */
    read: (name) => (existsSync(path(name)) ? readFileSync(path(name), "utf8") : null),
    /** The lines of `marks.log`, which the workflows' commands append to. */
    marks: () => (existsSync(path("marks.log")) ? readFileSync(path("marks.log"), "utf8").split("\n").filter(Boolean) : []),
    /** An engine on the box's database, closed when the test ends. */
    engine() {
      const engine = new SmithersEngine({ dbPath: b.db });
      t.after(() => engine.close());
      return engine;
    },
  };
}

const approvalOf = (info, nodeId) => info.approvals.find((a) => a.nodeId === nodeId);
const nodeOf = (info, nodeId) => info.nodes.find((n) => n.nodeId === nodeId);
const states = (info) => Object.fromEntries(info.nodes.map((n) => [n.nodeId, n.state]));
const outputOf = (info, nodeId) => info.outputs.find((o) => o.nodeId === nodeId)?.value;
/** What a refused decision must leave as it was: approvals, nodes, outputs, event count. */
const recorded = (engine, runId) => {
  const { run, nodes, approvals, outputs } = engine.inspect(runId);
  return { run, nodes, approvals: approvals.map(({ waitingMs: _w, ...a }) => a), outputs, events: engine.events(runId).length };
};
/** A SmithersError with `code`, for assert.rejects / assert.throws. */
const code = (expected, check = () => {}) => (e) => {
  assert.equal(e?.code, expected, e?.stack ?? String(e));
  check(e);
  return true;
};

// ---------------------------------------------------------------- workflows

/**
 * A reviewed plan with declared inputs (APPROVED_BY required) and two steps after it, next
 * to a plain gate whose own step is NOT downstream of the review.
 */
const INPUTS = `
const { Workflow, smithers, outputs } = createSmithers({
  cmd: commandResultSchema,
  seen: z.object({ inputs: z.record(z.string(), z.string()) }),
  gate: approvalDecisionSchema,
});
export default smithers((ctx) => {
  const other = ctx.outputMaybe(outputs.gate, { nodeId: "other-gate" });
  return (
    <Workflow name="inputs">
      <Parallel>
        <Sequence>
          <Task id="plan" output={outputs.cmd} command="echo plan"
            approval={{ prompt: "Apply the plan?", input: ["APPROVED_BY", "MAINTENANCE_WINDOW"], required: ["APPROVED_BY"] }} />
          <Task id="migrate" output={outputs.cmd}
            command={'printf "%s|%s|%s|%s|%s|%s" "$APPROVED_BY" "\${MAINTENANCE_WINDOW-unset}" "$HOME" "$PATH" "$SMITHERS_RUN_ID" "$SMITHERS_NODE_ID"'} />
          <Task id="js" output={outputs.seen}>{(c: any) => ({ inputs: { ...(c.approvalInputs ?? {}) } })}</Task>
        </Sequence>
        <Sequence>
          <Approval id="other-gate" output={outputs.gate} request={{ title: "Other?" }} />
          {other ? <Task id="unrelated" output={outputs.cmd} command={'printf "%s" "\${APPROVED_BY-unset}"'} /> : null}
        </Sequence>
      </Parallel>
    </Workflow>
  );
});
`;

/** A reviewed command step (draft.sh) with a step after it, next to a reviewed JS step. */
const PUSHBACK = `
const { Workflow, smithers, outputs } = createSmithers({
  cmd: commandResultSchema,
  draft: z.object({ text: z.string(), round: z.number(), history: z.number(), by: z.string() }),
});
export default smithers(() => (
  <Workflow name="pushback">
    <Parallel>
      <Sequence>
        <Task id="draft" output={outputs.cmd} command="sh ./draft.sh" approval={{ prompt: "Good draft?", input: ["FEEDBACK"] }} />
        <Task id="publish" output={outputs.cmd} command={'echo "publish feedback=\${FEEDBACK:-none}"'} />
      </Sequence>
      <Task id="js-draft" output={outputs.draft} approval={{ prompt: "Good JS draft?", input: ["FEEDBACK"] }}>
        {(c: any) => ({
          text: c.pushBack?.inputs?.FEEDBACK ?? "none",
          round: c.pushBack?.iteration ?? 1,
          history: c.pushBack?.history?.length ?? 0,
          by: c.pushBack?.by ?? "",
        })}
      </Task>
    </Parallel>
  </Workflow>
));
`;
const DRAFT_SH = `round=\${SMITHERS_PUSHBACK_ITERATION:-1}
echo "draft round $round feedback=\${FEEDBACK:-none}"
if [ -n "\${SMITHERS_PUSHBACK_PREVIOUS_STDOUT_FILE:-}" ]; then
  echo "previous: $(head -n 1 "$SMITHERS_PUSHBACK_PREVIOUS_STDOUT_FILE")"
fi
printf '%s' "\${SMITHERS_PUSHBACK:-}" > "pushback.$round.json"
`;

/** Two reviewed steps in parallel, each with a dependent; handlers log to marks.log. */
const TWO_REVIEWS = `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="two-reviews"
    onWait={'echo "wait $SMITHERS_WAITING_NODES" >> marks.log'}
    onFailure={'echo "failure $SMITHERS_FAILED_NODE" >> marks.log; printf "%s" "$SMITHERS_RUN_ERROR" > run-error.json'}>
    <Parallel>
      <Sequence>
        <Task id="gate-a" output={outputs.cmd} command="echo gate-a >> marks.log; echo a" approval={{ prompt: "A?" }} />
        <Task id="after-a" output={outputs.cmd} command="echo after-a >> marks.log" />
      </Sequence>
      <Sequence>
        <Task id="gate-b" output={outputs.cmd} command="echo gate-b >> marks.log; echo b" approval={{ prompt: "B?" }} />
        <Task id="after-b" output={outputs.cmd} command="echo after-b >> marks.log" />
      </Sequence>
    </Parallel>
  </Workflow>
));
`;

/**
 * A reviewed step with a dependent, next to a JS task that holds the run (and the process
 * that drives it) until the file `ctx.input.release` exists (then it writes `<release>.seen`).
 * onFailure logs to failure.log.
 */
const BUSY = `
import { existsSync, writeFileSync } from "node:fs";
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema, done: z.object({ ok: z.boolean() }) });
const waitFor = async (f: string) => {
  while (!existsSync(f)) await new Promise((r) => setTimeout(r, 20));
  writeFileSync(f + ".seen", "");
};
export default smithers((ctx) => (
  <Workflow name="busy" onFailure={'echo "failure $SMITHERS_FAILED_NODE" >> failure.log'}>
    <Parallel>
      <Sequence>
        <Task id="r" output={outputs.cmd} command={'echo "round \${SMITHERS_PUSHBACK_ITERATION:-1} x=\${X:-none}"'} approval={{ prompt: "ok?", input: ["X"] }} />
        <Task id="after" output={outputs.cmd} command="echo after >> after.log" />
      </Sequence>
      <Task id="blocker" output={outputs.done}>{async () => { await waitFor((ctx.input as any).release); return { ok: true }; }}</Task>
    </Parallel>
  </Workflow>
));
`;

// ---------------------------------------------------------------- tests

describe("review gates", { concurrency: 2 }, () => {
  test("approver inputs: required and declared names enforced, nothing recorded when refused; they reach downstream tasks only, never over HOME/PATH/SMITHERS_*", async (t) => {
    const b = box(t);
    const file = b.workflow("inputs.tsx", INPUTS);
    const engine = b.engine();
    const started = await engine.run(file, { runId: "in" });
    assert.equal(started.status, "waiting-approval");
    const pending = engine.pendingApprovals({ runId: "in" });
    assert.deepEqual(pending.map((a) => [a.nodeId, a.kind]).sort(), [["other-gate", "gate"], ["plan", "review"]]);
    const plan = pending.find((a) => a.nodeId === "plan");
    // The declaration round-trips (Dagu ApprovalFieldWithInputConfig).
    assert.deepEqual([plan.prompt, plan.input, plan.required, plan.round], ["Apply the plan?", ["APPROVED_BY", "MAINTENANCE_WINDOW"], ["APPROVED_BY"], 1]);

    const before = recorded(engine, "in");
    await assert.rejects(
      engine.approve("in", { nodeId: "plan", inputs: { MAINTENANCE_WINDOW: "sat" }, decidedBy: "alice" }),
      code("MISSING_REQUIRED_INPUTS", (e) => assert.deepEqual(e.details.missing, ["APPROVED_BY"])),
    );
    await assert.rejects(
      engine.approve("in", { nodeId: "plan", inputs: { APPROVED_BY: " \t " } }),
      code("MISSING_REQUIRED_INPUTS"),
      "blank counts as missing",
    );
    await assert.rejects(
      engine.approve("in", { nodeId: "plan", inputs: { APPROVED_BY: "alice", HOME: "/hijacked", PATH: "/nope", SMITHERS_RUN_ID: "spoofed", EXTRA: "x" } }),
      code("UNDECLARED_INPUT", (e) => {
        assert.deepEqual(e.details.keys, ["EXTRA", "HOME", "PATH", "SMITHERS_RUN_ID"]);
        assert.deepEqual(e.details.allowed, ["APPROVED_BY", "MAINTENANCE_WINDOW"]);
      }),
    );
    // A plain <Approval> declares no inputs: any input is undeclared there.
    await assert.rejects(engine.approve("in", { nodeId: "other-gate", inputs: { APPROVED_BY: "alice" } }), code("UNDECLARED_INPUT"));
    assert.deepEqual(recorded(engine, "in"), before, "the refused decisions recorded nothing");

    const decision = await engine.approve("in", { nodeId: "plan", inputs: { APPROVED_BY: "alice" }, decidedBy: "alice" });
    assert.deepEqual([decision.status, decision.kind, decision.round], ["approved", "review", 1]);
    assert.deepEqual(decision.inputs, { APPROVED_BY: "alice" });
    assert.equal((await decision.done).status, "waiting-approval", "the other gate still waits");
    let info = engine.inspect("in");
    assert.deepEqual(approvalOf(info, "plan").inputs, { APPROVED_BY: "alice" });
    const env = outputOf(info, "migrate").stdout.split("|");
    assert.deepEqual(env, ["alice", "unset", process.env.HOME ?? "", process.env.PATH ?? "", "in", "migrate"]);
    assert.deepEqual(outputOf(info, "js"), { inputs: { APPROVED_BY: "alice" } }, "JS bodies get ctx.approvalInputs");

    // The other branch is not downstream of the review: its step does not see the inputs.
    assert.equal((await (await engine.approve("in", { nodeId: "other-gate" })).done).status, "finished");
    info = engine.inspect("in");
    assert.equal(outputOf(info, "unrelated").stdout, "unset");
  });

  test("inputs that may not be declared are refused when the workflow loads, and no run is created", async (t) => {
    const b = box(t);
    const engine = b.engine();
    const reviewed = (approval) => `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="bad"><Task id="step" output={outputs.cmd} command="true" approval={${approval}} /></Workflow>
));`;
    const cases = [
      ["home.tsx", '{ input: ["HOME"] }', "INVALID_INPUT_NAME"],
      ["run-id.tsx", '{ input: ["SMITHERS_RUN_ID"] }', "INVALID_INPUT_NAME"],
      ["required.tsx", '{ input: ["A"], required: ["B"] }', "REQUIRED_NOT_IN_INPUT"],
    ];
    for (const [name, approval, expected] of cases) {
      await assert.rejects(engine.run(b.workflow(name, reviewed(approval))), code(expected), name);
    }
    assert.deepEqual(engine.listRuns(), []);
    // The CLI says the same, exit 1.
    const r = await expectExit(assert, 1, ["up", b.path("home.tsx"), "--json"], { db: b.db });
    assert.equal(r.json.error.code, "INVALID_INPUT_NAME");
    assert.deepEqual(listRuns(b.db), []);
  });

  test("push-back re-runs the step with the feedback in its env; rounds count up; history keeps who, when, inputs and output; other gates undisturbed", async (t) => {
    const b = box(t);
    b.write("draft.sh", DRAFT_SH);
    const file = b.workflow("pushback.tsx", PUSHBACK);
    const engine = b.engine();
    assert.equal((await engine.run(file, { runId: "pb" })).status, "waiting-approval");
    const jsBefore = engine.pendingApprovals({ runId: "pb", nodeId: "js-draft" })[0];
    assert.deepEqual([jsBefore.status, jsBefore.round], ["requested", 1]);
    assert.equal(outputOf(engine.inspect("pb"), "draft").stdout, "draft round 1 feedback=none\n");

    const first = await engine.pushBack("pb", { nodeId: "draft", inputs: { FEEDBACK: "first pass" }, note: "tighten it", decidedBy: "reviewer" });
    assert.deepEqual([first.status, first.round], ["pushed-back", 1]);
    assert.equal((await first.done).status, "waiting-approval");
    let info = engine.inspect("pb");
    assert.equal(outputOf(info, "draft").stdout, "draft round 2 feedback=first pass\nprevious: draft round 1 feedback=none\n");
    let draft = approvalOf(info, "draft");
    assert.deepEqual([draft.status, draft.round], ["requested", 2]);
    assert.deepEqual(
      draft.history.map((h) => [h.iteration, h.status, h.by, h.inputs, h.note, h.output.stdout]),
      [[1, "pushed-back", "reviewer", { FEEDBACK: "first pass" }, "tighten it", "draft round 1 feedback=none\n"]],
    );
    assert.match(draft.history[0].at, ISO);
    // SMITHERS_PUSHBACK, as the step saw it.
    const env2 = JSON.parse(b.read("pushback.2.json"));
    assert.equal(env2.iteration, 2);
    assert.equal(env2.by, "reviewer");
    assert.equal(env2.at, draft.history[0].at);
    assert.deepEqual(env2.inputs, { FEEDBACK: "first pass" });
    assert.equal(env2.history.length, 1);
    assert.equal(env2.previousStdoutFile, draft.history[0].stdoutPath);
    assert.equal(b.read("pushback.1.json"), "", "round 1 had no push-back");
    // The JS review was not disturbed: same round, same request, not re-run.
    const js = approvalOf(info, "js-draft");
    assert.deepEqual([js.status, js.round, js.requestedAt], ["requested", 1, jsBefore.requestedAt]);
    assert.equal(nodeOf(info, "js-draft").attempts, 1);
    assert.equal(nodeOf(info, "publish").state, "pending");

    const second = await engine.pushBack("pb", { nodeId: "draft", inputs: { FEEDBACK: "second pass" }, decidedBy: "reviewer2" });
    assert.equal(second.round, 2);
    assert.equal((await second.done).status, "waiting-approval");
    info = engine.inspect("pb");
    draft = approvalOf(info, "draft");
    assert.equal(draft.round, 3);
    assert.deepEqual(draft.history.map((h) => [h.iteration, h.by, h.inputs.FEEDBACK, h.output.stdout.split("\n")[0]]), [
      [1, "reviewer", "first pass", "draft round 1 feedback=none"],
      [2, "reviewer2", "second pass", "draft round 2 feedback=first pass"],
    ]);
    const env3 = JSON.parse(b.read("pushback.3.json"));
    assert.deepEqual([env3.iteration, env3.by, env3.inputs.FEEDBACK, env3.history.length], [3, "reviewer2", "second pass", 2]);
    assert.deepEqual(env3.history.map((h) => [h.iteration, h.by]), [[1, "reviewer"], [2, "reviewer2"]]);
    assert.equal(nodeOf(info, "draft").attempts, 3);
    assert.equal(approvalOf(info, "js-draft").round, 1);

    // Approve: the step after it sees the last push-back's inputs.
    assert.equal((await (await engine.approve("pb", { nodeId: "draft", decidedBy: "lead" })).done).status, "waiting-approval");
    assert.equal(outputOf(engine.inspect("pb"), "publish").stdout, "publish feedback=second pass\n");

    // A JS step pushed back gets ctx.pushBack.
    assert.equal((await (await engine.pushBack("pb", { nodeId: "js-draft", inputs: { FEEDBACK: "js please" }, decidedBy: "eve" })).done).status, "waiting-approval");
    assert.deepEqual(outputOf(engine.inspect("pb"), "js-draft"), { text: "js please", round: 2, history: 1, by: "eve" });
    assert.equal((await (await engine.approve("pb", { nodeId: "js-draft" })).done).status, "finished");

    info = engine.inspect("pb");
    assert.deepEqual(approvalOf(info, "draft").history.map((h) => [h.iteration, h.status]), [
      [1, "pushed-back"],
      [2, "pushed-back"],
      [3, "approved"],
    ]);
    assert.deepEqual(engine.logs("pb", { nodeId: "draft" }).map((a) => [a.attempt, a.stdout.split("\n")[0]]), [
      [1, "draft round 1 feedback=none"],
      [2, "draft round 2 feedback=first pass"],
      [3, "draft round 3 feedback=second pass"],
    ]);
    // No iteration cap, but no push-back once approved.
    await assert.rejects(engine.pushBack("pb", { nodeId: "draft" }), code("ALREADY_DECIDED"));
  });

  test("reject with a reason: node rejected, run rejected (APPROVAL_REJECTED), dependents cancelled and never run, onFailure runs; the rejection sticks (CLI)", async (t) => {
    const b = box(t);
    const file = b.workflow("two.tsx", TWO_REVIEWS);
    const { db } = b;
    await expectExit(assert, 3, ["up", file, "--run-id", "rj"], { db });
    assert.deepEqual(b.marks().sort(), ["gate-a", "gate-b", "wait gate-a,gate-b"]);

    // Reject gate-a, recorded only; then try to approve / push back gate-b.
    const rej = await expectExit(assert, 0, ["reject", "rj", "--node", "gate-a", "--reason", "wrong numbers", "--by", "carol", "--no-resume"], { db });
    assert.match(rej.stdout, /^rejected gate-a in run rj by carol$/m);
    const before = withEngine(db, (e) => recorded(e, "rj"));
    for (const verb of ["approve", "push-back", "deny"]) {
      const r = await expectExit(assert, 1, [verb, "rj", "--node", "gate-b", "--json"], { db });
      assert.equal(r.json.error.code, "RUN_REJECTED", verb);
      assert.equal(r.json.error.details.nodeId, "gate-a");
    }
    assert.deepEqual(withEngine(db, (e) => recorded(e, "rj")), before, "RUN_REJECTED records nothing");
    assert.equal(approvalOf(before, "gate-b").status, "requested");

    const resumed = await expectExit(assert, 1, ["resume", "rj"], { db });
    assert.match(resumed.stdout, /^run rj: rejected$/m);
    assert.match(resumed.stdout, /^  error: APPROVAL_REJECTED: gate-a was rejected by carol: wrong numbers$/m);
    let info = inspectRun(db, "rj");
    assert.equal(info.run.status, "rejected");
    assert.equal(info.run.error.code, "APPROVAL_REJECTED");
    assert.deepEqual(states(info), { "gate-a": "rejected", "after-a": "cancelled", "gate-b": "cancelled", "after-b": "cancelled" });
    const a = approvalOf(info, "gate-a");
    assert.deepEqual([a.status, a.decidedBy, a.reason], ["rejected", "carol", "wrong numbers"]);
    assert.match(a.decidedAt, ISO);
    assert.deepEqual(b.marks().filter((m) => m.startsWith("after")), [], "dependents never ran");
    assert.equal(b.marks().at(-1), "failure gate-a", "onFailure ran");
    assert.equal(JSON.parse(b.read("run-error.json")).code, "APPROVAL_REJECTED");
    const events = withEngine(db, (e) => e.events("rj")).map((e) => e.type);
    assert.ok(events.includes("ApprovalRejected") && events.includes("NodeRejected"), events.join(","));

    // The withdrawn gate cannot be decided; resuming again re-runs nothing.
    const late = await expectExit(assert, 1, ["approve", "rj", "--node", "gate-b", "--json"], { db });
    assert.equal(late.json.error.code, "NOT_WAITING");
    const marks = b.marks();
    await expectExit(assert, 1, ["resume", "rj"], { db });
    assert.deepEqual(b.marks(), marks);
    info = inspectRun(db, "rj");
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.attempts]).sort(), [["after-a", 0], ["after-b", 0], ["gate-a", 1], ["gate-b", 1]]);
    if (hasSqlite3()) {
      assert.deepEqual(sql(db, "SELECT node_id, state FROM _smithers_nodes WHERE run_id = 'rj' ORDER BY node_id"), [
        { node_id: "after-a", state: "cancelled" },
        { node_id: "after-b", state: "cancelled" },
        { node_id: "gate-a", state: "rejected" },
        { node_id: "gate-b", state: "cancelled" },
      ]);
    }
  });

  test("parallel review gates move independently: approving one runs its branch to its end while the other waits; onWait runs once per wait (CLI)", async (t) => {
    const b = box(t);
    const file = b.workflow("two.tsx", TWO_REVIEWS);
    const { db } = b;
    await expectExit(assert, 3, ["up", file, "--run-id", "par"], { db });
    assert.deepEqual(b.marks().filter((m) => m.startsWith("wait")), ["wait gate-a,gate-b"]);

    const one = await expectExit(assert, 0, ["approve", "par", "--node", "gate-b", "--by", "bob"], { db });
    assert.match(one.stdout, /^run par: waiting-approval$/m);
    assert.match(one.stdout, /^  waiting for approval: gate-a \(review, round 1\) — A\?$/m);
    let info = inspectRun(db, "par");
    assert.deepEqual(states(info), { "gate-a": "waiting-approval", "after-a": "pending", "gate-b": "finished", "after-b": "finished" });
    assert.deepEqual(b.marks().filter((m) => m.startsWith("after")), ["after-b"]);
    assert.deepEqual(b.marks().filter((m) => m.startsWith("wait")), ["wait gate-a,gate-b", "wait gate-a"]);
    assert.equal(nodeOf(info, "gate-a").attempts, 1, "the waiting step did not run again");

    const two = await expectExit(assert, 0, ["approve", "par", "--by", "alice"], { db });
    assert.match(two.stdout, /^approved gate-a in run par by alice$/m);
    info = inspectRun(db, "par");
    assert.equal(info.run.status, "finished");
    assert.deepEqual(b.marks().filter((m) => m.startsWith("after")).sort(), ["after-a", "after-b"]);
    assert.equal(b.marks().filter((m) => m.startsWith("wait")).length, 2, "no wait after the last decision");
    assert.equal(b.marks().filter((m) => m.startsWith("failure")).length, 0);
    const handlers = withEngine(db, (e) => e.events("par")).filter((e) => e.type.startsWith("Handler"));
    assert.deepEqual(handlers.map((e) => [e.type, e.handler]), [
      ["HandlerStarted", "onWait"],
      ["HandlerFinished", "onWait"],
      ["HandlerStarted", "onWait"],
      ["HandlerFinished", "onWait"],
    ]);
  });

  test("gates in series are handled one at a time; a failing onWait handler leaves the run waiting (HandlerFailed)", async (t) => {
    const b = box(t);
    const file = b.workflow(
      "serial.tsx",
      `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="serial" onWait={'echo "handler saw $SMITHERS_WAITING_NODES" >&2; exit 5'}>
    <Sequence>
      <Task id="first" output={outputs.cmd} command="echo first" approval={{ prompt: "First?" }} />
      <Task id="second" output={outputs.cmd} command="echo second" approval={{ prompt: "Second?" }} />
      <Task id="final" output={outputs.cmd} command="echo final" />
    </Sequence>
  </Workflow>
));
`,
    );
    const engine = b.engine();
    assert.equal((await engine.run(file, { runId: "se" })).status, "waiting-approval");
    let info = engine.inspect("se");
    assert.equal(info.run.status, "waiting-approval", "the handler's failure changes nothing");
    assert.deepEqual(states(info), { first: "waiting-approval", second: "pending", final: "pending" });
    assert.deepEqual(engine.pendingApprovals({ runId: "se" }).map((a) => a.nodeId), ["first"]);
    const failed = engine.events("se").filter((e) => e.type === "HandlerFailed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0].handler, "onWait");
    assert.equal(failed[0].exitCode, 5);
    assert.match(failed[0].stderr, /handler saw first/);

    assert.equal((await (await engine.approve("se", { nodeId: "first" })).done).status, "waiting-approval");
    info = engine.inspect("se");
    assert.deepEqual(states(info), { first: "finished", second: "waiting-approval", final: "pending" });
    assert.equal(engine.events("se").filter((e) => e.type === "HandlerFailed").length, 2, "once per wait");
    assert.equal((await (await engine.approve("se", { nodeId: "second" })).done).status, "finished");
    assert.equal(outputOf(engine.inspect("se"), "final").stdout, "final\n");
  });

  test("a JS onWait handler that throws is recorded as HandlerFailed and the run still waits", async (t) => {
    const b = box(t);
    const file = b.workflow(
      "throws.tsx",
      `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="throws" onWait={(info: any) => { throw new Error("pager is down for " + info.waitingNodes.join(",")); }}>
    <Task id="step" output={outputs.cmd} command="echo hi" approval={{ prompt: "Ok?" }} />
  </Workflow>
));
`,
    );
    const engine = b.engine();
    assert.equal((await engine.run(file, { runId: "th" })).status, "waiting-approval");
    const failed = engine.events("th").filter((e) => e.type === "HandlerFailed");
    assert.deepEqual(failed.map((e) => [e.handler, e.error]), [["onWait", "pager is down for step"]]);
    assert.equal(engine.getRun("th").status, "waiting-approval");
    assert.equal((await (await engine.approve("th", {})).done).status, "finished");
  });

  test("a command's non-zero exit fails the task with its exit code; retries make two attempts, each with its own logs (CLI)", async (t) => {
    const b = box(t);
    const file = b.workflow(
      "retries.tsx",
      `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="retries">
    <Sequence>
      <Task id="recovers" output={outputs.cmd} retries={1}
        command={'echo "try $SMITHERS_ATTEMPT"; if [ "$SMITHERS_ATTEMPT" -lt 2 ]; then echo "first try fails" >&2; exit 1; fi'} />
      <Task id="flaky" output={outputs.cmd} retries={1} command={'echo "out $SMITHERS_ATTEMPT"; echo "err $SMITHERS_ATTEMPT" >&2; exit 7'} />
      <Task id="never" output={outputs.cmd} command="echo never >> marks.log" />
    </Sequence>
  </Workflow>
));
`,
    );
    const { db } = b;
    const up = await expectExit(assert, 1, ["up", file, "--run-id", "rt"], { db });
    assert.match(up.stdout, /^  error: COMMAND_FAILED: .*exited with code 7: err 2$/m);
    const info = inspectRun(db, "rt");
    assert.equal(info.run.error.code, "COMMAND_FAILED");
    assert.match(info.run.error.message, /exited with code 7/);
    assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state, n.attempts]), [
      ["recovers", "finished", 2],
      ["flaky", "failed", 2],
      ["never", "cancelled", 0],
    ]);
    assert.match(nodeOf(info, "flaky").error.message, /exited with code 7: err 2/);
    assert.deepEqual(outputOf(info, "recovers"), { exitCode: 0, stdout: "try 2\n", stderr: "" });
    assert.equal(outputOf(info, "flaky"), undefined, "a failed command writes no output row");
    assert.deepEqual(b.marks(), []);

    const [out, err, one, json] = await Promise.all([
      smithers(["logs", "rt"], { db }),
      smithers(["logs", "rt", "--node", "flaky", "--stderr"], { db }),
      smithers(["logs", "rt", "--node", "recovers", "--attempt", "1", "--both"], { db }),
      smithers(["logs", "rt", "--json"], { db }),
    ]);
    assert.equal(
      out.stdout,
      [
        "== recovers (attempt 1, exit 1) ==\ntry 1\n",
        "== recovers (attempt 2, exit 0) ==\ntry 2\n",
        "== flaky (attempt 1, exit 7) ==\nout 1\n",
        "== flaky (attempt 2, exit 7) ==\nout 2\n",
      ].join(""),
    );
    assert.equal(err.stdout, "== flaky (attempt 1, exit 7) stderr ==\nerr 1\n== flaky (attempt 2, exit 7) stderr ==\nerr 2\n");
    assert.equal(one.stdout, "== recovers (attempt 1, exit 1) ==\n-- stdout --\ntry 1\n-- stderr --\nfirst try fails\n");
    assert.deepEqual(json.json.attempts.map((a) => [a.nodeId, a.attempt, a.state, a.exitCode, a.stderr]), [
      ["recovers", 1, "failed", 1, "first try fails\n"],
      ["recovers", 2, "finished", 0, ""],
      ["flaky", 1, "failed", 7, "err 1\n"],
      ["flaky", 2, "failed", 7, "err 2\n"],
    ]);
    // Per-attempt files: <db stem>.logs/<runId>/<nodeId>.<iteration>.<attempt>.{stdout,stderr}.log
    for (const a of json.json.attempts) {
      assert.equal(a.stdoutPath, join(b.dir, "smithers.logs", "rt", `${a.nodeId}.0.${a.attempt}.stdout.log`));
      assert.equal(a.stderrPath, join(b.dir, "smithers.logs", "rt", `${a.nodeId}.0.${a.attempt}.stderr.log`));
      assert.equal(readFileSync(a.stderrPath, "utf8"), a.stderr);
    }
  });

  test("a command over its timeoutMs fails with TASK_TIMEOUT; its log keeps what it wrote", async (t) => {
    const b = box(t);
    const file = b.workflow(
      "slow.tsx",
      `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="slow">
    <Task id="slow" output={outputs.cmd} timeoutMs={300} command="echo started; sleep 30; echo never" approval={{ prompt: "Never asked" }} />
  </Workflow>
));
`,
    );
    const engine = b.engine();
    const startedAt = Date.now();
    const result = await engine.run(file, { runId: "to" });
    assert.ok(Date.now() - startedAt < 15_000, "the process was stopped");
    assert.equal(result.status, "failed");
    assert.equal(result.error.code, "TASK_TIMEOUT");
    assert.deepEqual(engine.pendingApprovals({ runId: "to" }), [], "a step that failed never waits");
    const [attempt] = engine.logs("to");
    assert.equal(attempt.stdout, "started\n");
    assert.equal(attempt.state, "failed");
    const r = await expectExit(assert, 0, ["logs", "to"], { db: b.db });
    assert.match(r.stdout, /^== slow \(attempt 1, (exit -?\d+|failed)\) ==\nstarted\n$/);
  });

  test("reviews in a loop: each iteration is reviewed on its own, its inputs stay in it; a parse=json step that prints no JSON fails and never waits (CLI)", async (t) => {
    const b = box(t);
    const file = b.workflow(
      "loop.tsx",
      `
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema, j: z.object({ n: z.number() }) });
export default smithers((ctx) => (
  <Workflow name="loop">
    <Parallel>
      <Loop id="l" until={ctx.iterationCount(outputs.cmd, "check") >= 2} maxIterations={3}>
        <Task id="check" output={outputs.cmd} command={'echo "iteration $SMITHERS_ITERATION x=\${X-unset}"'} approval={{ prompt: "Looks right?", input: ["X"] }} />
      </Loop>
      <Task id="bad-json" output={outputs.j} parse="json" command="echo not-json" approval={{ prompt: "never asked" }} continueOnFail />
    </Parallel>
  </Workflow>
));
`,
    );
    const { db } = b;
    const up = await expectExit(assert, 3, ["up", file, "--run-id", "lp"], { db });
    assert.match(up.stdout, /^  waiting for approval: check \(review, round 1\) — Looks right\?$/m);
    assert.doesNotMatch(up.stdout, /bad-json/);
    const bad = await expectExit(assert, 0, ["logs", "lp", "--node", "bad-json"], { db });
    assert.equal(bad.stdout, "== bad-json (attempt 1, exit 0, failed) ==\nnot-json\n", "exit 0, but the attempt failed");
    assert.equal(nodeOf(inspectRun(db, "lp"), "bad-json").state, "failed");

    const first = await expectExit(assert, 0, ["approve", "lp", "--input", "X=1"], { db });
    assert.match(first.stdout, /^  waiting for approval: check \(iteration 1, review, round 1\) — Looks right\?$/m);
    assert.match(first.stdout, new RegExp(`^    its output: npx smithers logs lp --node check --iteration 1 --db ${esc(db)}$`, "m"));
    const pushed = await expectExit(assert, 0, ["push-back", "lp", "--node", "check", "--iteration", "1", "--input", "X=2"], { db });
    assert.match(pushed.stdout, /^pushed-back check \(iteration 1, round 1\) in run lp by /m);
    const [it0, it1] = await Promise.all([
      smithers(["logs", "lp", "--node", "check", "--iteration", "0"], { db }),
      smithers(["logs", "lp", "--node", "check", "--iteration", "1"], { db }),
    ]);
    assert.equal(it0.stdout, "== check (attempt 1, exit 0) ==\niteration 0 x=unset\n");
    assert.equal(
      it1.stdout,
      "== check [iteration 1] (attempt 1, exit 0) ==\niteration 1 x=unset\n== check [iteration 1] (attempt 2, exit 0) ==\niteration 1 x=2\n",
      "X=1 approved in iteration 0 does not reach iteration 1; its own push-back does",
    );
    const done = await expectExit(assert, 0, ["approve", "lp", "--node", "check", "--iteration", "1"], { db });
    assert.match(done.stdout, /^approved check \(iteration 1, round 2\) in run lp by /m);
    const info = inspectRun(db, "lp");
    assert.deepEqual(info.approvals.map((a) => [a.nodeId, a.iteration, a.status, a.round, a.inputs]), [
      ["check", 0, "approved", 1, { X: "1" }],
      ["check", 1, "approved", 2, {}],
    ]);
  });

  test("decisions on a run another process drives: that process picks up the push-back (re-runs the step) and the rejection (ends the run) (CLI)", async (t) => {
    const b = box(t);
    const file = b.workflow("busy.tsx", BUSY);
    const { db } = b;
    const release = b.path("release");
    const waitUntil = async (what, predicate) => {
      for (let k = 0; k < 600; k++) {
        if (existsSync(db) && withEngine(db, predicate)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.fail(`timed out waiting for ${what}`);
    };
    const up = smithers(["up", file, "--run-id", "live", "--input", JSON.stringify({ release })], { db });
    try {
      await waitUntil("the review", (e) => e.pendingApprovals({ runId: "live" }).length === 1);

      const pushed = await expectExit(assert, 0, ["push-back", "live", "--input", "X=1", "--by", "bob"], { db });
      assert.match(pushed.stdout, /^run live is driven by \S+; it picks the decision up$/m);
      await waitUntil("round 2", (e) => e.pendingApprovals({ runId: "live" })[0]?.round === 2);
      assert.equal(outputOf(inspectRun(db, "live"), "r").stdout, "round 2 x=1\n");
      assert.equal(inspectRun(db, "live").run.status, "running", "still driven: the blocker runs");

      const rejected = await expectExit(assert, 0, ["reject", "live", "--reason", "numbers are off", "--by", "carol"], { db });
      assert.match(rejected.stdout, /^rejected r \(round 2\) in run live by carol$/m);
      assert.match(rejected.stdout, /^run live is driven by \S+; it picks the decision up$/m);
      await waitUntil("the run to end rejected", (e) => e.getRun("live").status === "rejected");
    } finally {
      writeFileSync(release, ""); // never leave the child waiting (and before the box is removed)
    }
    const done = await up;
    assert.equal(done.code, 1, done.stdout + done.stderr);
    assert.match(done.stdout, /^run live: rejected$/m);
    const info = inspectRun(db, "live");
    assert.equal(info.run.error.code, "APPROVAL_REJECTED");
    assert.match(info.run.error.message, /^r was rejected by /);
    assert.deepEqual(states(info), { r: "rejected", after: "cancelled", blocker: "cancelled" });
    assert.deepEqual([nodeOf(info, "r").attempts, nodeOf(info, "after").attempts], [2, 0]);
    assert.equal(b.read("after.log"), null, "the dependent never ran");
    assert.equal(b.read("failure.log"), "failure r\n", "onFailure ran in the driving process");
  });

  // A rejection picked up by the process that drives the run (made by another process, or by
  // this engine while it drives) keeps who rejected the step and why (engine.rs reads the
  // node's error in refresh_from_store).
  test("the run's error names who rejected the step and why, also when the driving process picks the rejection up", async (t) => {
    const b = box(t);
    const file = b.workflow("busy.tsx", BUSY);
    const release = b.path("release");
    const engine = b.engine();
    const { done } = await engine.start(file, { runId: "inproc", input: { release } });
    let result;
    try {
      for (let k = 0; k < 600 && engine.pendingApprovals({ runId: "inproc" }).length === 0; k++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const decision = await engine.reject("inproc", { nodeId: "r", reason: "numbers are off", decidedBy: "carol" });
      assert.equal(decision.status, "rejected");
      result = await done;
    } finally {
      // The blocker's body runs in this process: let it end before the box is removed.
      writeFileSync(release, "");
      for (let k = 0; k < 500 && !existsSync(`${release}.seen`); k++) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(result.status, "rejected");
    assert.equal(result.error.code, "APPROVAL_REJECTED");
    assert.equal(result.error.message, "r was rejected by carol: numbers are off");
  });

  test("<Approval input required>: approve --input writes the inputs column and reaches the next command (CLI)", async (t) => {
    const b = box(t);
    const file = b.workflow(
      "ticket.tsx",
      `
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionWithInputsSchema, cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="ticket">
    <Sequence>
      <Approval id="ship" output={outputs.gate} request={{ title: "Ship it?" }} input={["TICKET", "REASON"]} required={["TICKET"]} />
      <Task id="ship-it" output={outputs.cmd} command={'echo "ticket=$TICKET reason=\${REASON:-none}"'} />
    </Sequence>
  </Workflow>
));
`,
    );
    const { db } = b;
    const up = await expectExit(assert, 3, ["up", file, "--run-id", "tk"], { db });
    assert.match(up.stdout, /^  waiting for approval: ship — Ship it\?$/m);
    assert.match(up.stdout, /^  approve: npx smithers approve tk /m, "a plain gate keeps the plain commands");
    assert.match(up.stdout, /^    inputs: TICKET \(required\), REASON; pass them as --input KEY=VALUE$/m);
    const missing = await expectExit(assert, 4, ["approve", "tk", "--json"], { db });
    assert.equal(missing.json.error.code, "MISSING_REQUIRED_INPUTS");
    assert.deepEqual(missing.json.error.details.missing, ["TICKET"]);
    assert.equal(inspectRun(db, "tk").approvals[0].status, "requested");

    await expectExit(assert, 0, ["approve", "tk", "--input", "TICKET=OPS-7", "--by", "alice", "--note", "go"], { db });
    const info = inspectRun(db, "tk");
    const [row] = outputsOf(info, "gate");
    assert.deepEqual(
      { ...row.value, decidedAt: undefined },
      { approved: true, note: "go", decidedBy: "alice", decidedAt: undefined, inputs: { TICKET: "OPS-7" } },
    );
    assert.equal(outputOf(info, "ship-it").stdout, "ticket=OPS-7 reason=none\n");
    const insp = await expectExit(assert, 0, ["inspect", "tk"], { db });
    assert.match(insp.stdout, /^  ship \[0\] approved by alice at \S+: Ship it\? \(note: go\)\n    inputs: TICKET \(required\), REASON\n    approved with: TICKET=OPS-7$/m);
    if (hasSqlite3()) {
      assert.deepEqual(sql(db, "SELECT inputs FROM gate"), [{ inputs: '{"TICKET":"OPS-7"}' }]);
    }
  });
});
