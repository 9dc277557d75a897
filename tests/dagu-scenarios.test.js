// What Dagu's own approval, handler and REST tests check (internal/intg/approval_test.go,
// internal/intg/handler_test.go, internal/service/frontend/api/v1/dagruns_test.go), with DAG
// text of our own: the same expected statuses, variables and responses, through
// `smithers serve`'s Dagu paths. Runs are started over HTTP from the allow-listed files.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectExit, sandbox, smithers } from "./helpers/cli.js";
import { valueOf } from "./helpers/dagu.js";
import { waitFor } from "./helpers/durability.js";
import { client, startServe } from "./helpers/serve.js";

const TOKENS = { reviewer: "reviewer-dagu-token-0123456789", reader: "reader-dagu-token-0123456789" };

/** Prints FEEDBACK and DAG_PUSHBACK, as Dagu's push-back scenario's steps do. */
const SNAPSHOT = "printf 'FEEDBACK=%s\\n' \"${FEEDBACK:-}\"; printf 'DAG_PUSHBACK=%s\\n' \"${DAG_PUSHBACK:-}\"; echo ready";

/** DAG files of this suite: name -> text. Each is allow-listed for starting over HTTP. */
const DAGS = {
  "wait-status": `type: graph
steps:
  - name: wait-step
    command: "true"
    approval:
      prompt: "Please approve"
  - name: after-wait
    depends: [wait-step]
    command: echo "approved"
`,
  "blocks-dependents": `type: graph
steps:
  - name: before-wait
    command: echo before
  - name: wait-step
    depends: [before-wait]
    command: "true"
    approval: {}
  - name: after-wait-1
    depends: [wait-step]
    command: echo after1
  - name: after-wait-2
    depends: [wait-step]
    command: echo after2
`,
  "parallel-branch": `type: graph
steps:
  - name: branch-a-1
    command: echo a1
  - name: branch-a-2
    depends: [branch-a-1]
    command: echo a2
  - name: wait-branch
    command: "true"
    approval: {}
  - name: after-wait
    depends: [wait-branch]
    command: echo after
`,
  "input-config": `type: graph
steps:
  - name: review-step
    script: |
      echo "line one"
      echo "line two"
    approval:
      prompt: "Please provide feedback"
      input: [FEEDBACK, NOTES]
      required: [FEEDBACK]
  - name: other-step
    command: echo other
    approval:
      prompt: "Approve the other"
`,
  "sub-step": `steps:
  - name: sub-step
    command: echo "sub-dag output"
`,
  "call-gated": `type: graph
steps:
  - name: call-step
    call: sub-step
    approval:
      prompt: "Review sub-DAG results"
  - name: after-call
    depends: [call-step]
    command: echo "after call"
`,
  "pushback-scope": `type: graph
steps:
  - name: prepare
    script: |
      ${SNAPSHOT}
  - name: draft
    depends: [prepare]
    script: |
      ${SNAPSHOT}
  - name: review
    depends: [draft]
    script: |
      ${SNAPSHOT}
    approval:
      prompt: "Review and revise"
      input: [FEEDBACK]
      rewind_to: prepare
  - name: publish
    depends: [review]
    script: |
      ${SNAPSHOT}
`,
  "approve-inputs": `type: graph
steps:
  - name: wait-step
    command: "true"
    approval:
      input: [reason, approver]
      required: [reason]
  - name: after
    depends: [wait-step]
    command: echo "$reason|$approver"
`,
  "wait-handler": `type: graph
handler_on:
  wait:
    command: echo "waiting_steps:\${DAG_WAITING_STEPS}" > wait-handler.out
steps:
  - name: setup-step
    command: "true"
  - name: approval-gate
    command: "true"
    approval: {}
    depends:
      - setup-step
`,
  "wait-handler-fails": `handler_on:
  wait:
    command: exit 1
steps:
  - name: wait-step
    command: "true"
    approval: {}
`,
  "child-gate": `steps:
  - name: sign
    command: echo signed
    approval:
      input: [SIGNED_BY]
`,
  "parent-of-gate": `steps:
  - name: call
    call: child-gate
  - name: after
    depends: [call]
    command: echo "after the child"
`,
};

