// Issue 16, item 3: on PostgreSQL, Node's event loop is never blocked on the network. The
// engine talks to a server of the test's own (helpers/postgres.js) through a loopback TCP
// proxy that holds every chunk, each way, for DELAY_MS (a slow network). A run of several
// tasks and a gate is driven and decided through the engine while a 5 ms interval records
// how late it fires: it must keep firing and almost never stall for a round trip
// (2 × DELAY_MS), as it does at every call when calls wait for their round trips on the JS
// thread (the synchronous binding).
// The proxy lives in a worker thread, so a blocked main thread cannot stall it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pgServer } from "./helpers/postgres.js";
import { SmithersEngine, approvalDecisionSchema, createSmithers } from "../npm/smithers-rs/src/index.js";
import { NativeEngine } from "../npm/smithers-rs/src/native.js";
import { loadServeConfig } from "../npm/smithers-rs/src/serve/config.js";
import { startServer } from "../npm/smithers-rs/src/serve/server.js";
import { newWebhookSecret } from "../npm/smithers-rs/src/serve/webhooks.js";
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
// Loaded now: the engine loads them on its first run, and compiling them is not the network.
import "../npm/smithers-rs/src/driver.js";
import "../npm/smithers-rs/src/loader/load.js";

const h = (type, props, ...c) => jsx(type, c.length === 0 ? { ...props } : { ...props, children: c.length === 1 ? c[0] : c });

/** How long the proxy holds each chunk, each way. */
const DELAY_MS = 100;
const TICK_MS = 5;

const PROXY = `
const net = require("node:net");
const { parentPort, workerData } = require("node:worker_threads");
const { host, port, delay } = workerData;
const server = net.createServer((client) => {
  const upstream = net.connect(port, host);
  const pipe = (from, to) => {
    from.on("data", (chunk) => setTimeout(() => to.writable && to.write(chunk), delay));
    from.on("end", () => setTimeout(() => to.end(), delay));
    from.on("error", () => to.destroy());
  };
  pipe(client, upstream);
  pipe(upstream, client);
});
server.listen(0, "127.0.0.1", () => parentPort.postMessage(server.address().port));
`;

/** Starts the delaying proxy in front of `url`'s server; resolves its URL and the worker. */
async function delayedUrl(url) {
  const target = new URL(url);
  const worker = new Worker(PROXY, { eval: true, workerData: { host: target.hostname, port: Number(target.port), delay: DELAY_MS } });
  const port = await new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  const proxied = new URL(url);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(port);
  return { url: proxied.toString(), worker };
}

let n = 0;
const withSchema = (url, name) => `${url}${url.includes("?") ? "&" : "?"}schema=${name}`;
/**
 * A new schema, created and migrated over the direct connection (dozens of statements the
 * test need not wait on); returns its URL through the proxy.
 */
function prepared(name) {
  const schema = `${name}_${process.pid}_${n++}`;
  new NativeEngine(withSchema(pgServer(), schema)).close();
  return withSchema(proxy.url, schema);
}
let proxy;

/** Records the largest lateness of a TICK_MS interval until stopped. */
function lagMeter() {
  let last = performance.now();
  let max = 0;
  let ticks = 0;
  /** Stalls as long as one round trip through the proxy (what waiting on it costs at least). */
  let stalls = 0;
  let stalledMs = 0;
  let started = last;
  const handle = setInterval(() => {
    const now = performance.now();
    const lag = now - last - TICK_MS;
    max = Math.max(max, lag);
    if (lag >= 2 * DELAY_MS) {
      stalls += 1;
      stalledMs += lag;
    }
    last = now;
    ticks += 1;
  }, TICK_MS);
  return {
    reset() {
      last = performance.now();
      max = 0;
      ticks = 0;
      stalls = 0;
      stalledMs = 0;
      started = last;
    },
    stop() {
      clearInterval(handle);
      return { max, ticks, stalls, stalledMs, elapsedMs: performance.now() - started };
    },
  };
}

const { Workflow, Sequence, Task, Approval, smithers, outputs } = createSmithers({
  step: { type: "object", properties: { n: { type: "number" } }, required: ["n"] },
  gate: approvalDecisionSchema,
  done: { type: "object", properties: { by: { type: "string" } }, required: ["by"] },
});
const workflow = smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return h(
    Workflow,
    { name: "pg-async" },
    h(
      Sequence,
      {},
      h(Task, { id: "a", output: outputs.step }, () => ({ n: 1 })),
      h(Task, { id: "b", output: outputs.step }, () => ({ n: 2 })),
      h(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" } }),
      decision ? h(Task, { id: "done", output: outputs.done }, () => ({ by: decision.decidedBy })) : null,
    ),
  );
});

