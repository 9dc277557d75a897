// OpenTelemetry traces (README "Traces"): with OTEL_EXPORTER_OTLP_ENDPOINT set, the processes
// that drive and decide runs export spans over OTLP/HTTP. A real receiver on loopback (node:http)
// takes what the CLI's exporter sends, as OTLP JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json) or
// protobuf (the default: only its arrival is checked), and the tests read the spans back: a run
// span (the root), a span per node attempt and per decided approval, and one trace per run
// across the process that parked the run and the one that approved and finished it.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EXAMPLES, sandbox, smithers } from "./helpers/cli.js";
import { PKG_INDEX_URL, spawnCli } from "./helpers/durability.js";
import { pgDatabase } from "./helpers/postgres.js";
import { client, startServe } from "./helpers/serve.js";
import { startWorker } from "./helpers/workers.js";
import { SmithersEngine, approval, fields, flushTraces, task, workflow } from "../npm/smithers-rs/src/index.js";

const EXAMPLE = join(EXAMPLES, "publish-approval.tsx");

/** An OTLP/HTTP receiver: every request kept (path, content type, body), JSON bodies decoded into spans. */
async function receiver() {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ path: req.url, contentType: req.headers["content-type"], body });
      res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/json" });
      res.end(req.headers["content-type"] === "application/json" ? "{}" : "");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** The spans received so far, flattened, with their resource's attributes. */
    spans() {
      const out = [];
      for (const r of requests) {
        if (r.contentType !== "application/json") continue;
        for (const rs of JSON.parse(r.body.toString("utf8")).resourceSpans ?? []) {
          const resource = attrs(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) out.push({ ...s, attrs: attrs(s.attributes), resource, events: (s.events ?? []).map((e) => ({ ...e, attrs: attrs(e.attributes) })) });
        }
      }
      return out;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** OTLP JSON attributes as a plain object. */
function attrs(list = []) {
  const out = {};
  for (const { key, value } of list) {
    const [[type, v]] = Object.entries(value);
    out[key] = type === "intValue" ? Number(v) : v;
  }
  return out;
}

/** The run's trace id as documented: the first 16 bytes of SHA-256("smithers-rs trace\0" + run id). */
const traceIdOf = (runId) => createHash("sha256").update(`smithers-rs trace\u0000${runId}`).digest("hex").slice(0, 32);
const runSpanIdOf = (runId) => createHash("sha256").update(`smithers-rs run\u0000${runId}`).digest("hex").slice(0, 16);

const nanos = (s) => BigInt(s);

async function waitFor(predicate, what, ms = 15_000) {
  const t0 = Date.now();
  for (;;) {
    const v = predicate();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("OpenTelemetry traces", () => {
  let box;
  let otlp;
  before(async () => {
    box = sandbox("smithers-otel-");
    otlp = await receiver();
  });
  after(async () => {
    await otlp?.close();
    box?.cleanup();
  });

  test("up parks at the approval, approve in another process finishes it: one trace, a run span, node spans, the approval's events", async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_SERVICE_NAME: "billing", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,team=ops" };
    const db = join(box.dir, "cli.db");
    const up = await smithers(["up", EXAMPLE, "--input", '{"title":"Traced"}', "--json"], { db, env });
    assert.equal(up.code, 3, up.stderr);
    const runId = up.json.runId;
    // `up` exported its spans before it exited: the draft attempt (the run has not ended).
    const fromUp = otlp.spans().filter((s) => s.attrs["smithers.run.id"] === runId);
    assert.deepEqual(fromUp.map((s) => s.name), ["task draft"], "up exports the attempt it ran before it exits");
    assert.equal(otlp.requests.every((r) => r.path === "/v1/traces"), true);

    const approve = await smithers(["approve", runId, "--by", "alice", "--note", "ship it"], { db, env });
    assert.equal(approve.code, 0, approve.stderr);
    assert.match(approve.stdout, /: finished$/m);
    assert.equal(approve.stderr, "", "nothing is said when the export succeeds");

    const spans = otlp.spans().filter((s) => s.attrs["smithers.run.id"] === runId);
    const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
    assert.deepEqual(spans.map((s) => s.name).sort(), ["approval publish-approval", "run publish", "task draft", "task publish"]);

    // One trace, whichever process made the span, derived from the run id; the run span is
    // the root and every other span's parent.
    const run = byName["run publish"];
    assert.equal(run.traceId, traceIdOf(runId));
    assert.equal(run.spanId, runSpanIdOf(runId));
    assert.ok(!run.parentSpanId, "the run span is the root");
    for (const s of spans) {
      assert.equal(s.traceId, run.traceId, `${s.name} is in the run's trace`);
      if (s !== run) assert.equal(s.parentSpanId, run.spanId, `${s.name} is a child of the run span`);
      assert.equal(s.resource["service.name"], "billing", "OTEL_SERVICE_NAME");
      assert.equal(s.resource["deployment.environment"], "test", "OTEL_RESOURCE_ATTRIBUTES");
      assert.equal(s.resource.team, "ops");
    }

    // The run span: from the run's creation (in `up`) to its end (in `approve`).
    assert.equal(run.attrs["smithers.workflow.name"], "publish");
    assert.equal(run.attrs["smithers.run.status"], "finished");
    assert.ok(nanos(run.startTimeUnixNano) <= nanos(byName["task draft"].startTimeUnixNano), "the run span starts when the run was created");
    assert.ok(nanos(run.endTimeUnixNano) >= nanos(byName["task publish"].endTimeUnixNano));
    assert.ok(!run.status?.code || run.status.code === 0 || run.status.code === "STATUS_CODE_UNSET", JSON.stringify(run.status));
    const waiting = run.events.filter((e) => e.name === "smithers.approval.waiting");
    const decided = run.events.filter((e) => e.name === "smithers.approval.decided");
    assert.equal(waiting.length, 1, JSON.stringify(run.events.map((e) => e.name)));
    assert.equal(waiting[0].attrs["smithers.node.id"], "publish-approval");
    assert.equal(waiting[0].attrs["smithers.approval.title"], 'Publish "Traced"?');
    assert.equal(decided.length, 1);
    assert.deepEqual([decided[0].attrs["smithers.node.id"], decided[0].attrs["smithers.approval.decision"], decided[0].attrs["smithers.approval.decided_by"]], ["publish-approval", "approved", "alice"]);
    assert.ok(nanos(waiting[0].timeUnixNano) < nanos(decided[0].timeUnixNano));
    assert.ok(run.events.some((e) => e.name === "smithers.run.status" && e.attrs["smithers.run.status"] === "waiting-approval"), "the run's wait is an event of its span");

    // Node attempts: id, kind, attempt, outcome.
    for (const id of ["draft", "publish"]) {
      const s = byName[`task ${id}`];
      assert.deepEqual(
        [s.attrs["smithers.node.id"], s.attrs["smithers.node.kind"], s.attrs["smithers.node.attempt"], s.attrs["smithers.node.iteration"], s.attrs["smithers.node.outcome"]],
        [id, "compute", 1, 0, "finished"],
      );
    }

    // The approval: from its request to alice's decision, with both as events.
    const gate = byName["approval publish-approval"];
    assert.equal(gate.attrs["smithers.approval.decision"], "approved");
    assert.equal(gate.attrs["smithers.approval.decided_by"], "alice");
    assert.equal(gate.attrs["smithers.approval.kind"], "gate");
    assert.deepEqual(gate.events.map((e) => e.name), ["smithers.approval.waiting", "smithers.approval.decided"]);
    assert.equal(gate.events[1].attrs["smithers.approval.decided_by"], "alice");
    assert.ok(nanos(gate.startTimeUnixNano) <= nanos(gate.endTimeUnixNano));
    assert.ok(nanos(gate.startTimeUnixNano) >= nanos(byName["task draft"].endTimeUnixNano), "the wait starts after draft finished");
    assert.ok(nanos(gate.endTimeUnixNano) <= nanos(byName["task publish"].startTimeUnixNano), "publish starts after the decision");
  });

  test("on PostgreSQL (the reads a run span needs go through the engine's own thread): the same trace, and a cancel ends it", async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" };
    const db = pgDatabase("otel");
    const up = await smithers(["up", EXAMPLE, "--input", '{"title":"Remote"}', "--json"], { db, env });
    assert.equal(up.code, 3, up.stderr);
    const approve = await smithers(["approve", up.json.runId, "--by", "carol"], { db, env });
    assert.equal(approve.code, 0, approve.stderr);
    const spans = otlp.spans().filter((s) => s.attrs["smithers.run.id"] === up.json.runId);
    assert.deepEqual(spans.map((s) => s.name).sort(), ["approval publish-approval", "run publish", "task draft", "task publish"]);
    for (const s of spans) assert.equal(s.traceId, traceIdOf(up.json.runId), s.name);
    const run = spans.find((s) => s.name === "run publish");
    assert.deepEqual(run.events.filter((e) => e.name === "smithers.approval.decided").map((e) => e.attrs["smithers.approval.decided_by"]), ["carol"]);

    // `cancel` ends a parked run and closes its engine at once: the run span is made all the same.
    const parked = await smithers(["up", EXAMPLE, "--json"], { db, env });
    assert.equal(parked.code, 3, parked.stderr);
    const cancel = await smithers(["cancel", parked.json.runId], { db, env });
    assert.equal(cancel.code, 0, cancel.stderr);
    const cancelled = otlp.spans().find((s) => s.attrs["smithers.run.id"] === parked.json.runId && s.name === "run publish");
    assert.ok(cancelled, "the cancelled run's span");
    assert.equal(cancelled.attrs["smithers.run.status"], "cancelled");
    assert.equal(cancelled.spanId, runSpanIdOf(parked.json.runId));
    assert.ok(cancelled.events.some((e) => e.name === "smithers.approval.waiting"), "its history was read before the engine closed");
  });

  test("a failing attempt: its error code and status; the run span ends failed", async () => {
    const file = box.write(
      "failing.js",
      `import { task, fields, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
let n = 0;
const flaky = task("flaky", { output: fields({ v: "number" }), retries: 1, run: () => { n += 1; throw Object.assign(new Error("flaky broke (" + n + ")"), { code: "FLAKY_BROKE" }); } });
export default workflow({ name: "failing", steps: [flaky] });
`,
    );
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" };
    const up = await smithers(["up", file, "--json"], { db: join(box.dir, "failing.db"), env });
    assert.equal(up.code, 1, up.stdout + up.stderr);
    const runId = up.json.runId;
    const spans = otlp.spans().filter((s) => s.attrs["smithers.run.id"] === runId);
    const attempts = spans.filter((s) => s.name === "task flaky").sort((a, b) => a.attrs["smithers.node.attempt"] - b.attrs["smithers.node.attempt"]);
    assert.deepEqual(attempts.map((s) => [s.attrs["smithers.node.attempt"], s.attrs["smithers.node.outcome"], s.attrs["smithers.node.error.code"]]), [
      [1, "retrying", "FLAKY_BROKE"],
      [2, "failed", "FLAKY_BROKE"],
    ]);
    for (const a of attempts) {
      assert.equal(a.status?.code, 2, "an attempt that failed has status ERROR");
      assert.match(a.status.message, /flaky broke/);
      assert.equal(a.attrs["error.type"], "FLAKY_BROKE");
    }
    const run = spans.find((s) => s.name === "run failing");
    assert.ok(run, spans.map((s) => s.name).join(", "));
    assert.equal(run.attrs["smithers.run.status"], "failed");
    assert.equal(run.attrs["smithers.run.error.code"], "FLAKY_BROKE");
    assert.equal(run.status?.code, 2);
  });

  test("a process killed during an attempt: the process that resumes the run makes the abandoned attempt's span, from the attempt's own start", async () => {
    const marker = join(box.dir, "slow-started");
    const file = box.write(
      "slow.js",
      `import { existsSync, writeFileSync } from "node:fs";
import { task, fields, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
const slow = task("slow", { output: fields({ v: "number" }), run: async () => {
  if (existsSync(${JSON.stringify(marker)})) return { v: 2 };
  writeFileSync(${JSON.stringify(marker)}, "");
  await new Promise((r) => setTimeout(r, 60_000));
  return { v: 1 };
} });
export default workflow({ name: "slow", steps: [slow] });
`,
    );
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" };
    const db = join(box.dir, "abandoned.db");
    const first = spawnCli(["up", file, "--run-id", "run-abandoned", "--db", db], { env });
    await waitFor(() => existsSync(marker), "the first attempt to start");
    const killedAt = Date.now();
    first.child.kill("SIGKILL");
    await first.done;
    const resumed = await smithers(["resume", "run-abandoned"], { db, env });
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    const attempts = otlp
      .spans()
      .filter((s) => s.attrs["smithers.run.id"] === "run-abandoned" && s.name === "task slow")
      .sort((a, b) => a.attrs["smithers.node.attempt"] - b.attrs["smithers.node.attempt"]);
    assert.deepEqual(attempts.map((s) => [s.attrs["smithers.node.attempt"], s.attrs["smithers.node.outcome"]]), [
      [1, "abandoned"],
      [2, "finished"],
    ]);
    // The killed process made no span; the first attempt's start comes from its row.
    assert.ok(Number(nanos(attempts[0].startTimeUnixNano) / 1_000_000n) <= killedAt, "the abandoned attempt starts when it started, before the kill");
    assert.ok(nanos(attempts[0].endTimeUnixNano) > nanos(attempts[0].startTimeUnixNano));
    const run = otlp.spans().find((s) => s.attrs["smithers.run.id"] === "run-abandoned" && s.name === "run slow");
    assert.equal(run?.attrs["smithers.run.status"], "finished");
  });

  test("the default protocol, http/protobuf, posts protobuf to /v1/traces", async () => {
    const before = otlp.requests.length;
    const up = await smithers(["up", EXAMPLE, "--json"], { db: join(box.dir, "proto.db"), env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url } });
    assert.equal(up.code, 3, up.stderr);
    const sent = otlp.requests.slice(before);
    assert.ok(sent.length >= 1);
    assert.deepEqual([...new Set(sent.map((r) => `${r.path} ${r.contentType}`))], ["/v1/traces application/x-protobuf"]);
    assert.ok(sent.some((r) => r.body.includes(Buffer.from("task draft"))), "the span's name is in the protobuf body");
  });

  test("a collector that is down: the run's outcome is unchanged, one warning, the CLI exits promptly", async () => {
    // A port nobody listens on (the receiver's, once closed).
    const gone = await receiver();
    const url = gone.url;
    await gone.close();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" };
    const db = join(box.dir, "down.db");
    const t0 = Date.now();
    const up = await smithers(["up", EXAMPLE, "--json"], { db, env });
    const upMs = Date.now() - t0;
    assert.equal(up.code, 3, up.stderr);
    assert.equal(up.json.status, "waiting-approval");
    const warnings = up.stderr.split("\n").filter((l) => l.startsWith("smithers: spans could not be exported"));
    assert.equal(warnings.length, 1, up.stderr);
    assert.match(warnings[0], new RegExp(`to ${url.replace(/[.:/]/g, "\\$&")} \\(.*ECONNREFUSED`));
    assert.ok(upMs < 8_000, `up took ${upMs} ms`);
    const t1 = Date.now();
    const approve = await smithers(["approve", up.json.runId, "--by", "bob", "--json"], { db, env });
    const approveMs = Date.now() - t1;
    assert.equal(approve.code, 0, approve.stderr);
    assert.equal(approve.json.run.status, "finished");
    assert.equal(approve.stderr.split("\n").filter((l) => l.startsWith("smithers: spans could not be exported")).length, 1, approve.stderr);
    assert.ok(approveMs < 8_000, `approve took ${approveMs} ms`);
    const status = await smithers(["inspect", up.json.runId, "--json"], { db });
    assert.equal(status.json.run.status, "finished");
  });

  test("OTEL_TRACES_EXPORTER=none, or no endpoint: nothing is sent", async () => {
    const before = otlp.requests.length;
    const off = await smithers(["up", EXAMPLE, "--json"], { db: join(box.dir, "off.db"), env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_TRACES_EXPORTER: "none" } });
    assert.equal(off.code, 3, off.stderr);
    const none = await smithers(["up", EXAMPLE, "--json"], { db: join(box.dir, "off.db") });
    assert.equal(none.code, 3, none.stderr);
    assert.equal(otlp.requests.length, before);
  });

  test("smithers worker: a queued run it drives is traced; its spans leave before it stops", async (t) => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_BSP_SCHEDULE_DELAY: "100" };
    const db = join(box.dir, "worker.db");
    const queued = await smithers(["up", EXAMPLE, "--detach", "--json"], { db, env });
    assert.equal(queued.code, 0, queued.stderr);
    const runId = queued.json.runId;
    const worker = startWorker(db, { env });
    t.after(() => worker.stop());
    const spans = await waitFor(() => {
      const s = otlp.spans().filter((x) => x.attrs["smithers.run.id"] === runId);
      return s.some((x) => x.name === "task draft") ? s : null;
    }, "the worker's span of draft");
    assert.equal(spans.find((x) => x.name === "task draft").traceId, traceIdOf(runId));
    const stopped = await worker.stop();
    assert.equal(stopped.code, 0, worker.stderr());
  });

  test("a Node service: an engine with tracing: true exports, flushTraces() sends what is made; without it, nothing", async () => {
    const names = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME"];
    const saved = names.map((n) => process.env[n]);
    Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_SERVICE_NAME: "embedded" });
    try {
      const build = task("build", { output: fields({ v: "number" }), run: () => ({ v: 1 }) });
      const gate = approval("gate", { needs: { build }, request: { title: "Ship?" } });
      const ship = task("ship", { output: fields({ v: "number" }), needs: { gate }, run: () => ({ v: 2 }) });
      const wf = workflow({ name: "embedded", steps: [build, gate, ship] });

      const quiet = new SmithersEngine({ database: join(box.dir, "quiet.db") });
      const q = await quiet.run(wf);
      assert.equal(q.status, "waiting-approval");
      quiet.close();

      const engine = new SmithersEngine({ database: join(box.dir, "embedded.db"), tracing: true });
      const r = await engine.run(wf);
      assert.equal(r.status, "waiting-approval");
      const { done } = await engine.approve(r.runId, { decidedBy: "dana" });
      assert.equal((await done).status, "finished");
      engine.close();
      await flushTraces();
      const spans = otlp.spans().filter((x) => x.resource["service.name"] === "embedded");
      assert.deepEqual(spans.filter((x) => x.attrs["smithers.run.id"] === q.runId), [], "an engine without tracing makes no span");
      const mine = spans.filter((x) => x.attrs["smithers.run.id"] === r.runId);
      assert.deepEqual(mine.map((x) => x.name).sort(), ["approval gate", "run embedded", "task build", "task ship"]);
      assert.equal(mine.find((x) => x.name === "approval gate").attrs["smithers.approval.decided_by"], "dana");
    } finally {
      names.forEach((n, i) => (saved[i] === undefined ? delete process.env[n] : (process.env[n] = saved[i])));
    }
  });

  test("smithers serve: an API decision resumes the run in a worker thread; its spans join the run's trace", async (t) => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_BSP_SCHEDULE_DELAY: "100" };
    const db = join(box.dir, "serve.db");
    const up = await smithers(["up", EXAMPLE, "--input", '{"title":"Served"}', "--json"], { db, env });
    assert.equal(up.code, 3, up.stderr);
    const runId = up.json.runId;
    const serve = await startServe({ db, env });
    t.after(() => serve.stop());
    const api = client(serve.url, serve.token);
    const decided = await api(`/v1/runs/${runId}/nodes/publish-approval/approve`, { body: { note: "ok" } });
    assert.equal(decided.status, 200, JSON.stringify(decided.body));
    const spans = await waitFor(() => {
      const s = otlp.spans().filter((x) => x.attrs["smithers.run.id"] === runId);
      return s.some((x) => x.name === "run publish") && s.some((x) => x.name === "task publish") && s.some((x) => x.name === "approval publish-approval") ? s : null;
    }, "the served run's spans");
    for (const s of spans) assert.equal(s.traceId, traceIdOf(runId), s.name);
    const publish = spans.find((x) => x.name === "task publish");
    assert.equal(publish.attrs["smithers.node.kind"], "compute", "the kind comes from the worker's render");
    assert.equal(publish.parentSpanId, runSpanIdOf(runId));
    const gate = spans.find((x) => x.name === "approval publish-approval");
    assert.equal(gate.attrs["smithers.approval.decided_by"], serve.user, "the token's user decided");
    assert.equal(decided.body.decidedBy, serve.user);
    const stopped = await serve.stop();
    assert.equal(stopped.code, 0);
  });
});
