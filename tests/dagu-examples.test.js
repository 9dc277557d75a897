// examples/dagu: one DAG per pattern of Dagu's approval documentation, each run through
// the CLI (approve, push back, reject) in a temp copy of the folder; the stand-in scripts
// leave lines in marks.log, the handlers in notifications.log.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { daguBox, statesOf } from "./helpers/dagu.js";
import { decodeQP, smtpServer } from "./helpers/smtp.js";

const approvalOf = (info, nodeId) => info.approvals.find((a) => a.nodeId === nodeId);

describe("examples/dagu", () => {
  test("deploy-review: staging deploys, then waits; approve deploys production, reject ends the run rejected", async (t) => {
    const b = daguBox(t);
    const ok = await b.up("deploy-review.yaml");
    assert.deepEqual(ok.pendingApprovals.map((a) => [a.nodeId, a.prompt]), [["deploy_staging", "Staging is up. Check it, then approve the production deploy."]]);
    assert.deepEqual(statesOf(await b.inspect(ok.runId)), { deploy_staging: "waiting-approval", deploy_prod: "pending" });
    await b.expect(0, ["approve", ok.runId]);
    assert.deepEqual(b.marks(), ["deploy staging ", "deploy production "]);

    const no = await b.up("deploy-review.yaml");
    const r = await b.expect(0, ["reject", no.runId, "--reason", "staging is slow", "--by", "carol"]);
    assert.match(r.stdout, /^run \S+: rejected \(APPROVAL_REJECTED: deploy_staging was rejected by carol: staging is slow\)$/m);
    const info = await b.inspect(no.runId);
    assert.equal(info.run.status, "rejected");
    assert.deepEqual(statesOf(info), { deploy_staging: "rejected", deploy_prod: "cancelled" });
    assert.deepEqual(b.marks(), ["deploy staging ", "deploy production ", "deploy staging "], "production never deployed again");
  });

  test("migration-inputs: the required input is asked for; the inputs reach the migration; push-back re-plans", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("migration-inputs.yaml");
    const missing = await b.expect(4, ["approve", runId, "--input", "MAINTENANCE_WINDOW=sat", "--json"]);
    assert.equal(missing.json.error.code, "MISSING_REQUIRED_INPUTS");
    const undeclared = await b.expect(4, ["approve", runId, "--input", "APPROVED_BY=a", "--input", "EXTRA=1", "--json"]);
    assert.equal(undeclared.json.error.code, "UNDECLARED_INPUT", "YAML runs refuse undeclared inputs too");
    await b.expect(0, ["push-back", runId, "--input", "MAINTENANCE_WINDOW=sun"]);
    await b.expect(0, ["approve", runId, "--input", "APPROVED_BY=alice", "--input", "MAINTENANCE_WINDOW=sat-02:00"]);
    assert.deepEqual(b.marks(), ["plan", "plan", "migrate --approver alice --window sat-02:00"]);
  });

  test("gated-subdag: the whole test suite runs, then one gate; push-back runs it again as a new sub-run", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("gated-subdag.yaml");
    assert.deepEqual(b.marks().sort(), ["tests api", "tests ui"], "the sub-DAG ran to its end before the gate");
    const proposed = (await b.inspect(runId)).outputs.find((o) => o.nodeId === "tests").value;
    assert.equal(proposed.subRunId, `${runId}.tests.0`);
    assert.equal(proposed.outputs.report.stdout, "all suites passed\n");
    const back = await b.expect(0, ["push-back", runId, "--json"]);
    assert.equal(back.json.approvalIteration, 1);
    assert.equal((await b.inspect(runId)).outputs.find((o) => o.nodeId === "tests").value.subRunId, `${runId}.tests.0.r2`);
    await b.expect(0, ["approve", runId]);
    assert.equal(b.marks().at(-1), "deploy production ");
  });

  test("approve-then-subdag: the approved version reaches the production-deploy sub-DAG as its param", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("approve-then-subdag.yaml");
    await b.expect(0, ["approve", runId, "--input", "DEPLOY_VERSION=1.4.2"]);
    assert.deepEqual(b.marks(), ["validate production", "deploy production 1.4.2"]);
    const sub = await b.inspect(`${runId}.pipeline.0`);
    assert.deepEqual(sub.input, { deploy_version: "1.4.2" });
    assert.equal(sub.run.parentRunId, runId);
  });

  test("metrics-pushback: pushed back with SINCE / GROUPING, the iteration counts; the report gets the approved summary", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("metrics-pushback.yaml");
    const back = await b.expect(0, ["push-back", runId, "--input", "SINCE=30d", "--input", "GROUPING=weekly", "--json"]);
    assert.equal(back.json.approvalIteration, 1);
    assert.equal(back.json.pendingApprovals[0].approvalIteration, 1);
    assert.match(await b.stdout(runId, "query_metrics"), /since=30d, grouping=weekly/);
    await b.expect(0, ["approve", runId]);
    assert.deepEqual(b.marks(), [
      "metrics 7d daily",
      "metrics 30d weekly",
      "slack Querying error rates (since=30d, grouping=weekly)",
      "error rate 30d/weekly: 0.4%",
    ]);
  });

  test("changelog-pushback: each push-back's FEEDBACK revises the draft; publish sees the last one", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("changelog-pushback.yaml");
    await b.expect(0, ["push-back", runId, "--input", "FEEDBACK=shorter"]);
    await b.expect(0, ["push-back", runId, "--input", "FEEDBACK=group by area"]);
    assert.match(await b.stdout(runId, "draft"), /^Changelog v1\.3\.0 \(revised: group by area\)$/m);
    await b.expect(0, ["approve", runId]);
    assert.deepEqual(b.marks(), ["draft 0", "draft 1", "draft 2", "publish group by area"]);
  });

  test("rewind-review: a push-back runs prepare, draft and review again with the feedback; publish after approval", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("rewind-review.yaml");
    const back = await b.expect(0, ["push-back", runId, "--input", "FEEDBACK=use the new template", "--json"]);
    assert.deepEqual(back.json.reset, ["prepare", "draft"]);
    assert.equal(await b.stdout(runId, "prepare"), "prepared with use the new template\n");
    assert.equal(await b.stdout(runId, "draft"), "drafted with use the new template\n");
    await b.expect(0, ["approve", runId]);
    assert.equal(await b.stdout(runId, "publish"), "published with use the new template\n");
  });

  test("wait-handler: the wait handler names the waiting step; a rejection runs the failure handler", async (t) => {
    const b = daguBox(t);
    const { runId } = await b.up("wait-handler.yaml");
    assert.equal(b.read("notifications.log"), "notify wait-handler: waiting at deploy\n");
    await b.expect(0, ["reject", runId]);
    assert.equal(b.read("notifications.log"), "notify wait-handler: waiting at deploy\nfailed: wait-handler rejected\n");
  });

  test("mail-on-wait: the approvers are mailed when it waits, on-call when it is rejected", async (t) => {
    const b = daguBox(t);
    const smtp = await smtpServer();
    t.after(() => smtp.close());
    const env = { SMTP_HOST: "127.0.0.1", SMTP_PORT: String(smtp.port) };
    const { runId } = (await b.expect(3, ["up", "mail-on-wait.yaml", "--json"], { env })).json;
    assert.equal(smtp.received.length, 1);
    const wait = smtp.received[0];
    assert.deepEqual([wait.from, wait.to], ["dagu@example.com", ["approvers@example.com"]]);
    assert.match(wait.raw, /^Subject: \[APPROVAL REQUIRED\] mail-on-wait \(waiting\)\r$/m);
    assert.match(decodeQP(wait.raw), new RegExp(`npx smithers approve ${runId} --node deploy`));
    await b.expect(0, ["reject", runId, "--reason", "not today"], { env });
    assert.equal(smtp.received.length, 2);
    assert.deepEqual(smtp.received[1].to, ["oncall@example.com"]);
    assert.match(smtp.received[1].raw, /^Subject: \[FAILED\] mail-on-wait \(rejected\)\r$/m);
    assert.match(decodeQP(smtp.received[1].raw), /rejected: deploy by \S+ at \S+\r?\n\s+reason:\s+not today/);
    assert.equal((await b.inspect(runId)).run.status, "rejected");
  });

  test("release-train: each sub-DAG waits at its own sign-off, the release waits with them, and ships after both", async (t) => {
    const b = daguBox(t);
    const up = await b.up("release-train.yaml");
    assert.deepEqual(
      up.pendingApprovals.map((a) => [a.runId, a.nodeId, a.parentRunId]).sort(),
      [[`${up.runId}.api.0`, "sign", up.runId], [`${up.runId}.web.0`, "sign", up.runId]],
      "the sub-runs' gates are listed with the caller",
    );
    assert.deepEqual(statesOf(await b.inspect(up.runId)), { api: "waiting-approval", web: "waiting-approval", ship: "pending" });
    const first = await b.expect(0, ["approve", `${up.runId}.api.0`, "--input", "SIGNED_BY=alice", "--json"]);
    assert.equal(first.json.run.status, "finished");
    assert.equal(first.json.run.caller.status, "waiting-approval", "the caller moved on and waits for the other");
    const second = await b.expect(0, ["approve", `${up.runId}.web.0`, "--input", "SIGNED_BY=bob"]);
    assert.match(second.stdout, new RegExp(`^caller run ${up.runId}: finished$`, "m"));
    assert.deepEqual(b.marks(), ["deploy production "]);
    const api = (await b.inspect(up.runId)).outputs.find((o) => o.nodeId === "api").value;
    assert.equal(api.outputs.sign.stdout, "api is ready to sign off\n");
    assert.equal(approvalOf(await b.inspect(`${up.runId}.api.0`), "sign").inputs.SIGNED_BY, "alice");
  });
});