describe("PostgreSQL: the JS thread does not wait on the network", () => {
  const dir = mkdtempSync(join(tmpdir(), "smithers-pg-async-"));
  before(async () => {
    proxy = await delayedUrl(pgServer());
  });
  after(() => {
    proxy?.worker.terminate();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a run of tasks and a decision over a slow network: the event loop keeps turning", async (t) => {
    const database = prepared("lag");
    const engine = new SmithersEngine({ database });
    assert.equal(engine.native.remote, true);
    const meter = lagMeter();
    try {
      // The control: a synchronous call waits for its round trips on this thread, so the
      // proxy's delay shows on the meter (at least two delays: there and back).
      meter.reset();
      engine.listRuns();
      await new Promise((r) => setTimeout(r, TICK_MS * 3));
      const blocked = meter.stop();
      assert.ok(blocked.max >= DELAY_MS * 2 - TICK_MS, `a synchronous call should stall the loop (max lag ${blocked.max.toFixed(1)} ms)`);

      // The same run once on SQLite first, unmeasured: what is compiled on first use (the
      // renderer's paths, the schemas' validators) is this thread's work, not the network's.
      const warm = new SmithersEngine({ database: join(dir, "warm.db") });
      try {
        const first = await warm.run(workflow, { runId: "warm" });
        assert.equal(first.status, "waiting-approval");
        assert.equal((await (await warm.approve("warm", { decidedBy: "w" })).done).status, "finished");
      } finally {
        warm.close();
      }

      const watch = lagMeter();
      const { runId, done } = await engine.start(workflow, { runId: "lag-1" });
      assert.equal((await done).status, "waiting-approval");
      const outcome = await engine.approve(runId, { decidedBy: "carol" });
      assert.equal(outcome.status, "approved");
      assert.equal((await outcome.done).status, "finished");
      await assert.rejects(engine.approve(runId, { nodeId: "gate", decidedBy: "dave" }), { code: "ALREADY_DECIDED" });
      const { max, ticks, stalls, stalledMs, elapsedMs } = watch.stop();
      const info = await engine.native.inspectAsync(runId);
      assert.deepEqual(
        info.outputs.filter((o) => o.table === "step").map((o) => o.value.n),
        [1, 2],
      );
      assert.deepEqual(info.outputs.find((o) => o.table === "done").value, { by: "carol" });
      // Blocked on the network means stalled for at least one round trip (2 × DELAY_MS) at
      // every call: with the synchronous binding the loop is stalled nearly all the time (the
      // drive makes dozens of calls; forced synchronous, the interval fired 3 times in all).
      // Single stalls are not held to a bound: an idle Node process on this loaded 2-core
      // machine sees up to ~140 ms from the scheduler alone, and a test run beside others
      // more, so the test asserts how much of the time the loop was stalled that long.
      t.diagnostic(`max event-loop lag ${max.toFixed(1)} ms; ${stalls} stall(s) ≥ ${2 * DELAY_MS} ms, ${stalledMs.toFixed(0)} of ${elapsedMs.toFixed(0)} ms; ${ticks} ticks; one synchronous call stalled it ${blocked.max.toFixed(1)} ms`);
      assert.ok(ticks > 20, `the interval should have fired throughout (${ticks} ticks in ${elapsedMs.toFixed(0)} ms)`);
      assert.ok(stalledMs < elapsedMs / 10, `the event loop was stalled for round trips ${stalledMs.toFixed(0)} of ${elapsedMs.toFixed(0)} ms (${stalls} stalls, max ${max.toFixed(1)} ms; proxy delay ${DELAY_MS} ms each way)`);
    } finally {
      meter.stop();
      engine.close();
    }
  });

  test("smithers serve over a slow network: a webhook goes out, every kind of route answers, the event loop keeps turning", async (t) => {
    const database = prepared("serve");
    const received = [];
    const hook = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        res.writeHead(204).end();
      });
    });
    await new Promise((r) => hook.listen(0, "127.0.0.1", r));
    t.after(() => new Promise((r) => hook.close(r)));
    const token = "pg-async-serve-token-0123456789";
    const configPath = join(dir, "serve.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        tokens: [{ user: "alice", token, scopes: ["admin"] }],
        webhooks: [{ name: "ops", url: `http://127.0.0.1:${hook.address().port}/hook`, events: ["gate.waiting"], secret: newWebhookSecret() }],
      }),
    );
    const server = await startServer({ dbPath: database, config: loadServeConfig({ configPath }), port: 0, pollMs: 20, webhookPollMs: 50 });
    // The run is started on a direct connection: only serve talks through the slow proxy.
    const engine = new SmithersEngine({ database: withSchema(pgServer(), new URL(database).searchParams.get("schema")) });
    const meter = lagMeter();
    try {
      meter.reset();
      const { runId, done } = await engine.start(workflow, { runId: "served-1" });
      assert.equal((await done).status, "waiting-approval");
      // Serve's webhook dispatcher reads the feed, the run, enqueues, claims and settles.
      while (!received.some((m) => m.type === "gate.waiting" && m.data.run.runId === runId)) await new Promise((r) => setTimeout(r, 20));
      const get = async (path) => {
        const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.status, 200, `${path}: ${res.status} ${await res.clone().text()}`);
        return path === "metrics" ? res.text() : res.json();
      };
      assert.equal((await get(`v1/runs/${runId}`)).run.status, "waiting-approval");
      assert.equal((await get(`v1/approvals?runId=${runId}`)).approvals[0].nodeId, "gate");
      assert.deepEqual((await get(`v1/runs/${runId}/logs`)).logs, []);
      assert.ok((await get("v1/deliveries")).deliveries.some((d) => d.runId === runId && d.status === "delivered"));
      assert.match(await get("metrics"), /smithers_/);
      const cancelled = await fetch(`${server.url}v1/runs/${runId}/cancel`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      assert.equal(cancelled.status, 200, await cancelled.text());
      assert.equal((await engine.getRunAsync(runId)).status, "cancelled");
      const { max, ticks, stalls, stalledMs, elapsedMs } = meter.stop();
      t.diagnostic(`serve: max event-loop lag ${max.toFixed(1)} ms; ${stalls} stall(s) ≥ ${2 * DELAY_MS} ms, ${stalledMs.toFixed(0)} of ${elapsedMs.toFixed(0)} ms; ${ticks} ticks`);
      assert.ok(ticks > 20, `the interval should have fired throughout (${ticks} ticks in ${elapsedMs.toFixed(0)} ms)`);
      assert.ok(stalledMs < elapsedMs / 10, `the event loop was stalled for round trips ${stalledMs.toFixed(0)} of ${elapsedMs.toFixed(0)} ms (${stalls} stalls, max ${max.toFixed(1)} ms)`);
    } finally {
      meter.stop();
      engine.close();
      await server.close({ graceMs: 1000 });
    }
  });

  test("errors keep their stable codes through the asynchronous calls", async () => {
    const engine = new SmithersEngine({ database: prepared("codes") });
    try {
      await assert.rejects(engine.approve("no-such-run", { nodeId: "gate", decidedBy: "x" }), { name: "SmithersError", code: "RUN_NOT_FOUND" });
      await assert.rejects(engine.native.runSummaryAsync("no-such-run"), (e) => e.code === "RUN_NOT_FOUND" && e.details?.runId === "no-such-run");
      // A value napi cannot convert: the call's argument code, as a rejection.
      await assert.rejects(engine.native.approveAsync({ runId: 7 }), { code: "INVALID_DECISION" });
      await assert.rejects(engine.native.completeTasksAsync("r", "[]", { graphJson: "{}", graphId: 1 }), { code: "INVALID_ARGUMENT" });
      await assert.rejects(engine.native.submitGraphAsync("no-such-run", "not json"), (e) => typeof e.code === "string" && e.code !== "INTERNAL");
    } finally {
      engine.close();
    }
  });

  test("closing the engine with calls in flight settles every one (ENGINE_CLOSED for those not yet run)", async () => {
    const native = new NativeEngine(prepared("close"));
    assert.equal(native.remote, true);
    const calls = Array.from({ length: 6 }, (_, i) => native.listRunsAsync({ limit: i + 1 }));
    native.close();
    const settled = await Promise.allSettled(calls);
    const closed = settled.filter((s) => s.status === "rejected");
    assert.ok(closed.length >= 5, `the queued calls should be refused (${JSON.stringify(settled.map((s) => s.status))})`);
    for (const s of closed) assert.equal(s.reason.code, "ENGINE_CLOSED");
    for (const s of settled.filter((x) => x.status === "fulfilled")) assert.ok(Array.isArray(s.value));
    await assert.rejects(native.runSummaryAsync("x"), { code: "ENGINE_CLOSED" });
    assert.throws(() => native.runSummary("x"), { code: "ENGINE_CLOSED" });

    // A run being driven when its engine closes: its drive ends (ENGINE_CLOSED), the process
    // goes on.
    const engine = new SmithersEngine({ database: prepared("close_run") });
    const { done } = await engine.start(workflow, { runId: "closing-1" });
    engine.close();
    const outcome = await done.then(
      (r) => ({ ok: r }),
      (e) => ({ error: e }),
    );
    if (outcome.error) assert.equal(outcome.error.code, "ENGINE_CLOSED");
    else assert.ok(["running", "waiting-approval", "failed"].includes(outcome.ok.status), JSON.stringify(outcome.ok));
  });
});
