// What a bad workflow or a hostile request must not do to `smithers serve` (issue 12): a render
// that spins or a body that blocks keeps the API answering and fails its run with a code; a
// task that throws anything fails its run; runs serve cannot resume are reported and do not
// hide newer decisions; a 413 closes its connection; a sign-in link needs a confirmation; a
// lone surrogate in a note is a bad decision.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { PKG_INDEX_URL, spawnNode, waitFor } from "./helpers/durability.js";
import { expectExit, runIdOf, sandbox, smithers } from "./helpers/cli.js";
import { findLines, logLines } from "./helpers/log.js";
import { client, startServe } from "./helpers/serve.js";

const TOKEN = "alice-reliability-token-0123";
const TOKENS = JSON.stringify([{ user: "alice", token: TOKEN, scopes: ["admin"] }]);

/** A builder workflow: `build`, a gate, then `after`; `{render}` runs at renders once the gate is decided, `{body}` is after's body. */
function workflowFile({ name = "bad", render = "", body = "return { v: 2 };" } = {}) {
  return `import { approval, fields, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
const build = task("build", { output: fields({ v: "number" }), run: () => ({ v: 1 }) });
const gate = approval("gate", { needs: { build }, request: ({ build }) => { if (build) { ${render} } return { title: "Go?" }; } });
const after = task("after", { needs: { gate }, output: fields({ v: "number" }), run: async () => { ${body} } });
export default workflow({ name: ${JSON.stringify(name)}, steps: [build, gate, after] });
`;
}

/** serve on the box's database; its logs (SMITHERS_LOG=`log`) go to `<box>/serve.log`. */
async function serveWith(t, box, workers, log = "smithers_js::isolation=debug,smithers_core::inspect=debug") {
  box.write("serve.json", JSON.stringify({ workers }));
  const env = { SMITHERS_TOKENS: TOKENS, SMITHERS_LOG: log, SMITHERS_LOG_FILE: join(box.dir, "serve.log") };
  const server = await startServe({ db: box.db, cwd: box.dir, config: join(box.dir, "serve.json"), env });
  t.after(() => server.stop("SIGKILL"));
  return { server, api: client(server.url, TOKEN) };
}

function box(t) {
  const b = sandbox("smithers-serve-rel-");
  t.after(() => b.cleanup());
  return b;
}

