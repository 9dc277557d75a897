// The typed boundary between JS and the core: the vocabulary JS reads from the core
// (contract.js over the binding's contract()), and how the binding's typed calls fail.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { z } from "zod";
import {
  APPROVAL_STATUSES,
  CONTRACT,
  DELIVERY_STATUSES,
  NODE_STATES,
  RUN_STATUSES,
  errorMeta,
  fieldProblem,
  identifierProblem,
  isRunId,
  isTerminal,
  runExitCode,
  scopeCovers,
  snakeCase,
  tableKeyProblem,
} from "../npm/smithers-rs/src/contract.js";
import { createRun } from "../npm/smithers-rs/src/driver.js";
import { Sequence, Task, Workflow, createSmithers, renderWorkflow } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
import { NativeEngine } from "../npm/smithers-rs/src/native.js";
import { freshDir, removeDirs } from "./helpers/durability.js";

after(() => removeDirs());

describe("the contract JS reads from the core", () => {
  test("statuses: every run status and node state, which end a run, and the CLI's exit code for each", () => {
    assert.deepEqual(RUN_STATUSES, ["running", "waiting-approval", "waiting-timer", "finished", "failed", "cancelled", "rejected"]);
    assert.deepEqual(NODE_STATES, ["pending", "in-progress", "waiting-approval", "finished", "failed", "skipped", "cancelled", "rejected"]);
    assert.deepEqual(APPROVAL_STATUSES, ["requested", "approved", "denied", "rejected", "pushed-back", "cancelled"]);
    assert.deepEqual(DELIVERY_STATUSES, ["pending", "sending", "delivered", "failed"]);
    assert.deepEqual(RUN_STATUSES.filter(isTerminal), ["finished", "failed", "cancelled", "rejected"]);
    assert.deepEqual(Object.fromEntries(RUN_STATUSES.map((s) => [s, runExitCode(s)])), {
      running: 1,
      "waiting-approval": 3,
      "waiting-timer": 3,
      finished: 0,
      failed: 1,
      cancelled: 2,
      rejected: 1,
    });
    assert.ok(Object.isFrozen(CONTRACT) && Object.isFrozen(RUN_STATUSES));
  });

  test("error metadata: lookups exit 4 with their HTTP status, conflicts exit 1 with 409, anything else is 1 and 400", () => {
    assert.deepEqual(errorMeta("RUN_NOT_FOUND"), { lookup: true, exitCode: 4, httpStatus: 404, finalForDecision: true });
    assert.deepEqual(errorMeta("AMBIGUOUS_APPROVAL"), { lookup: true, exitCode: 4, httpStatus: 409, finalForDecision: false });
    assert.deepEqual(errorMeta("UNDECLARED_INPUT"), { lookup: false, exitCode: 4, httpStatus: 400, finalForDecision: false });
    assert.deepEqual(errorMeta("ALREADY_DECIDED"), { lookup: false, exitCode: 1, httpStatus: 409, finalForDecision: true });
    assert.deepEqual(errorMeta("DELIVERY_NOT_FOUND"), { lookup: true, exitCode: 4, httpStatus: 404, finalForDecision: false });
    assert.deepEqual([errorMeta("LINK_INVALID").httpStatus, errorMeta("LINK_EXPIRED").httpStatus, errorMeta("LINK_USED").httpStatus], [403, 410, 409]);
    assert.equal(errorMeta("INTERNAL").httpStatus, 500);
    assert.deepEqual(errorMeta("TASK_FAILED"), CONTRACT.otherError);
    assert.deepEqual(CONTRACT.otherError, { lookup: false, exitCode: 1, httpStatus: 400, finalForDecision: false });
  });

  test("scopes, run ids and SQL names follow the core's rules", () => {
    assert.ok(scopeCovers("approve", "read"));
    assert.ok(scopeCovers("deploy:*", "deploy:prod"));
    assert.ok(scopeCovers("admin", "anything"));
    assert.ok(!scopeCovers("read", "approve"));
    assert.ok(!scopeCovers("deploy:staging", "deploy:prod"));

    for (const good of ["r1", "a.b:c-d_e", "..a", "x".repeat(128)]) assert.ok(isRunId(good), good);
    for (const bad of ["", ".", "..", "a/b", "a b", "é", "x".repeat(129), 7, null]) assert.ok(!isRunId(bad), String(bad));

    assert.equal(snakeCase("publishApproval"), "publish_approval");
    assert.equal(snakeCase("HTTPCode"), "http_code");
    assert.equal(identifierProblem("ok_1"), null);
    assert.equal(identifierProblem("1x"), "it must start with a letter");
    assert.equal(identifierProblem(42), "it is not a string");
    assert.match(tableKeyProblem("sqliteMaster"), /reserved/);
    assert.equal(tableKeyProblem("publishApproval"), null);
    assert.match(fieldProblem("runId"), /key columns/);
    assert.deepEqual(CONTRACT.keyColumns, ["run_id", "node_id", "iteration"]);
    assert.ok(CONTRACT.reservedEnv.prefixes.includes("SMITHERS_"));
  });
});

