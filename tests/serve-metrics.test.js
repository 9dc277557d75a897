// `GET /metrics` of `smithers serve`, scraped and parsed as Prometheus text: runs by status
// (rejected ones too), pending approvals by workflow, time to decision, task durations; counted
// over every process that shares the database, and over the runs serve drives in its worker
// threads (which a follower in another process and serve's log file see as well).
import assert from "node:assert/strict";
import { cpSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EXAMPLES, expectExit, sandbox, smithers } from "./helpers/cli.js";
import { waitFor } from "./helpers/durability.js";
import { client, startServe } from "./helpers/serve.js";

const READER = "reader-token-0123456789";
const APPROVER = "approver-token-0123456789";

const GATE_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";

const { Workflow, smithers, outputs } = createSmithers({
  gate: approvalDecisionSchema,
  step: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
});

export default smithers(() => (
  <Workflow name="metrics-gate">
    <Sequence>
      <Task id="prepare" output={outputs.step}>{async () => ({ ok: true })}</Task>
      <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} />
      <Task id="after" output={outputs.step}>{async () => ({ ok: true })}</Task>
    </Sequence>
  </Workflow>
));
`;

/**
 * Prometheus text format 0.0.4, strictly: `# HELP`, `# TYPE`, then samples
 * `name{label="value",…} number`. Returns { types, samples: [{ name, labels, value }] }.
 */