/** /healthz answers while `during` is under way (each request gets 5 s). */
async function healthyWhile(api, until) {
  let answered = 0;
  for (;;) {
    const r = await Promise.race([api("/healthz", { token: null }), new Promise((res) => setTimeout(res, 5000, null))]);
    assert.ok(r && r.status === 200, "serve stopped answering /healthz");
    answered += 1;
    if (await until()) return answered;
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe("smithers serve keeps answering whatever a workflow does", { concurrency: 3, timeout: 180_000 }, () => {
  test("a render that spins: /healthz and the API answer, the run fails with RENDER_TIMEOUT", async (t) => {
    const b = box(t);
    // `after`'s skipIf is evaluated at every render: once the gate is decided, it never returns.
    const wf = b.write(
      "spin.js",
      `import { approval, fields, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
const build = task("build", { output: fields({ v: "number" }), run: () => ({ v: 1 }) });
const gate = approval("gate", { needs: { build }, request: { title: "Go?" } });
const after = task("after", { needs: { gate }, output: fields({ v: "number" }), skipIf: ({ gate }) => { if (gate) { for (;;) {} } return false; }, run: () => ({ v: 2 }) });
export default workflow({ name: "spin", steps: [build, gate, after] });
`,
    );
    const runId = runIdOf((await expectExit(assert, 3, ["up", wf], { db: b.db })).stdout);
    const { api } = await serveWith(t, b, { renderTimeoutMs: 1500 });
    const r = await api(`/v1/runs/${runId}/nodes/gate/approve`, { body: {} });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const answered = await healthyWhile(api, async () => (await api(`/v1/runs/${runId}`)).body.run.status === "failed");
    assert.ok(answered >= 2);
    const run = (await api(`/v1/runs/${runId}`)).body.run;
    assert.equal(run.error.code, "RENDER_TIMEOUT", JSON.stringify(run));
    assert.equal((await api("/v1/approvals")).status, 200);
    // The documented log lines: the drive handed to a worker, the watchdog stopping it.
    const lines = logLines(join(b.dir, "serve.log"));
    assert.match(findLines(lines, "smithers_js::isolation", "drive handed to a worker", runId)[0] ?? lines.join("\n"), / DEBUG smithers_js::isolation: drive handed to a worker run_id="[^"]+" kind="resume" workflow_path="[^"]+spin\.js" spare=(true|false) workers=1$/);
    assert.match(findLines(lines, "smithers_js::isolation", "stopping a worker", runId)[0] ?? lines.join("\n"), /  WARN smithers_js::isolation: stopping a worker run_id="[^"]+" code="RENDER_TIMEOUT"$/);
    assert.match(findLines(lines, "smithers_js::isolation", "worker ended before its drive did", runId)[0] ?? lines.join("\n"), /  WARN smithers_js::isolation: worker ended before its drive did run_id="[^"]+" code="RENDER_TIMEOUT" owned=true$/);
  });

  test("a task body that never yields: the API answers, the run fails with WORKFLOW_BLOCKED", async (t) => {
    const b = box(t);
    const wf = b.write("block.js", workflowFile({ name: "block", body: "for (;;) {}" }));
    const runId = runIdOf((await expectExit(assert, 3, ["up", wf], { db: b.db })).stdout);
    const { api } = await serveWith(t, b, { blockedTimeoutMs: 1500 });
    assert.equal((await api(`/v1/runs/${runId}/nodes/gate/approve`, { body: {} })).status, 200);
    await healthyWhile(api, async () => (await api(`/v1/runs/${runId}`)).body.run.status === "failed");
    const info = (await api(`/v1/runs/${runId}`)).body;
    assert.equal(info.run.error.code, "WORKFLOW_BLOCKED", JSON.stringify(info.run));
    assert.equal(info.nodes.find((n) => n.nodeId === "after").state, "cancelled");
  });

  test("a task that throws Object.create(null), or a stray timer that throws: serve lives, the run fails with a code", async (t) => {
    const b = box(t);
    const nullProto = b.write("null.js", workflowFile({ name: "null-proto", body: "throw Object.create(null);" }));
    const stray = b.write("stray.js", workflowFile({ name: "stray", body: "setTimeout(() => { throw Object.create(null); }, 1); await new Promise((r) => setTimeout(r, 200)); return { v: 2 };" }));
    const first = runIdOf((await expectExit(assert, 3, ["up", nullProto], { db: b.db })).stdout);
    const second = runIdOf((await expectExit(assert, 3, ["up", stray], { db: b.db })).stdout);
    const { server, api } = await serveWith(t, b, {});
    for (const id of [first, second]) assert.equal((await api(`/v1/runs/${id}/nodes/gate/approve`, { body: {} })).status, 200);
    await waitFor(async () => (await api(`/v1/runs/${first}`)).body.run?.status === "failed", { what: "the null-proto run to fail" });
    await waitFor(async () => (await api(`/v1/runs/${second}`)).body.run?.status === "failed", { what: "the stray-timer run to fail" });
    assert.equal((await api(`/v1/runs/${first}`)).body.run.error.code, "TASK_FAILED");
    assert.equal((await api(`/v1/runs/${second}`)).body.run.error.code, "WORKFLOW_CRASHED");
    const crashed = findLines(logLines(join(b.dir, "serve.log")), "smithers_js::isolation", "worker ended before its drive did", second);
    assert.match(crashed[0] ?? "none", /  WARN smithers_js::isolation: worker ended before its drive did run_id="[^"]+" code="WORKFLOW_CRASHED" owned=true$/);
    assert.equal(server.child.exitCode, null, "serve is alive");
    assert.equal((await api("/healthz", { token: null })).status, 200);
  });
});

describe("smithers serve: runs it cannot resume", { timeout: 180_000 }, () => {
  test("120 runs whose workflow file is gone are reported and do not hide a newer decision", async (t) => {
    const b = box(t);
    const gone = b.write("gone.js", workflowFile({ name: "gone" }));
    const good = b.write("good.js", workflowFile({ name: "good" }));
    // One process records 120 runs of `gone` decided with no resume, then one of `good`.
    const script = b.write(
      "make.mjs",
      `import { SmithersEngine } from ${JSON.stringify(PKG_INDEX_URL)};
const engine = new SmithersEngine({ dbPath: ${JSON.stringify(b.db)} });
const ids = [];
for (let i = 0; i < 121; i++) {
  const file = i < 120 ? ${JSON.stringify(gone)} : ${JSON.stringify(good)};
  const { runId, done } = await engine.start(file);
  await done;
  ids.push(runId);
}
for (const runId of ids) await engine.approve(runId, { decidedBy: "carol", resume: false });
console.log(JSON.stringify(ids));
engine.close();
`,
    );
    const made = await spawnNode([script], { cwd: b.dir }).done;
    assert.equal(made.code, 0, made.stderr);
    const ids = JSON.parse(made.stdout);
    rmSync(gone);
    const { api } = await serveWith(t, b, {});
    const goodId = ids.at(-1);
    await waitFor(async () => (await api(`/v1/runs/${goodId}`)).body.run?.status === "finished", { what: "the newest decision to be picked up", timeoutMs: 60_000 });
    // Each run serve could not resume says why: in the API, in the listing the inbox shows, in `why`.
    await waitFor(async () => (await api(`/v1/runs?resumeFailed=true&limit=1000`)).body.runs?.length === 120, { what: "120 runs reported", timeoutMs: 60_000 });
    const one = (await api(`/v1/runs/${ids[0]}`)).body.run;
    assert.equal(one.status, "running");
    assert.equal(one.resumeError.code, "WORKFLOW_NOT_FOUND");
    const why = await smithers(["why", ids[0]], { db: b.db });
    assert.equal(why.code, 0, why.stderr);
    assert.match(why.stdout, /could not resume.*WORKFLOW_NOT_FOUND/s);
    // serve's watcher logged each run it found nobody driving, and each it could not resume.
    const lines = logLines(join(b.dir, "serve.log"));
    assert.match(findLines(lines, "smithers_core::inspect", "orphaned run found: nobody drives it", goodId)[0] ?? "none", / DEBUG smithers_core::inspect: orphaned run found: nobody drives it run_id="[^"]+" previous_owner="" lease_expires_at=""$/);
    const unresumable = findLines(lines, "smithers_core::inspect", "run marked unresumable", ids[0]);
    assert.equal(unresumable.length, 1, lines.join("\n"));
    assert.match(unresumable[0], /  INFO smithers_core::inspect: run marked unresumable: watchers leave it until it changes or is claimed run_id="[^"]+" code="WORKFLOW_NOT_FOUND" error=".+"$/);
  });
});

describe("smithers serve: hostile requests", { concurrency: 3, timeout: 120_000 }, () => {
  test("after a 413 the keep-alive connection is closed, not read as a new request", async (t) => {
    const b = box(t);
    const { server } = await serveWith(t, b, {});
    const { port } = new URL(server.url);
    const socket = connect(Number(port), "127.0.0.1");
    t.after(() => socket.destroy());
    await new Promise((res) => socket.once("connect", res));
    const body = Buffer.alloc(2 * 1024 * 1024, "a");
    let received = "";
    socket.on("data", (d) => {
      received += d;
    });
    const closed = new Promise((res) => socket.once("close", res));
    socket.write(
      `POST /v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Smithers-Inbox: 1\r\nConnection: keep-alive\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body, () => {});
    await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error(`the connection stayed open; got:\n${received.slice(0, 500)}`)), 10_000))]);
    assert.match(received, /^HTTP\/1\.1 413/);
    assert.match(received, /connection: close/i);
    assert.equal((received.match(/HTTP\/1\.1 /g) ?? []).length, 1, "one response: the rest of the body was not read as requests");
  });

  test("a sign-in link does not sign in by itself (login CSRF); creating a session needs the inbox header", async (t) => {
    const b = box(t);
    const { api } = await serveWith(t, b, {});
    const link = await api(`/?token=${TOKEN}`, { token: null });
    assert.equal(link.status, 303);
    assert.equal(link.headers.get("set-cookie"), null, "opening the link sets no session");
    assert.equal(link.headers.get("location"), `/#token=${TOKEN}`);
    const forged = await api("/v1/session", { token: null, body: { token: TOKEN } });
    assert.equal(forged.status, 403, "a cross-site form cannot create a session");
    assert.equal(forged.body.error.code, "FORBIDDEN");
    const signed = await api("/v1/session", { token: null, body: { token: TOKEN }, headers: { "x-smithers-inbox": "1" } });
    assert.equal(signed.status, 200);
    assert.match(signed.headers.get("set-cookie"), /smithers_session=/);
  });

  test("a lone surrogate in a note is INVALID_DECISION (400), nothing recorded", async (t) => {
    const b = box(t);
    const wf = b.write("wf.js", workflowFile({ name: "note" }));
    const runId = runIdOf((await expectExit(assert, 3, ["up", wf], { db: b.db })).stdout);
    const { api } = await serveWith(t, b, {});
    const r = await api(`/v1/runs/${runId}/nodes/gate/approve`, { body: '{"note":"cut \\ud83d"}' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, "INVALID_DECISION");
    assert.match(r.body.error.message, /note/);
    assert.equal((await api(`/v1/runs/${runId}`)).body.approvals[0].status, "requested");
  });
});