describe("the binding's typed calls", () => {
  const open = () => new NativeEngine(join(freshDir("smithers-boundary-"), "smithers.db"));

  test("a core error is a SmithersError with the core's code and details", () => {
    const native = open();
    try {
      assert.throws(() => native.runSummary("nope"), (e) => e.name === "SmithersError" && e.code === "RUN_NOT_FOUND" && e.details.runId === "nope");
      assert.throws(() => native.approve({ runId: "nope" }), { code: "RUN_NOT_FOUND" });
      assert.throws(() => native.createRun({ runId: "a/b" }), { code: "INVALID_RUN_ID" });
    } finally {
      native.close();
    }
  });

  test("an argument of the wrong type is refused with the call's stable code, and nothing is written", () => {
    const native = open();
    try {
      assert.throws(() => native.approve({ runId: "r", iteration: "1" }), (e) => e.code === "INVALID_DECISION" && e.details.call === "approve");
      assert.throws(() => native.pushBack({ runId: "r", inputs: { k: 1 } }), { code: "INVALID_DECISION" });
      assert.throws(() => native.approve({ runId: "r", decisionJson: "{" }), { code: "INVALID_DECISION" });
      assert.throws(() => native.listRuns({ limit: "5" }), (e) => e.code === "INVALID_ARGUMENT" && e.details.call === "listRuns");
      assert.throws(() => native.createRun({ inputJson: "{not json" }), { code: "INVALID_JSON" });
      assert.throws(() => native.useLink({ linkId: 7 }, 0), (e) => e.code === "INVALID_ARGUMENT" && e.details.call === "useLink");
      assert.throws(() => native.settleDelivery("d", "me", { delivered: "yes" }, 0), { code: "INVALID_ARGUMENT" });
      assert.deepEqual(native.listRuns({}), []);
    } finally {
      native.close();
    }
  });

  test("output rows come out as JSON text: a step carries the rows it wrote, a snapshot every row of the run", async () => {
    const native = open();
    try {
      const { smithers, outputs } = createSmithers({ out: z.object({ v: z.number(), s: z.string() }) });
      const h = (type, props, children) => jsx(type, children === undefined ? props : { ...props, children });
      const workflow = smithers(() =>
        h(Workflow, { name: "static-rows" }, h(Sequence, {}, [h(Task, { id: "a", output: outputs.out }, { v: 1, s: "é\u2028\"" }), h(Task, { id: "b", output: outputs.out }, { v: 2, s: "" })])),
      );
      const created = await createRun(native, workflow, { runId: "rows", input: {}, workflowPath: null });
      assert.equal(created.outputsJson, "[]");
      const { graph } = renderWorkflow(workflow, { runId: "rows", input: {}, loops: {}, nodeLoops: {}, outputs: [], workflowPath: null });
      const step = native.submitGraph("rows", JSON.stringify(graph));
      assert.equal(step.status, "finished");
      const expected = [
        { table: "out", nodeId: "a", iteration: 0, value: { v: 1, s: "é\u2028\"" } },
        { table: "out", nodeId: "b", iteration: 0, value: { v: 2, s: "" } },
      ];
      assert.deepEqual(JSON.parse(step.outputsJson), expected);
      assert.deepEqual(JSON.parse(native.claimRun("rows").outputsJson), expected);
      assert.deepEqual(native.inspect("rows").outputs, expected, "the typed inspect answer has the same rows");
    } finally {
      native.close();
    }
  });

  test("deliveries and decision links: typed rows in and out, the core's codes for what is wrong", () => {
    const native = open();
    try {
      const row = { deliveryId: "msg_1_hook", target: "hook", url: "http://127.0.0.1:9/hook", eventType: "gate.waiting", feedId: 1, runId: "r1", body: '{"a":"é"}' };
      assert.equal(native.enqueueDeliveries([row, row], 1, 1000), 1, "one row: the second is the same delivery");
      assert.equal(native.deliveryCursor(), 1);
      const [claimed, ...more] = native.claimDeliveries("me", ["hook"], 1000, 60_000, 10);
      assert.deepEqual(more, []);
      assert.equal(claimed.status, "sending");
      assert.equal(claimed.body, row.body);
      assert.equal(claimed.nodeId, null);
      assert.equal(native.settleDelivery(claimed.deliveryId, "someone-else", { delivered: true }, 1001), false, "not their claim");
      assert.equal(native.settleDelivery(claimed.deliveryId, "me", { delivered: true, statusCode: 204 }, 1001), true);
      const [listed] = native.listDeliveries({ status: "delivered" });
      assert.equal(listed.lastStatusCode, 204);
      assert.equal(listed.body, undefined, "no body unless withBody");
      assert.equal(native.listDeliveries({ withBody: true })[0].body, row.body);
      assert.throws(() => native.listDeliveries({ status: "lost" }), { code: "INVALID_DELIVERY" });
      assert.throws(() => native.retryDelivery("nope", 0), (e) => e.code === "DELIVERY_NOT_FOUND" && e.details.deliveryId === "nope");
      const link = { linkId: "l1", runId: "r1", nodeId: "gate", iteration: 0, action: "approve", approver: "ada" };
      native.useLink(link, 5);
      native.recordLinkOutcome("l1", JSON.stringify({ status: "approved" }));
      assert.throws(() => native.useLink(link, 6), (e) => e.code === "LINK_USED" && e.details.outcome.status === "approved");
      native.releaseLink("l1");
      native.useLink(link, 7);
    } finally {
      native.close();
    }
  });

  test("a closed engine refuses every call with ENGINE_CLOSED", () => {
    const native = open();
    native.close();
    assert.throws(() => native.listRuns(), { code: "ENGINE_CLOSED" });
    assert.throws(() => native.submitGraph("r", "{}"), { code: "ENGINE_CLOSED" });
  });
});
