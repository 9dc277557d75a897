// Poisoned results and thrown values of every kind (issue 12, findings 1 and 2). Each case runs
// in a child process of its own (a value that used to crash the process must not take the test
// runner with it): the run must end `failed` with a recorded error, its healthy tasks recorded
// and run exactly once, the poisoned task retried as its `retries` say, and a resume must run
// nothing again.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { PKG_INDEX_URL, freshDir, killAll, removeDirs, spawnNode } from "./helpers/durability.js";

after(() => {
  killAll();
  removeDirs();
});

const JSX_URL = new URL("../npm/smithers-rs/src/jsx-runtime.js", import.meta.url).href;

/**
 * Runs a workflow in a child process: four healthy tasks and `bad` in one Parallel (so their
 * results travel in one batch). `body` is the source of bad's body (it may use `mark`), `render`
 * code run at each render once `ok1` has an output.
 */
async function runCase({ body = "return { v: 0 };", render = "", retries = 1 }) {
  const dir = freshDir("smithers-poison-");
  const file = join(dir, "case.mjs");
  writeFileSync(
    file,
    `import { SmithersEngine, createSmithers } from ${JSON.stringify(PKG_INDEX_URL)};
import { jsx } from ${JSON.stringify(JSX_URL)};
const h = (type, props, ...c) => jsx(type, c.length === 0 ? { ...props } : { ...props, children: c.length === 1 ? c[0] : c });
const { Workflow, Parallel, Task, smithers, outputs } = createSmithers({
  step: { type: "object", properties: { v: {} } },
});
const ran = {};
const mark = (id) => { ran[id] = (ran[id] ?? 0) + 1; };
const healthy = (id) => h(Task, { id, output: outputs.step }, () => { mark(id); return { v: id }; });
const wf = smithers((ctx) => {
  if (ctx.outputMaybe(outputs.step, { nodeId: "ok1" })) { ${render} }
  return h(Workflow, { name: "poison" }, h(Parallel, {},
    healthy("ok1"), healthy("ok2"), healthy("ok3"), healthy("ok4"),
    h(Task, { id: "bad", output: outputs.step, retries: ${retries} }, async () => { mark("bad"); ${body} })));
});
const engine = new SmithersEngine({ dbPath: ${JSON.stringify(join(dir, "smithers.db"))} });
const settle = (p) => p.then((r) => r, (e) => ({ threw: String(e?.code ?? "?") }));
const result = await settle(engine.run(wf, { runId: "p" }));
const again = await settle(engine.resume("p"));
const info = engine.inspect("p");
console.log("JSON " + JSON.stringify({ result, again, run: info.run, nodes: info.nodes, ran, outputs: info.outputs.length }));
engine.close();
`,
  );
  const child = spawnNode([file], { cwd: dir });
  const timer = setTimeout(() => child.child.kill("SIGKILL"), 60_000);
  const r = await child.done;
  clearTimeout(timer);
  const line = r.stdout.split("\n").find((l) => l.startsWith("JSON "));
  assert.ok(line, `the case process printed no result (exit ${r.code} ${r.signal ?? ""}):\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(line.slice(5));
}

function assertFailedOnce(out, { code, badRuns }) {
  assert.equal(out.run.status, "failed", JSON.stringify(out));
  assert.equal(out.result.status, "failed", JSON.stringify(out.result));
  assert.equal(out.run.error?.code, code, JSON.stringify(out.run.error));
  assert.equal(out.again.status, "failed", "a resume of the failed run runs nothing");
  for (const id of ["ok1", "ok2", "ok3", "ok4"]) {
    assert.equal(out.ran[id], 1, `${id} ran ${out.ran[id]} times`);
    assert.equal(out.nodes.find((n) => n.nodeId === id)?.state, "finished", id);
  }
  if (badRuns !== undefined) assert.equal(out.ran.bad, badRuns, `bad ran ${out.ran.bad} times`);
  const bad = out.nodes.find((n) => n.nodeId === "bad");
  assert.equal(bad.state, "failed");
  assert.ok(bad.error?.message, "the task's error is recorded");
}

const RESULTS = {
  "a string cut inside an emoji": `return { v: "Ship 🚀".slice(0, 6) };`,
  "a lone surrogate in a key": `return { v: { ["\\ud800"]: 1 } };`,
  "a BigInt": `return { v: 10n };`,
  "a circular object": `const o = {}; o.self = o; return { v: o };`,
  "a throwing toJSON": `return { v: { toJSON() { throw new Error("no JSON for you"); } } };`,
  "nesting deeper than 128": `let x = 1; for (let i = 0; i < 200; i++) x = [x]; return { v: x };`,
  "a function": `return () => 1;`,
};

describe("a result JSON cannot carry", { concurrency: 4, timeout: 120_000 }, () => {
  for (const [name, body] of Object.entries(RESULTS)) {
    test(`${name}: the task fails with INVALID_OUTPUT after its retries, the batch is recorded, nothing repeats`, async () => {
      const out = await runCase({ body, retries: 1 });
      assertFailedOnce(out, { code: "INVALID_OUTPUT", badRuns: 2 });
      assert.equal(out.outputs, 4);
    });
  }
});

const THROWS = {
  "Object.create(null)": "Object.create(null)",
  null: "null",
  undefined: "undefined",
  "a symbol": `Symbol("boom")`,
  "an object whose toString throws": `{ toString() { throw new Error("nope"); } }`,
  "a Proxy that throws on every read": `new Proxy({}, { get() { throw new Error("trap"); }, getPrototypeOf() { throw new Error("trap"); } })`,
  "a number": "42",
  "an Error with a numeric code": `Object.assign(new Error("coded"), { code: 42 })`,
  "an Error whose message has a lone surrogate": `new Error("cut \\ud83d")`,
  "an Error whose message getter throws": `Object.defineProperty(new Error("x"), "message", { get() { throw new Error("getter"); } })`,
};

describe("any thrown value", { concurrency: 4, timeout: 120_000 }, () => {
  for (const [name, expr] of Object.entries(THROWS)) {
    test(`thrown by a task (${name}): the task fails after its retries, the run fails, the process lives`, async () => {
      const out = await runCase({ body: `throw ${expr};`, retries: 1 });
      assertFailedOnce(out, { code: out.run.error?.code ?? "TASK_FAILED", badRuns: 2 });
      assert.match(out.run.error.code, /^[A-Z][A-Z0-9_]*$/);
    });
    test(`thrown by a render (${name}): the run fails with RENDER_FAILED`, async () => {
      const out = await runCase({ render: `throw ${expr};` });
      assert.equal(out.run.status, "failed", JSON.stringify(out));
      assert.equal(out.run.error?.code, "RENDER_FAILED", JSON.stringify(out.run.error));
      assert.equal(out.again.status, "failed");
      assert.equal(out.ran.ok1, 1);
    });
  }
});