function parsePrometheus(text) {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const types = new Map();
  const samples = [];
  for (const line of text.slice(0, -1).split("\n")) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) continue;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.ok(!types.has(m[1]), `one TYPE line for ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line);
    assert.ok(m, `a valid sample line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let l;
      while ((l = re.exec(m[2]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      assert.equal(re.lastIndex === 0 ? m[2].length : re.lastIndex, m[2].length, `labels parse: ${m[2]}`);
    }
    const family = m[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(m[1]) || types.get(family) === "histogram", `${m[1]} has a TYPE line before it`);
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { types, samples };
}

/** Scrapes `/metrics` with `token` until `done(samples)`; the last scrape, parsed. */
async function scrapeUntil(server, token, done, what) {
  let scraped;
  await waitFor(async () => {
    const res = await fetch(new URL("/metrics", server.url), { headers: { authorization: `Bearer ${token}` } });
    scraped = parsePrometheus(await res.text());
    return done(scraped.samples);
  }, { timeoutMs: 10_000, what });
  return scraped;
}

const value = (samples, name, labels = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe("smithers serve: /metrics", () => {
  let box;
  let server;

  before(async () => {
    box = sandbox("smithers-metrics-");
    box.write("smithers.serve.json", JSON.stringify({ tokens: [{ user: "reader", token: READER, scopes: ["read"] }, { user: "alice", token: APPROVER, scopes: ["approve"] }] }));
    const file = box.write("gate.tsx", GATE_TSX);
    for (let i = 0; i < 3; i++) await expectExit(assert, 3, ["up", file, "--json", "--run-id", `m${i}`], { db: box.db });
    server = await startServe({ db: box.db, config: join(box.dir, "smithers.serve.json") });
  });

  after(async () => {
    await server?.stop("SIGKILL");
    box?.cleanup();
  });

  test("needs a token with the read scope", async () => {
    const res = await fetch(new URL("/metrics", server.url));
    assert.equal(res.status, 401);
  });

  test("runs by status, pending gates by workflow, time to decision and task durations, across processes", async () => {
    const api = client(server.url, APPROVER);
    // One decision through the API (resumed in serve), one by another process (picked up by serve).
    assert.equal((await api("/v1/runs/m0/nodes/gate/approve", { body: {} })).status, 200);
    assert.equal((await smithers(["approve", "m1", "--no-resume", "--by", "bob"], { db: box.db })).code, 0);
    const reader = client(server.url, READER);
    await waitFor(async () => (await reader("/v1/runs/m1")).body.run.status === "finished" && (await reader("/v1/runs/m0")).body.run.status === "finished", { timeoutMs: 20_000, what: "both runs finished" });

    let scraped;
    await waitFor(async () => {
      const res = await fetch(new URL("/metrics", server.url), { headers: { authorization: `Bearer ${READER}` } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      scraped = parsePrometheus(await res.text());
      return value(scraped.samples, "smithers_runs_ended_total", { status: "finished" }) === 2;
    }, { timeoutMs: 10_000, what: "the metrics to count both runs" });
    const { types, samples } = scraped;

    assert.equal(types.get("smithers_runs"), "gauge");
    assert.equal(value(samples, "smithers_runs", { workflow: "metrics-gate", status: "finished" }), 2);
    assert.equal(value(samples, "smithers_runs", { workflow: "metrics-gate", status: "waiting-approval" }), 1);
    assert.equal(value(samples, "smithers_pending_approvals", { workflow: "metrics-gate" }), 1);
    assert.ok(value(samples, "smithers_oldest_pending_approval_age_seconds", { workflow: "metrics-gate" }) >= 0);

    // Both decisions, however they were made, with how long their gates waited.
    assert.equal(types.get("smithers_approval_decision_wait_seconds"), "histogram");
    const wait = samples.filter((s) => s.name === "smithers_approval_decision_wait_seconds_bucket" && s.labels.decision === "approved");
    assert.equal(wait.at(-1).labels.le, "+Inf");
    assert.equal(wait.at(-1).value, 2);
    assert.ok(wait.every((b, i) => i === 0 || b.value >= wait[i - 1].value), "buckets are cumulative");
    assert.equal(value(samples, "smithers_approval_decision_wait_seconds_count", { decision: "approved" }), 2);
    assert.ok(value(samples, "smithers_approval_decision_wait_seconds_sum", { decision: "approved" }) >= 0);

    // The tasks after the gates ran while serve watched: their durations.
    assert.equal(types.get("smithers_task_duration_seconds"), "histogram");
    assert.ok(value(samples, "smithers_task_duration_seconds_count", { outcome: "finished" }) >= 2);
    assert.equal(types.get("smithers_runs_ended_total"), "counter");
    assert.ok(value(samples, "process_start_time_seconds") > 1.7e9);
    assert.ok(!samples.some((s) => s.name.includes("timer")), "no timer metric before the core has timers");
  });

  test("a rejected run: counted by status, as an ended run, and its rejection's wait", async () => {
    // A Dagu DAG whose reviewed step is rejected ends `rejected`, not failed.
    for (const f of ["deploy-review.yaml", "deploy.sh"]) cpSync(join(EXAMPLES, "dagu", f), join(box.dir, f));
    await expectExit(assert, 3, ["up", "deploy-review.yaml", "--run-id", "dr", "--db", box.db], { cwd: box.dir });
    await expectExit(assert, 0, ["reject", "dr", "--reason", "staging is slow", "--by", "bob"], { db: box.db, cwd: box.dir });
    const { samples } = await scrapeUntil(server, READER, (samples) => value(samples, "smithers_runs_ended_total", { status: "rejected" }) === 1, "the metrics to count the rejected run");
    assert.equal(value(samples, "smithers_runs", { workflow: "deploy-review", status: "rejected" }), 1);
    assert.equal(value(samples, "smithers_runs_ended_total", { status: "failed" }), undefined, "a rejection is not a failure");
    assert.equal(value(samples, "smithers_approval_decision_wait_seconds_count", { decision: "rejected" }), 1);
    assert.equal(value(samples, "smithers_pending_approvals", { workflow: "deploy-review" }), undefined, "nothing of it waits");
  });
});

describe("smithers serve: runs its worker threads drive", () => {
  test("started and approved over the API: counted in /metrics, followed from another process, logged from the worker into serve's log file", async (t) => {
    const b = sandbox("smithers-metrics-workers-");
    t.after(() => b.cleanup());
    b.write("gate.tsx", GATE_TSX);
    b.write("serve.json", JSON.stringify({ tokens: [{ user: "alice", token: APPROVER, scopes: ["admin"] }], workflows: { gate: "./gate.tsx" } }));
    const logFile = join(b.dir, "serve.log");
    const server = await startServe({
      db: b.db,
      cwd: b.dir,
      config: join(b.dir, "serve.json"),
      env: { SMITHERS_LOG: "smithers_js::isolation=debug,smithers_js::driver=debug,smithers_core::engine=debug", SMITHERS_LOG_FILE: logFile },
    });
    t.after(() => server.stop("SIGKILL"));
    const api = client(server.url, APPROVER);

    const started = await api("/v1/runs", { body: { workflow: "gate", runId: "w1" } });
    assert.ok(started.status < 300, JSON.stringify(started.body));
    await waitFor(async () => (await api("/v1/runs/w1")).body.run?.status === "waiting-approval", { timeoutMs: 20_000, what: "the run to wait at its gate" });
    // Followed from another process across the decision, to the run's end.
    const follower = smithers(["events", "--follow", "--run", "w1"], { db: b.db });
    assert.equal((await api("/v1/runs/w1/nodes/gate/approve", { body: {} })).status, 200);
    const followed = await follower;
    assert.equal(followed.code, 0, followed.stderr);
    const types = followed.stdout.split("\n").filter(Boolean).map((l) => l.split(" ")[3]);
    for (const type of ["RunStarted", "ApprovalRequested", "ApprovalGranted", "NodeFinished", "RunFinished"]) assert.ok(types.includes(type), `${type} in:\n${followed.stdout}`);
    assert.equal(types.at(-1), "RunFinished");

    const { samples } = await scrapeUntil(server, APPROVER, (samples) => value(samples, "smithers_runs_ended_total", { status: "finished" }) === 1, "the metrics to count the run");
    assert.equal(value(samples, "smithers_runs", { workflow: "metrics-gate", status: "finished" }), 1);
    assert.equal(value(samples, "smithers_approval_decision_wait_seconds_count", { decision: "approved" }), 1);
    assert.equal(value(samples, "smithers_task_duration_seconds_count", { outcome: "finished" }), 2, "prepare and after, both run in a worker");

    // Serve's thread hands each drive to a worker; the driver and the core log from the worker,
    // into the same file.
    const lines = readFileSync(logFile, "utf8").split("\n").filter(Boolean);
    const handed = lines.filter((l) => l.includes(" smithers_js::isolation: drive handed to a worker") && l.includes('run_id="w1"'));
    assert.deepEqual(handed.map((l) => l.match(/ kind="(\w+)"/)[1]), ["start", "resume"], lines.join("\n"));
    assert.ok(lines.some((l) => / smithers_js::isolation: drive ended in its worker run_id="w1" started=true clean=true worker_kept=true$/.test(l)), lines.join("\n"));
    for (const node of ["prepare", "after"]) {
      assert.ok(lines.some((l) => l.includes(" smithers_js::driver: task started") && l.includes('run_id="w1"') && l.includes(`node_id="${node}"`)), `${node} in:\n${lines.join("\n")}`);
    }
    assert.ok(lines.some((l) => l.includes(" smithers_core::engine: run created and claimed") && l.includes('run_id="w1"')));
    assert.ok(lines.some((l) => l.includes(" smithers_core::engine: run claimed") && l.includes('run_id="w1"')));
  });
});