describe("Dagu's approval, handler and REST scenarios on smithers serve", () => {
  let box;
  let server;
  let api;
  let read;

  before(async () => {
    box = sandbox("smithers-dagu-rest-");
    for (const [name, text] of Object.entries(DAGS)) writeFileSync(join(box.dir, `${name}.yaml`), text);
    const config = box.write(
      "smithers.serve.json",
      JSON.stringify({
        tokens: [
          { user: "reviewer", token: TOKENS.reviewer, scopes: ["approve"] },
          { user: "reader", token: TOKENS.reader, scopes: ["read"] },
        ],
        // Named by file stem.
        workflows: Object.keys(DAGS).map((name) => `./${name}.yaml`),
      }),
    );
    server = await startServe({ db: box.db, cwd: box.dir, config });
    api = client(server.url, TOKENS.reviewer);
    read = client(server.url, TOKENS.reader);
  });

  after(async () => {
    await server?.stop();
    box?.cleanup();
  });

  /** Starts a DAG through Dagu's start path and waits for the run to park or end. */
  async function start(name, until = ["waiting-approval"]) {
    const r = await api(`/api/v1/dags/${name}/start`, { body: {} });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { dagRunId } = r.body;
    await waitFor(async () => until.includes((await api(`/v1/runs/${dagRunId}`)).body.run.status), { timeoutMs: 20_000, what: `${name} to reach ${until}` });
    return dagRunId;
  }

  /** Dagu's view of a run: statusLabel, and node name -> node. */
  async function details(name, runId, sub = "") {
    const r = await read(`/api/v1/dag-runs/${name}/${runId}${sub ? `/sub-dag-runs/${sub}` : ""}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const d = r.body.dagRunDetails;
    return { ...d, node: Object.fromEntries(d.nodes.map((n) => [n.step.name, n])) };
  }

  const labels = (d) => Object.fromEntries(d.nodes.map((n) => [n.step.name, n.statusLabel]));

  test("WaitStepEntersWaitStatus / BlocksDependentNodes / ParallelBranch: the gate waits, its dependents do not start, independent steps finish", async () => {
    const a = await start("wait-status");
    const da = await details("wait-status", a);
    assert.deepEqual([da.status, da.statusLabel], [7, "waiting"]);
    assert.deepEqual(labels(da), { "wait-step": "waiting", "after-wait": "not_started" });

    const b = await start("blocks-dependents");
    assert.deepEqual(labels(await details("blocks-dependents", b)), {
      "before-wait": "succeeded",
      "wait-step": "waiting",
      "after-wait-1": "not_started",
      "after-wait-2": "not_started",
    });
    const c = await start("parallel-branch");
    assert.deepEqual(labels(await details("parallel-branch", c)), {
      "branch-a-1": "succeeded",
      "branch-a-2": "succeeded",
      "wait-branch": "waiting",
      "after-wait": "not_started",
    });
  });

  test("ApprovalField on a script, with an input config; two gates wait together; the config round-trips", async () => {
    const id = await start("input-config");
    const d = await details("input-config", id);
    assert.deepEqual(labels(d), { "review-step": "waiting", "other-step": "waiting" });
    assert.deepEqual(d.node["review-step"].step.approval, { prompt: "Please provide feedback", input: ["FEEDBACK", "NOTES"], required: ["FEEDBACK"] });
    assert.equal(readFileSync(d.node["review-step"].stdout, "utf8"), "line one\nline two\n", "the step ran before it waits");
  });

  test("ApprovalFieldOnCallStep: the sub-DAG runs to its end, then the call step waits", async () => {
    const id = await start("call-gated");
    const d = await details("call-gated", id);
    assert.deepEqual(labels(d), { "call-step": "waiting", "after-call": "not_started" });
    const sub = await details("call-gated", id, `${id}.call-step.0`);
    assert.deepEqual([sub.statusLabel, sub.parentDAGRunId, sub.rootDAGRunId], ["succeeded", id, id]);
  });

  test("ApproveDAGRunStep: {dagRunId, stepName, resumed: true}; the run succeeds", async () => {
    const id = await start("wait-status");
    const r = await api(`/api/v1/dag-runs/wait-status/${id}/steps/wait-step/approve`, { body: {} });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { dagRunId: id, stepName: "wait-step", resumed: true });
    await waitFor(async () => (await details("wait-status", id)).statusLabel === "succeeded", { timeoutMs: 15_000, what: "succeeded" });
    const d = await details("wait-status", id);
    assert.deepEqual([d.node["wait-step"].approvedBy, d.node["after-wait"].statusLabel], ["reviewer", "succeeded"]);
  });

  test("ApproveWithInputs / ValidateRequiredInputs: missing required inputs are named in order; accepted ones reach the dependent", async () => {
    const id = await start("approve-inputs");
    const url = `/api/v1/dag-runs/approve-inputs/${id}/steps/wait-step/approve`;
    const none = await api(url, { method: "POST" });
    assert.equal(none.status, 400);
    assert.equal(none.body.code, "bad_request");
    assert.deepEqual([none.body.details.code, none.body.details.missing], ["MISSING_REQUIRED_INPUTS", ["reason"]]);
    const undeclared = await api(url, { body: { inputs: { reason: "x", HOME: "/hijacked" } } });
    assert.deepEqual([undeclared.status, undeclared.body.details.code], [400, "UNDECLARED_INPUT"], "no input outside the gate's list (Dagu lets HOME through)");
    const ok = await api(url, { body: { inputs: { reason: "testing", approver: "test-user" } } });
    assert.deepEqual(ok.body, { dagRunId: id, stepName: "wait-step", resumed: true });
    await waitFor(async () => (await details("approve-inputs", id)).statusLabel === "succeeded", { timeoutMs: 15_000, what: "succeeded" });
    const d = await details("approve-inputs", id);
    assert.deepEqual(d.node["wait-step"].approvalInputs, { reason: "testing", approver: "test-user" });
    assert.equal(readFileSync(d.node.after.stdout, "utf8"), "testing|test-user\n");
    // ApproveNotWaiting: the step of a finished run.
    const again = await api(url, { body: { inputs: { reason: "x" } } });
    assert.deepEqual([again.status, again.body.code], [400, "bad_request"]);
  });

  test("RejectDAGRunStep: {dagRunId, stepName}; the run is rejected with who and why; dependents aborted; not waiting afterwards", async () => {
    const id = await start("blocks-dependents");
    const r = await api(`/api/v1/dag-runs/blocks-dependents/${id}/steps/wait-step/reject`, { body: { reason: "Deployment blocked due to pending security review" } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { dagRunId: id, stepName: "wait-step" });
    await waitFor(async () => (await details("blocks-dependents", id)).statusLabel === "rejected", { timeoutMs: 15_000, what: "rejected" });
    const d = await details("blocks-dependents", id);
    assert.equal(d.status, 8);
    assert.deepEqual([d.rejectedBy, d.rejectionReason], ["reviewer", "Deployment blocked due to pending security review"]);
    assert.deepEqual(labels(d), { "before-wait": "succeeded", "wait-step": "rejected", "after-wait-1": "aborted", "after-wait-2": "aborted" });
    assert.deepEqual([d.node["wait-step"].rejectedBy, d.node["wait-step"].rejectionReason], ["reviewer", "Deployment blocked due to pending security review"]);
    const notWaiting = await api(`/api/v1/dag-runs/blocks-dependents/${id}/steps/wait-step/reject`, { body: {} });
    assert.equal(notWaiting.status, 400);
    const unknownStep = await api(`/api/v1/dag-runs/blocks-dependents/${id}/steps/nope/approve`, { body: {} });
    assert.equal(unknownStep.status, 404);
    const wrongDag = await api(`/api/v1/dag-runs/wait-status/${id}/steps/wait-step/approve`, { body: {} });
    assert.deepEqual([wrongDag.status, wrongDag.body.message], [404, `dag-run ID ${id} not found for DAG wait-status`]);
  });

  test("PushBackExposesHistoricalFeedbackEnvAcrossRewoundScope: two push-backs with rewind_to, then approve; every step saw the latest feedback and the history", async () => {
    const id = "pushback-history-env";
    const started = await api("/api/v1/dags/pushback-scope/start", { body: { dagRunId: id } });
    assert.deepEqual(started.body, { dagRunId: id });
    const waitIteration = (n) =>
      waitFor(async () => {
        const d = await details("pushback-scope", id);
        return d.statusLabel === "waiting" && d.node.review.approvalIteration === n ? d : null;
      }, { timeoutMs: 20_000, what: `review at iteration ${n}` });
    await waitIteration(0);
    const first = await api(`/api/v1/dag-runs/pushback-scope/${id}/steps/review/push-back`, { body: { inputs: { FEEDBACK: "first pass" } } });
    assert.deepEqual(first.body, { dagRunId: id, stepName: "review", approvalIteration: 1, resumed: true });
    await waitIteration(1);
    await api(`/api/v1/dag-runs/pushback-scope/${id}/steps/review/push-back`, { body: { inputs: { FEEDBACK: "second pass" } } });
    const d = await waitIteration(2);
    assert.equal(d.node.review.pushBackInputs.FEEDBACK, "second pass");
    assert.deepEqual(d.node.review.pushBackHistory.map((h) => [h.iteration, h.by, h.inputs.FEEDBACK]), [[1, "reviewer", "first pass"], [2, "reviewer", "second pass"]]);
    await api(`/api/v1/dag-runs/pushback-scope/${id}/steps/review/approve`, { body: {} });
    await waitFor(async () => (await details("pushback-scope", id)).statusLabel === "succeeded", { timeoutMs: 20_000, what: "succeeded" });
    const done = await details("pushback-scope", id);
    for (const step of ["prepare", "draft", "review", "publish"]) {
      const out = readFileSync(done.node[step].stdout, "utf8");
      assert.equal(valueOf(out, "FEEDBACK"), "second pass", `${step} did not receive the latest feedback`);
      const pb = JSON.parse(valueOf(out, "DAG_PUSHBACK"));
      assert.equal(pb.iteration, 2, step);
      assert.equal(pb.by, "reviewer", step);
      assert.ok(!Number.isNaN(Date.parse(pb.at)), step);
      assert.deepEqual(pb.inputs, { FEEDBACK: "second pass" }, step);
      assert.deepEqual(pb.history.map((h) => [h.iteration, h.by, h.inputs.FEEDBACK]), [[1, "reviewer", "first pass"], [2, "reviewer", "second pass"]], step);
      assert.equal(pb.at, pb.history[1].at, step);
    }
  });

  test("WaitHandler: runs when the DAG waits with DAG_WAITING_STEPS; a failing one leaves the DAG waiting", async () => {
    const ok = await start("wait-handler");
    // The shell creates the file before it writes the line: wait for the whole line.
    const out = join(box.dir, "wait-handler.out");
    await waitFor(() => existsSync(out) && readFileSync(out, "utf8").endsWith("\n"), { timeoutMs: 10_000, what: "the handler's output" });
    assert.equal(readFileSync(join(box.dir, "wait-handler.out"), "utf8"), "waiting_steps:approval-gate\n");
    // The handler writes its output before it exits: its end is recorded a moment later.
    const events = await waitFor(
      async () => {
        const handler = (await api(`/v1/runs/${ok}/events`)).body.events.filter((e) => e.type.startsWith("Handler"));
        return handler.length >= 2 ? handler : null;
      },
      { timeoutMs: 10_000, what: "the handler's end" },
    );
    assert.deepEqual(events.map((e) => [e.type, e.handler]), [["HandlerStarted", "onWait"], ["HandlerFinished", "onWait"]]);

    const bad = await start("wait-handler-fails");
    await waitFor(async () => (await api(`/v1/runs/${bad}/events`)).body.events.some((e) => e.type === "HandlerFailed"), { timeoutMs: 10_000, what: "HandlerFailed" });
    assert.equal((await details("wait-handler-fails", bad)).statusLabel, "waiting");
  });

  test("sub-dag-runs: a sub-run that waits is decided through its own path; the caller then goes on", async () => {
    const id = await start("parent-of-gate");
    const sub = `${id}.call.0`;
    const d = await details("parent-of-gate", id);
    assert.deepEqual(labels(d), { call: "waiting", after: "not_started" });
    assert.deepEqual(d.node.call.subRuns.map((s) => [s.dagRunId, s.dagName]), [[sub, "child-gate"]]);
    const listed = (await api(`/v1/approvals?runId=${id}`)).body.approvals;
    assert.deepEqual(listed.map((a) => [a.runId, a.nodeId]), [[sub, "sign"]]);
    const wrong = await api(`/api/v1/dag-runs/parent-of-gate/${id}/sub-dag-runs/not-a-child/steps/sign/approve`, { body: {} });
    assert.equal(wrong.status, 404);
    const back = await api(`/api/v1/dag-runs/parent-of-gate/${id}/sub-dag-runs/${sub}/steps/sign/push-back`, { body: { inputs: { SIGNED_BY: "x" } } });
    assert.deepEqual(back.body, { dagRunId: sub, stepName: "sign", approvalIteration: 1, resumed: true, subDAGRunId: sub });
    await waitFor(async () => (await details("parent-of-gate", id, sub)).node.sign.approvalIteration === 1 && (await details("parent-of-gate", id, sub)).statusLabel === "waiting", { timeoutMs: 15_000, what: "the sub-run to wait again" });
    const ok = await api(`/api/v1/dag-runs/parent-of-gate/${id}/sub-dag-runs/${sub}/steps/sign/approve`, { body: { inputs: { SIGNED_BY: "reviewer" } } });
    assert.deepEqual(ok.body, { dagRunId: sub, stepName: "sign", resumed: true });
    await waitFor(async () => (await details("parent-of-gate", id)).statusLabel === "succeeded", { timeoutMs: 20_000, what: "the caller to succeed" });
    assert.equal(readFileSync((await details("parent-of-gate", id)).node.after.stdout, "utf8"), "after the child\n");
  });

  test("starting over HTTP: only allow-listed files, with the execute scope; Dagu's and our paths; GET /health", async () => {
    const health = await client(server.url)("/health", { token: null });
    assert.equal(health.status, 200);
    assert.equal(health.body.status, "healthy");
    assert.ok(Number.isInteger(health.body.uptime) && health.body.version);

    const ours = await api("/v1/runs", { body: { workflow: "wait-status", runId: "started-by-name" } });
    // The status is a snapshot: on a busy machine the drive may already have parked the run.
    assert.deepEqual({ ...ours.body, status: undefined }, { runId: "started-by-name", workflow: "wait-status", status: undefined });
    assert.ok(["running", "waiting-approval"].includes(ours.body.status), ours.body.status);
    const byPath = await api("/v1/runs", { body: { workflowPath: join(box.dir, "approve-inputs.yaml"), input: {} } });
    assert.equal(byPath.status, 200);
    assert.equal((await api(`/v1/runs/${byPath.body.runId}`)).body.run.startedBy, "reviewer");
    const outside = await api("/v1/runs", { body: { workflowPath: "/etc/passwd" } });
    assert.deepEqual([outside.status, outside.body.error.code], [404, "WORKFLOW_NOT_FOUND"]);
    const again = await api("/v1/runs", { body: { workflow: "wait-status", runId: "started-by-name" } });
    assert.deepEqual([again.status, again.body.error.code], [409, "RUN_EXISTS"]);
    const reader = await read("/v1/runs", { body: { workflow: "wait-status" } });
    assert.deepEqual([reader.status, reader.body.error.code], [403, "FORBIDDEN"]);

    const unknown = await api("/api/v1/dags/not-listed/start", { body: {} });
    assert.deepEqual([unknown.status, unknown.body.code, unknown.body.details.code], [404, "not_found", "WORKFLOW_NOT_FOUND"]);
    const params = await api("/api/v1/dags/approve-inputs/start", { body: { params: "reason='a b' approver=x", dagRunId: "with-params" } });
    assert.deepEqual(params.body, { dagRunId: "with-params" });
    assert.deepEqual((await api("/v1/runs/with-params")).body.input, { reason: "a b", approver: "x" });
    const json = await api("/api/v1/dags/approve-inputs/start", { body: { params: '{"reason":"json"}' } });
    assert.deepEqual((await api(`/v1/runs/${json.body.dagRunId}`)).body.input, { reason: "json" });
    await waitFor(async () => (await api("/v1/runs/with-params")).body.run.status === "waiting-approval", { timeoutMs: 15_000, what: "with-params to wait" });
    const single = await api("/api/v1/dags/approve-inputs/start", { body: { singleton: true } });
    assert.deepEqual([single.status, single.body.code], [409, "max_run_reached"]);
    const readerDagu = await read("/api/v1/dags/approve-inputs/start", { body: {} });
    assert.deepEqual([readerDagu.status, readerDagu.body.code], [403, "forbidden"]);
  });

  test("rejecting the run (the inbox's Reject run): its oldest waiting step is rejected, every other wait withdrawn", async () => {
    const id = await start("input-config");
    const rejected = await api(`/v1/runs/${id}/reject`, { body: { reason: "not this week" } });
    assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
    assert.equal(rejected.body.status, "rejected");
    const first = (await api(`/v1/approvals?runId=${id}&status=all`)).body.approvals.sort((x, y) => x.requestedAtMs - y.requestedAtMs)[0].nodeId;
    assert.equal(rejected.body.nodeId, first, "the oldest waiting step");
    await waitFor(async () => (await api(`/v1/runs/${id}`)).body.run.status === "rejected", { timeoutMs: 15_000, what: "rejected" });
    const info = (await api(`/v1/runs/${id}`)).body;
    const other = first === "review-step" ? "other-step" : "review-step";
    assert.deepEqual(Object.fromEntries(info.nodes.map((n) => [n.nodeId, n.state])), { [first]: "rejected", [other]: "cancelled" });
    assert.equal(info.run.rejection.rejectionReason, "not this week");
    const none = await api(`/v1/runs/${id}/reject`, { body: {} });
    assert.deepEqual([none.status, none.body.error.code], [404, "NO_PENDING_APPROVALS"]);
  });
});

describe("the OpenAPI document describes the Dagu paths and starting runs", () => {
  test("paths", async (t) => {
    const box = sandbox("smithers-dagu-openapi-");
    const server = await startServe({ db: box.db, cwd: box.dir, env: { SMITHERS_API_KEY: "openapi-key-0123456789" } });
    t.after(async () => {
      await server.stop();
      box.cleanup();
    });
    const doc = (await client(server.url)("/openapi.json", { token: null })).body;
    for (const path of [
      "/health",
      "/api/v1/dags/{name}/start",
      "/api/v1/dag-runs/{name}/{dagRunId}",
      "/api/v1/dag-runs/{name}/{dagRunId}/steps/{stepName}/approve",
      "/api/v1/dag-runs/{name}/{dagRunId}/steps/{stepName}/reject",
      "/api/v1/dag-runs/{name}/{dagRunId}/steps/{stepName}/push-back",
      "/api/v1/dag-runs/{name}/{dagRunId}/sub-dag-runs/{subDAGRunId}/steps/{stepName}/approve",
      "/api/v1/dag-runs/{name}/{dagRunId}/sub-dag-runs/{subDAGRunId}/steps/{stepName}/reject",
      "/api/v1/dag-runs/{name}/{dagRunId}/sub-dag-runs/{subDAGRunId}/steps/{stepName}/push-back",
      "/v1/runs/{runId}/reject",
    ]) {
      assert.ok(doc.paths[path], `${path} is documented`);
    }
    assert.ok(doc.paths["/v1/runs"].post, "POST /v1/runs is documented");
  });

  test("a workflows entry that names no file is refused when serve starts", async (t) => {
    const box = sandbox("smithers-dagu-config-");
    t.after(() => box.cleanup());
    const config = box.write("smithers.serve.json", JSON.stringify({ workflows: { deploy: "./missing.yaml" } }));
    const r = await smithers(["serve", "--port", "0", "--config", config, "--db", box.db]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /SERVE_CONFIG_INVALID: .*workflows\.deploy: no such file: .*missing\.yaml/);
    await expectExit(assert, 4, ["serve", "--port", "0", "--config", box.write("bad.json", JSON.stringify({ workflows: 3 })), "--db", box.db]);
  });
});
