// The documented Node API (SmithersEngine), in process. Workflows are built here with
// createSmithers + smithers((ctx) => …) and the JSX runtime's `jsx` (no .tsx files).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { z } from "zod";
import { SmithersEngine, approvalDecisionSchema, createSmithers, loadWorkflow } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
import { freshDir, killAll, removeDirs, spawnNode, waitFor } from "./helpers/durability.js";

after(() => {
  killAll();
  removeDirs();
});

/** h(type, props, ...children) over the automatic runtime's `jsx`. */
const h = (type, props, ...children) =>
  jsx(type, children.length === 0 ? { ...props } : { ...props, children: children.length === 1 ? children[0] : children });

const stepSchema = { type: "object", properties: { v: { type: "number" } }, required: ["v"], additionalProperties: false };

/** A fresh engine on a fresh database, closed when the test ends. */
function newEngine(t) {
  const dbPath = join(freshDir("smithers-api-"), "smithers.db");
  const engine = new SmithersEngine({ dbPath });
  t.after(() => engine.close());
  return engine;
}

/**
 * Runs `body` in a child Node process with \`engine\` (fresh db), \`h\`, \`outputs\`, the
 * components and \`gateWorkflow()\` in scope; \`print(value)\` writes the JSON answer.
 * The child is killed after \`timeoutMs\` (then \`timedOut\` is true).
 */
async function runScript(t, body, { timeoutMs = 30_000 } = {}) {
  const dir = freshDir("smithers-api-child-");
  const file = join(dir, "script.mjs");
  const url = (p) => JSON.stringify(new URL(p, import.meta.url).href);
  writeFileSync(
    file,
    `import { SmithersEngine, approvalDecisionSchema, createSmithers } from ${url("../npm/smithers-rs/src/index.js")};
import { jsx } from ${url("../npm/smithers-rs/src/jsx-runtime.js")};
const h = (type, props, ...c) => jsx(type, c.length === 0 ? { ...props } : { ...props, children: c.length === 1 ? c[0] : c });
const { Workflow, Sequence, Parallel, Task, Approval, smithers, outputs } = createSmithers({
  step: { type: "object", properties: { v: { type: "number" } }, required: ["v"] },
  gate: approvalDecisionSchema,
});
const gateWorkflow = () => smithers((ctx) => {
  const d = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return h(Workflow, { name: "child" }, h(Sequence, {},
    h(Task, { id: "pre", output: outputs.step }, () => ({ v: 1 })),
    h(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" } }),
    d ? h(Task, { id: "after", output: outputs.step }, () => ({ v: 2 })) : null));
});
const engine = new SmithersEngine({ dbPath: ${JSON.stringify(join(dir, "smithers.db"))} });
const print = (v) => console.log("JSON " + JSON.stringify(v));
${body}
`,
  );
  const child = spawnNode([file]);
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => {
      child.child.kill("SIGKILL");
      resolve("timeout");
    }, timeoutMs);
  });
  t.after(() => clearTimeout(timer));
  const raced = await Promise.race([child.done, timeout]);
  const end = await child.done;
  clearTimeout(timer);
  const line = /^JSON (.*)$/m.exec(end.stdout)?.[1];
  return { ...end, timedOut: raced === "timeout", json: line ? JSON.parse(line) : undefined };
}

const api = createSmithers({
  input: z.object({ title: z.string() }).partial(),
  step: stepSchema,
  note: z.object({ text: z.string() }),
  gate: approvalDecisionSchema,
});
const { Workflow, Sequence, Parallel, Branch, Loop, Task, Approval, smithers, outputs } = api;

const nodeOf = (info, id, iteration = 0) => info.nodes.find((n) => n.nodeId === id && n.iteration === iteration);

/** pre -> <Approval gate> -> after (only once decided). Bodies count their calls in `calls`. */
function gateWorkflow(calls, gateProps = {}, log = []) {
  return smithers((ctx) => {
    const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
    return h(
      Workflow,
      { name: "api-gate" },
      h(
        Sequence,
        {},
        h(Task, { id: "pre", output: outputs.step }, () => {
          calls.pre = (calls.pre ?? 0) + 1;
          return { v: 1 };
        }),
        h(Approval, {
          id: "gate",
          output: outputs.gate,
          request: { title: `Publish ${ctx.input.title ?? "it"}?`, summary: "one article" },
          ...gateProps,
        }),
        decision
          ? h(Task, { id: "after", output: outputs.note }, async () => {
              calls.after = (calls.after ?? 0) + 1;
              log.push("after");
              return { text: `approved=${decision.approved} by ${decision.decidedBy}` };
            })
          : null,
      ),
    );
  });
}

describe("runs, approvals, events", () => {
  test("run -> waiting-approval; pendingApprovals; approve resumes in process at once", async (t) => {
    const engine = newEngine(t);
    const calls = {};
    const log = [];
    const wf = gateWorkflow(calls, {}, log);
    const result = await engine.run(wf, { input: { title: "Hello" } });
    assert.equal(result.status, "waiting-approval");
    assert.match(result.runId, /\S/);
    assert.deepEqual(calls, { pre: 1 });

    const pending = engine.pendingApprovals();
    assert.equal(pending.length, 1);
    const [p] = pending;
    assert.equal(p.runId, result.runId);
    assert.equal(p.nodeId, "gate");
    assert.equal(p.iteration, 0);
    assert.equal(p.title, "Publish Hello?");
    assert.equal(p.summary, "one article");
    assert.equal(p.status, "requested");
    assert.match(p.requestedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(engine.pendingApprovals({ runId: result.runId }).map((a) => a.nodeId), ["gate"]);
    assert.deepEqual(engine.pendingApprovals({ runId: "nope" }), []);
    assert.equal(engine.getRun(result.runId).status, "waiting-approval");

    const outcome = await engine.approve(result.runId, { decidedBy: "alice", note: "ship it" });
    assert.equal(outcome.status, "approved");
    assert.equal(outcome.nodeId, "gate");
    assert.equal(outcome.decidedBy, "alice");
    assert.equal(outcome.needsResume, true);
    assert.deepEqual(
      { approved: outcome.output.value.approved, note: outcome.output.value.note, by: outcome.output.value.decidedBy },
      { approved: true, note: "ship it", by: "alice" },
    );
    const done = outcome.done.then((r) => {
      log.push("done");
      return r;
    });
    const finished = await done;
    assert.equal(finished.status, "finished");
    // The downstream body ran in this process before `done` settled: no polling involved.
    assert.deepEqual(log, ["after", "done"]);
    assert.deepEqual(calls, { pre: 1, after: 1 });
    assert.deepEqual(engine.pendingApprovals(), []);
    const info = engine.inspect(result.runId);
    assert.equal(info.run.status, "finished");
    assert.equal(info.outputs.find((o) => o.nodeId === "after").value.text, "approved=true by alice");
    assert.equal(info.approvals[0].note, "ship it");
  });

  test("events reach listeners with runId and nodeId; unsubscribe stops them", async (t) => {
    const engine = newEngine(t);
    const seen = { all: [] };
    const types = ["ApprovalRequested", "NodeStarted", "NodeFinished", "ApprovalGranted", "RunStatusChanged"];
    const offs = types.map((type) => engine.on(type, (e) => (seen[type] ??= []).push(e)));
    const offAll = engine.on("*", (e) => seen.all.push(e));
    const calls = {};
    const { runId } = await engine.run(gateWorkflow(calls));

    assert.deepEqual(seen.ApprovalRequested.map((e) => [e.runId, e.nodeId, e.iteration, e.title]), [[runId, "gate", 0, "Publish it?"]]);
    assert.deepEqual(seen.NodeStarted.map((e) => [e.runId, e.nodeId]), [[runId, "pre"]]);
    assert.deepEqual(seen.NodeFinished.map((e) => [e.runId, e.nodeId]), [[runId, "pre"]]);
    assert.deepEqual(seen.RunStatusChanged.map((e) => e.status), ["waiting-approval"]);
    assert.equal(seen.ApprovalGranted, undefined);

    const outcome = await engine.approve(runId, { decidedBy: "bob" });
    await outcome.done;
    assert.deepEqual(seen.ApprovalGranted.map((e) => [e.runId, e.nodeId, e.decidedBy]), [[runId, "gate", "bob"]]);
    assert.deepEqual(seen.NodeStarted.map((e) => e.nodeId), ["pre", "after"]);
    assert.deepEqual(seen.NodeFinished.map((e) => e.nodeId), ["pre", "gate", "after"]);
    assert.deepEqual(seen.RunStatusChanged.map((e) => e.status), ["waiting-approval", "running", "finished"]);
    // "*" sees everything, in order, each event once.
    const seqs = seen.all.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(new Set(seqs).size, seqs.length);
    assert.ok(seen.all.every((e) => e.runId === runId));
    assert.deepEqual(
      seen.all.map((e) => e.type),
      engine.events(runId).map((e) => e.type),
      "listeners saw exactly the persisted events",
    );

    for (const off of [...offs, offAll]) off();
    const before = seen.all.length;
    await engine.run(gateWorkflow({}));
    assert.equal(seen.all.length, before);
  });

  test("a listener that throws does not break the run (the error surfaces as uncaught)", async (t) => {
    // In a child process: the error is rethrown outside the run, as an uncaught exception.
    const r = await runScript(
      t,
      `const thrown = [];
process.on("uncaughtException", (e) => thrown.push(e.message));
engine.on("NodeStarted", () => { throw new Error("listener bug"); });
const seen = [];
engine.on("NodeFinished", (e) => seen.push(e.nodeId));
const result = await engine.run(gateWorkflow());
await new Promise((r) => setImmediate(r));
print({ status: result.status, thrown, seen });`,
    );
    assert.deepEqual(r.json, { status: "waiting-approval", thrown: ["listener bug"], seen: ["pre"] });
  });
});

describe("deny", () => {
  // Smithers' runtime (packages/engine/tests/deferred-contract.test.js): without onDeny, and
  // with "continue" or "skip", the denial is the gate's output and the run goes on.
  for (const onDeny of [undefined, "continue", "skip"]) {
    test(`onDeny ${onDeny === undefined ? "unset (the default)" : `"${onDeny}"`} writes approved:false and goes on`, async (t) => {
      const engine = newEngine(t);
      const calls = {};
      const { runId } = await engine.run(gateWorkflow(calls, onDeny === undefined ? {} : { onDeny }));
      const outcome = await engine.deny(runId, { decidedBy: "carol", note: "not now" });
      assert.equal(outcome.status, "denied");
      const end = await outcome.done;
      assert.equal(end.status, "finished");
      assert.deepEqual(calls, { pre: 1, after: 1 });
      const info = engine.inspect(runId);
      const gate = info.outputs.find((o) => o.nodeId === "gate").value;
      assert.equal(gate.approved, false);
      assert.equal(gate.note, "not now");
      assert.equal(gate.decidedBy, "carol");
      assert.equal(info.outputs.find((o) => o.nodeId === "after").value.text, "approved=false by carol");
      assert.equal(info.approvals[0].status, "denied");
      assert.equal(nodeOf(info, "gate").state, "finished");
    });
  }

  test('onDeny "fail" fails the run with APPROVAL_DENIED and writes no decision row', async (t) => {
    const engine = newEngine(t);
    const calls = {};
    const { runId } = await engine.run(gateWorkflow(calls, { onDeny: "fail" }));
    const end = await (await engine.deny(runId, { decidedBy: "dan", note: "no" })).done;
    assert.equal(end.status, "failed");
    assert.equal(end.error.code, "APPROVAL_DENIED");
    assert.deepEqual(calls, { pre: 1 });
    const info = engine.inspect(runId);
    assert.equal(nodeOf(info, "gate").state, "failed");
    assert.equal(info.outputs.find((o) => o.nodeId === "gate"), undefined);
  });

  test('onDeny "skip": later siblings and dependsOn dependents run, as in Smithers\' contract tests', async (t) => {
    const engine = newEngine(t);
    const ran = [];
    const task = (id, props = {}) =>
      h(Task, { id, output: outputs.step, ...props }, () => {
        ran.push(id);
        return { v: ran.length };
      });
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "skip" },
        h(
          Sequence,
          {},
          h(
            Parallel,
            {},
            h(
              Sequence,
              {},
              h(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" }, onDeny: "skip" }),
              task("sibling"),
            ),
            task("needsGate", { dependsOn: ["gate"] }),
            task("independent"),
          ),
          task("tail"),
        ),
      ),
    );
    const { runId } = await engine.run(wf);
    assert.deepEqual(ran, ["independent"]);
    const end = await (await engine.deny(runId, { decidedBy: "erin" })).done;
    assert.equal(end.status, "finished");
    assert.deepEqual(ran.sort(), ["independent", "needsGate", "sibling", "tail"]);
    const info = engine.inspect(runId);
    assert.ok(info.nodes.every((n) => n.state === "finished"), JSON.stringify(info.nodes));
    assert.equal(info.outputs.find((o) => o.nodeId === "gate").value.approved, false);
  });
});

describe("compute tasks", () => {
  test("sync and async bodies; their outputs feed later renders", async (t) => {
    const engine = newEngine(t);
    const wf = smithers((ctx) => {
      const a = ctx.outputMaybe(outputs.step, { nodeId: "sync" });
      return h(
        Workflow,
        { name: "bodies" },
        h(
          Sequence,
          {},
          h(Task, { id: "sync", output: outputs.step }, () => ({ v: 2 })),
          h(Task, { id: "async", output: outputs.step }, async () => {
            await new Promise((r) => setTimeout(r, 5));
            return { v: (a?.v ?? 0) * 10 };
          }),
          h(Task, { id: "static", output: outputs.note }, { text: "static value" }),
        ),
      );
    });
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    const out = Object.fromEntries(engine.inspect(end.runId).outputs.map((o) => [o.nodeId, o.value]));
    assert.deepEqual(out, { sync: { v: 2 }, async: { v: 20 }, static: { text: "static value" } });
  });

  test("a task that throws fails the run; the message is on the node", async (t) => {
    const engine = newEngine(t);
    let later = 0;
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "throws" },
        h(
          Sequence,
          {},
          h(Task, { id: "boom", output: outputs.step }, () => {
            throw new Error("kaboom 42");
          }),
          h(Task, { id: "later", output: outputs.step }, () => ({ v: ++later })),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "failed");
    assert.match(end.error.message, /kaboom 42/);
    assert.equal(later, 0);
    const info = engine.inspect(end.runId);
    const boom = nodeOf(info, "boom");
    assert.equal(boom.state, "failed");
    assert.match(boom.error.message, /kaboom 42/);
    assert.equal(info.run.status, "failed");
    assert.match(info.run.error.message, /kaboom 42/);
  });

  test("an output that does not match its schema fails the task (INVALID_OUTPUT)", async (t) => {
    const engine = newEngine(t);
    const wf = smithers(() =>
      h(Workflow, { name: "bad-output" }, h(Task, { id: "bad", output: outputs.step }, () => ({ v: "not a number" }))),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "failed");
    assert.equal(end.error.code, "INVALID_OUTPUT");
  });

  test("retries: 2 on a task that fails twice then succeeds", async (t) => {
    const engine = newEngine(t);
    let calls = 0;
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "retries" },
        h(Task, { id: "flaky", output: outputs.step, retries: 2 }, () => {
          calls += 1;
          if (calls < 3) throw new Error(`flake ${calls}`);
          return { v: calls };
        }),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.equal(calls, 3);
    const info = engine.inspect(end.runId);
    assert.equal(nodeOf(info, "flaky").attempts, 3);
    assert.deepEqual(info.outputs[0].value, { v: 3 });
    assert.equal(engine.events(end.runId).filter((e) => e.type === "NodeRetrying").length, 2);
  });

  test("retries are bounded: a task that always fails runs 1 + retries times", async (t) => {
    const engine = newEngine(t);
    let calls = 0;
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "retries-out" },
        h(Task, { id: "bad", output: outputs.step, retries: 2 }, () => {
          calls += 1;
          throw new Error(`nope ${calls}`);
        }),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "failed");
    assert.equal(calls, 3);
    assert.match(nodeOf(engine.inspect(end.runId), "bad").error.message, /nope 3/);
  });

  test("timeoutMs on a hanging task fails it with TASK_TIMEOUT", async (t) => {
    const engine = newEngine(t);
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "timeout" },
        h(Task, { id: "hang", output: outputs.step, timeoutMs: 50 }, () => new Promise(() => {})),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "failed");
    assert.equal(end.error.code, "TASK_TIMEOUT");
    const hang = nodeOf(engine.inspect(end.runId), "hang");
    assert.equal(hang.state, "failed");
    assert.equal(hang.error.code, "TASK_TIMEOUT");
  });

  test("continueOnFail lets the run go on past a failed task", async (t) => {
    const engine = newEngine(t);
    const ran = [];
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "cof" },
        h(
          Sequence,
          {},
          h(Task, { id: "optional", output: outputs.step, continueOnFail: true }, () => {
            ran.push("optional");
            throw new Error("optional failed");
          }),
          h(Task, { id: "next", output: outputs.step, dependsOn: ["optional"] }, () => {
            ran.push("next");
            return { v: 1 };
          }),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.deepEqual(ran, ["optional", "next"]);
    const info = engine.inspect(end.runId);
    assert.equal(nodeOf(info, "optional").state, "failed");
    assert.match(nodeOf(info, "optional").error.message, /optional failed/);
    assert.equal(nodeOf(info, "next").state, "finished");
  });

  test("skipIf skips a task without running its body", async (t) => {
    const engine = newEngine(t);
    const ran = [];
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "skipif" },
        h(
          Sequence,
          {},
          h(Task, { id: "skipped", output: outputs.step, skipIf: true }, () => {
            ran.push("skipped");
            return { v: 0 };
          }),
          h(Task, { id: "kept", output: outputs.step, skipIf: false }, () => {
            ran.push("kept");
            return { v: 1 };
          }),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.deepEqual(ran, ["kept"]);
    const info = engine.inspect(end.runId);
    assert.equal(nodeOf(info, "skipped").state, "skipped");
    assert.equal(nodeOf(info, "skipped").skipReason, "skipIf");
  });

  test("dependsOn orders tasks inside a Parallel", async (t) => {
    const engine = newEngine(t);
    const log = [];
    const body = (id, ms) => async () => {
      log.push(`${id}:start`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${id}:end`);
      return { v: 1 };
    };
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "deps" },
        h(
          Parallel,
          {},
          h(Task, { id: "c", output: outputs.step, dependsOn: ["a", "b"] }, body("c", 1)),
          h(Task, { id: "a", output: outputs.step }, body("a", 20)),
          h(Task, { id: "b", output: outputs.step, dependsOn: ["a"] }, body("b", 1)),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.ok(log.indexOf("b:start") > log.indexOf("a:end"), log.join(" "));
    assert.ok(log.indexOf("c:start") > log.indexOf("b:end"), log.join(" "));
  });

  test("Parallel maxConcurrency={2}: at most 2 bodies in flight", async (t) => {
    const engine = newEngine(t);
    let inFlight = 0;
    let max = 0;
    let ran = 0;
    const body = () => async () => {
      inFlight += 1;
      max = Math.max(max, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight -= 1;
      ran += 1;
      return { v: ran };
    };
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "maxc" },
        h(
          Parallel,
          { maxConcurrency: 2 },
          ...["p1", "p2", "p3", "p4", "p5", "p6"].map((id) => h(Task, { id, output: outputs.step }, body())),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.equal(ran, 6);
    assert.equal(max, 2);
  });

  test("Branch renders then or else on an output", async (t) => {
    const engine = newEngine(t);
    const ran = [];
    const mk = (id) =>
      h(Task, { id, output: outputs.step }, () => {
        ran.push(id);
        return { v: 1 };
      });
    const wf = smithers((ctx) => {
      const pick = ctx.outputMaybe(outputs.step, { nodeId: "pick" });
      return h(
        Workflow,
        { name: "branch" },
        h(
          Sequence,
          {},
          h(Task, { id: "pick", output: outputs.step }, () => ({ v: 7 })),
          pick ? h(Branch, { if: pick.v > 5, then: mk("big"), else: mk("small") }) : null,
          h(Branch, { if: false, then: mk("never") }),
        ),
      );
    });
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.deepEqual(ran, ["big"]);
  });
});

describe("loops", () => {
  test("Loop until an output; ctx.iteration, ctx.latest, ctx.iterationCount", async (t) => {
    const engine = newEngine(t);
    const seenIterations = [];
    const wf = smithers((ctx) => {
      const last = ctx.latest(outputs.step, "inc");
      return h(
        Workflow,
        { name: "loop" },
        h(
          Sequence,
          {},
          h(
            Loop,
            { id: "count", until: (last?.v ?? 0) >= 3, maxIterations: 10 },
            h(Task, { id: "inc", output: outputs.step }, () => {
              seenIterations.push(ctx.iteration);
              return { v: (ctx.latest(outputs.step, "inc")?.v ?? 0) + 1 };
            }),
          ),
          h(Task, { id: "summary", output: outputs.note }, () => ({
            text: `latest=${ctx.latest(outputs.step, "inc")?.v} count=${ctx.iterationCount(outputs.step, "inc")}`,
          })),
        ),
      );
    });
    const end = await engine.run(wf);
    assert.equal(end.status, "finished", JSON.stringify(end));
    assert.deepEqual(seenIterations, [0, 1, 2]);
    const info = engine.inspect(end.runId);
    const incRows = info.outputs.filter((o) => o.nodeId === "inc").map((o) => [o.iteration, o.value.v]);
    assert.deepEqual(incRows.sort(), [
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    assert.equal(info.outputs.find((o) => o.nodeId === "summary").value.text, "latest=3 count=3");
    assert.deepEqual(
      engine.events(end.runId).filter((e) => e.type === "LoopIteration").map((e) => e.iteration),
      [1, 2],
    );
  });

  test("Loop maxIterations with return-last ends the loop and the run goes on", async (t) => {
    const engine = newEngine(t);
    let calls = 0;
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "loop-max" },
        h(
          Sequence,
          {},
          h(Loop, { id: "l", until: false, maxIterations: 3 }, h(Task, { id: "body", output: outputs.step }, () => ({ v: ++calls }))),
          h(Task, { id: "afterLoop", output: outputs.step }, { v: 99 }),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "finished");
    assert.equal(calls, 3);
  });

  test('Loop onMaxReached="fail" fails the run with LOOP_MAX_REACHED', async (t) => {
    const engine = newEngine(t);
    let calls = 0;
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "loop-fail" },
        h(
          Loop,
          { id: "l", until: false, maxIterations: 2, onMaxReached: "fail" },
          h(Task, { id: "body", output: outputs.step }, () => ({ v: ++calls })),
        ),
      ),
    );
    const end = await engine.run(wf);
    assert.equal(end.status, "failed");
    assert.equal(end.error.code, "LOOP_MAX_REACHED");
    assert.equal(calls, 2);
    assert.equal(engine.getRun(end.runId).error.code, "LOOP_MAX_REACHED");
  });

  test("an approval inside a loop is asked once per iteration", async (t) => {
    const engine = newEngine(t);
    const wf = smithers((ctx) => {
      const n = ctx.iterationCount(outputs.gate, "ok");
      return h(
        Workflow,
        { name: "loop-gate" },
        h(
          Loop,
          { id: "rounds", until: n >= 2, maxIterations: 5 },
          h(Approval, { id: "ok", output: outputs.gate, request: { title: `round ${ctx.iteration}` } }),
        ),
      );
    });
    const { runId } = await engine.run(wf);
    assert.deepEqual(engine.pendingApprovals({ runId }).map((a) => [a.nodeId, a.iteration, a.title]), [["ok", 0, "round 0"]]);
    let end = await (await engine.approve(runId, { decidedBy: "a" })).done;
    assert.equal(end.status, "waiting-approval");
    assert.deepEqual(engine.pendingApprovals({ runId }).map((a) => [a.nodeId, a.iteration, a.title]), [["ok", 1, "round 1"]]);
    end = await (await engine.approve(runId, { decidedBy: "b" })).done;
    assert.equal(end.status, "finished");
  });
});

describe("durability in process", () => {
  test("a completed task is never executed again across approve + resume", async (t) => {
    const dir = freshDir("smithers-api-");
    const dbPath = join(dir, "smithers.db");
    const calls = {};
    const count = (id, v) => () => {
      calls[id] = (calls[id] ?? 0) + 1;
      return { v };
    };
    const wf = smithers((ctx) => {
      const g1 = ctx.outputMaybe(outputs.gate, { nodeId: "g1" });
      const g2 = ctx.outputMaybe(outputs.gate, { nodeId: "g2" });
      return h(
        Workflow,
        { name: "twice" },
        h(
          Sequence,
          {},
          h(Task, { id: "a", output: outputs.step }, count("a", 1)),
          h(Approval, { id: "g1", output: outputs.gate, request: { title: "one" } }),
          g1 ? h(Task, { id: "b", output: outputs.step }, count("b", 2)) : null,
          h(Approval, { id: "g2", output: outputs.gate, request: { title: "two" } }),
          g2 ? h(Task, { id: "c", output: outputs.step }, count("c", 3)) : null,
        ),
      );
    });
    const e1 = new SmithersEngine({ dbPath });
    const { runId } = await e1.start(wf);
    assert.equal((await e1.waitForRun(runId)).status, "waiting-approval");
    // Record only; then resume explicitly.
    const rec = await e1.approve(runId, { decidedBy: "x", resume: false });
    assert.equal(rec.done, null);
    assert.equal(rec.needsResume, true);
    assert.deepEqual(calls, { a: 1 });
    assert.equal((await e1.resume(runId)).status, "waiting-approval");
    assert.deepEqual(calls, { a: 1, b: 1 });
    // Resuming a waiting run again changes nothing.
    assert.equal((await e1.resume(runId)).status, "waiting-approval");
    assert.deepEqual(calls, { a: 1, b: 1 });
    e1.close();

    // Another engine (a restart): it has no workflow for the run, so it is given one.
    const e2 = new SmithersEngine({ dbPath });
    t.after(() => e2.close());
    const out = await e2.approve(runId, { decidedBy: "y", workflow: wf });
    assert.equal((await out.done).status, "finished");
    assert.deepEqual(calls, { a: 1, b: 1, c: 1 });
    // A finished run resumes to itself, running nothing.
    assert.equal((await e2.resume(runId, { workflow: wf })).status, "finished");
    assert.deepEqual(calls, { a: 1, b: 1, c: 1 });
    const attempts = e2.inspect(runId).nodes.map((n) => [n.nodeId, n.attempts]);
    assert.deepEqual(attempts, [
      ["a", 1],
      ["g1", 0],
      ["b", 1],
      ["g2", 0],
      ["c", 1],
    ]);
  });

  test("resume without a workflow on a run with no file recorded: WORKFLOW_NOT_FOUND, nothing changes", async (t) => {
    const dir = freshDir("smithers-api-");
    const dbPath = join(dir, "smithers.db");
    const e1 = new SmithersEngine({ dbPath });
    const { runId } = await e1.run(gateWorkflow({}));
    e1.close();
    const e2 = new SmithersEngine({ dbPath });
    t.after(() => e2.close());
    await assert.rejects(e2.resume(runId), { code: "WORKFLOW_NOT_FOUND" });
    assert.equal(e2.getRun(runId).status, "waiting-approval");
  });

  test("approve while this process drives the run: the decided branch moves at once", async (t) => {
    const engine = newEngine(t);
    let releaseBusy;
    const busyGate = new Promise((r) => (releaseBusy = r));
    const log = [];
    const wf = smithers((ctx) => {
      const d = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
      return h(
        Workflow,
        { name: "in-process" },
        h(
          Parallel,
          {},
          h(Task, { id: "busy", output: outputs.step }, async () => {
            log.push("busy-start");
            await busyGate;
            log.push("busy-end");
            return { v: 1 };
          }),
          h(
            Sequence,
            {},
            h(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" } }),
            d
              ? h(Task, { id: "down", output: outputs.step }, () => {
                  log.push("down");
                  return { v: 2 };
                })
              : null,
          ),
        ),
      );
    });
    const { runId, done } = await engine.start(wf);
    await waitFor(() => engine.pendingApprovals({ runId }).length === 1, { what: "the gate" });
    const outcome = await engine.approve(runId, { decidedBy: "me" });
    assert.equal(outcome.needsResume, false);
    assert.equal(outcome.done, done, "the same drive goes on");
    await waitFor(() => log.includes("down"), { what: "down to run while busy is in flight", timeoutMs: 10_000 });
    assert.deepEqual(log, ["busy-start", "down"]);
    releaseBusy();
    assert.equal((await done).status, "finished");
  });
});

describe("authorisation and cancel", () => {
  test("allowedUsers: someone else gets FORBIDDEN and nothing is recorded; an allowed user decides", async (t) => {
    const engine = newEngine(t);
    const calls = {};
    const { runId } = await engine.run(gateWorkflow(calls, { allowedUsers: ["alice", "bob"] }));
    const eventsBefore = engine.events(runId).length;
    await assert.rejects(engine.approve(runId, { decidedBy: "mallory" }), (e) => {
      assert.equal(e.code, "FORBIDDEN");
      assert.match(e.message, /mallory/);
      return true;
    });
    await assert.rejects(engine.approve(runId, {}), { code: "FORBIDDEN" });
    await assert.rejects(engine.deny(runId, { decidedBy: "mallory" }), { code: "FORBIDDEN" });
    assert.equal(engine.events(runId).length, eventsBefore, "no event recorded");
    assert.equal(engine.getRun(runId).status, "waiting-approval");
    const info = engine.inspect(runId);
    assert.equal(info.approvals[0].status, "requested");
    assert.equal(info.approvals[0].decidedBy, null);
    assert.equal(info.outputs.some((o) => o.nodeId === "gate"), false);
    assert.deepEqual(engine.pendingApprovals({ runId })[0].allowedUsers, ["alice", "bob"]);

    const ok = await engine.approve(runId, { decidedBy: "bob" });
    assert.equal(ok.status, "approved");
    assert.equal((await ok.done).status, "finished");
    assert.deepEqual(calls, { pre: 1, after: 1 });
  });

  test("a second decision on a decided gate is ALREADY_DECIDED, naming who and when", async (t) => {
    const engine = newEngine(t);
    const { runId } = await engine.run(gateWorkflow({}));
    const first = await engine.approve(runId, { decidedBy: "alice", resume: false });
    await assert.rejects(engine.deny(runId, { nodeId: "gate", decidedBy: "bob" }), (e) => {
      assert.equal(e.code, "ALREADY_DECIDED");
      assert.equal(e.details.decidedBy, "alice");
      assert.equal(e.details.decidedAt, first.decidedAt);
      assert.equal(e.details.status, "approved");
      assert.ok(e.message.includes("alice") && e.message.includes(first.decidedAt), e.message);
      return true;
    });
    await assert.rejects(engine.deny(runId, { decidedBy: "bob" }), { code: "NO_PENDING_APPROVALS" });
  });

  test("cancel on a waiting run: cancelled, the approval no longer pending", async (t) => {
    const engine = newEngine(t);
    const calls = {};
    const { runId } = await engine.run(gateWorkflow(calls));
    assert.equal(engine.pendingApprovals({ runId }).length, 1);
    const cancelled = engine.cancel(runId);
    assert.deepEqual(cancelled, { runId, status: "cancelled" });
    assert.equal(engine.getRun(runId).status, "cancelled");
    assert.deepEqual(engine.pendingApprovals({ runId }), []);
    assert.deepEqual(engine.pendingApprovals(), []);
    const info = engine.inspect(runId);
    assert.equal(nodeOf(info, "gate").state, "cancelled");
    assert.notEqual(info.approvals[0].status, "requested");
    await assert.rejects(engine.approve(runId, { decidedBy: "x" }), { code: "NO_PENDING_APPROVALS" });
    await assert.rejects(engine.approve(runId, { nodeId: "gate", decidedBy: "x" }), { code: "NOT_WAITING" });
    assert.equal((await engine.resume(runId)).status, "cancelled");
    assert.deepEqual(calls, { pre: 1 });
    // Cancelling again is a no-op.
    assert.equal(engine.cancel(runId).status, "cancelled");
  });

  test(
    "cancel while this process drives the run: done settles as cancelled",
    
    async (t) => {
      await cancelWhileDriven(t, (engine) => engine);
    },
  );

  const otherEngine = (t) => (engine, dbPath) => {
    const other = new SmithersEngine({ dbPath });
    t.after(() => other.close());
    return other;
  };

  test("cancel from another engine while this one drives the run: done settles as cancelled", async (t) => {
    await cancelWhileDriven(t, otherEngine(t));
  });

  test(
    "a result that arrives after a cancel from elsewhere is not recorded: the node stays cancelled",
    
    async (t) => {
      const { engine, runId } = await cancelWhileDriven(t, otherEngine(t));
      const info = engine.inspect(runId);
      assert.equal(nodeOf(info, "busy").state, "cancelled");
      assert.equal(info.outputs.some((o) => o.nodeId === "busy"), false, "no output row for the cancelled task");
      const types = engine.events(runId).map((e) => e.type);
      const cancelledAt = types.indexOf("NodeCancelled");
      assert.equal(types.slice(cancelledAt).includes("NodeFinished"), false, types.join(" "));
    },
  );
});

/** Drives a run whose first task waits; `canceller(engine, dbPath)` cancels it meanwhile. */
async function cancelWhileDriven(t, canceller) {
  const engine = newEngine(t);
  let release;
  const hold = new Promise((r) => (release = r));
  let after = 0;
  const wf = smithers(() =>
    h(
      Workflow,
      { name: "cancel-live" },
      h(
        Sequence,
        {},
        h(Task, { id: "busy", output: outputs.step }, async () => {
          await hold;
          return { v: 1 };
        }),
        h(Task, { id: "next", output: outputs.step }, () => ({ v: ++after })),
      ),
    ),
  );
  const { runId, done } = await engine.start(wf);
  await waitFor(() => engine.inspect(runId).nodes.some((n) => n.nodeId === "busy" && n.state === "in-progress"), {
    what: "busy to start",
  });
  assert.equal(canceller(engine, engine.dbPath).cancel(runId).status, "cancelled");
  release();
  const end = await done;
  assert.equal(end.status, "cancelled");
  assert.equal(after, 0);
  assert.equal(engine.getRun(runId).status, "cancelled");
  return { engine, runId };
}

/**
 * Writes a plain-JS workflow file (so resume() has to load it): <Approval gate> -> after,
 * where `after` appends "after" to `effects` (then waits for `holdFile`, if given).
 */
function writeGateWorkflowFile(dir, effects, { holdFile = null } = {}) {
  const wfPath = join(dir, "wf.mjs");
  writeFileSync(
    wfPath,
      `import { appendFileSync, existsSync } from "node:fs";
import { jsx } from ${JSON.stringify(new URL("../npm/smithers-rs/src/jsx-runtime.js", import.meta.url).href)};
import { createSmithers, approvalDecisionSchema } from ${JSON.stringify(new URL("../npm/smithers-rs/src/index.js", import.meta.url).href)};
const { Workflow, Sequence, Task, Approval, smithers, outputs } = createSmithers({
  step: { type: "object", properties: { v: { type: "number" } }, required: ["v"] },
  gate: approvalDecisionSchema,
});
export default smithers((ctx) => {
  const d = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  const children = [jsx(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" } })];
  if (d) children.push(jsx(Task, { id: "after", output: outputs.step, children: async () => {
    appendFileSync(${JSON.stringify(effects)}, "after\\n");
    await new Promise((r) => setTimeout(r, 20));
    const hold = ${JSON.stringify(holdFile)};
    while (hold && !existsSync(hold)) await new Promise((r) => setTimeout(r, 10));
    return { v: 1 };
  } }));
  return jsx(Workflow, { name: "double-resume", children: jsx(Sequence, { children }) });
});
`,
  );
  return wfPath;
}

describe("re-entrancy and concurrent calls on one engine", () => {
  test("an approval made from an ApprovalRequested listener resumes the run", async (t) => {
    const engine = newEngine(t);
    const calls = {};
    let decided = null;
    engine.on("ApprovalRequested", (e) => {
      decided ??= engine.approve(e.runId, { decidedBy: "bot", note: "auto" });
    });
    const first = await engine.run(gateWorkflow(calls));
    assert.ok(decided, "the listener decided");
    const outcome = await decided;
    assert.equal(outcome.status, "approved");
    const end = await outcome.done;
    assert.equal(end.status, "finished", `first drive: ${JSON.stringify(first)}, then: ${JSON.stringify(end)}`);
    assert.deepEqual(calls, { pre: 1, after: 1 });
    assert.equal(engine.getRun(first.runId).status, "finished");
  });

  test("a decision whose resume loses the claim to another live engine reports that owner, not RUN_OWNED", async (t) => {
    const dir = freshDir("smithers-api-");
    const dbPath = join(dir, "smithers.db");
    const effects = join(dir, "effects.log");
    const hold = join(dir, "hold");
    const wfPath = writeGateWorkflowFile(dir, effects, { holdFile: hold });
    const setup = new SmithersEngine({ dbPath });
    const { runId } = await setup.run(wfPath);
    setup.close();

    const a = new SmithersEngine({ dbPath });
    const b = new SmithersEngine({ dbPath });
    t.after(() => a.close());
    t.after(() => b.close());
    const wf = await loadWorkflow(wfPath);
    // b records the decision (nobody drives the run) and starts loading the workflow file to
    // resume it; meanwhile a claims the run and drives it.
    const decided = b.approve(runId, { decidedBy: "b" });
    const driven = a.resume(runId, { workflow: wf });
    const outcome = await decided;
    assert.equal(outcome.status, "approved");
    assert.equal(outcome.needsResume, true);
    const bEnd = await outcome.done;
    assert.equal(bEnd.status, "running");
    assert.equal(bEnd.owner, a.native.ownerId());
    writeFileSync(hold, "");
    assert.equal((await driven).status, "finished");
    assert.deepEqual(readFileSync(effects, "utf8").trim().split("\n"), ["after"]);
  });

  test("a resume after a decision that fails does not crash a caller that ignores `done`", async (t) => {
    // In a child process: an unhandled rejection would end it (exit 1, no answer).
    const r = await runScript(
      t,
      `const { runId } = await engine.run(gateWorkflow());
const other = new (engine.constructor)({ dbPath: engine.dbPath });
// This engine has no workflow for the run and no file is recorded: resuming fails.
const outcome = await other.approve(runId, { decidedBy: "x" });
await new Promise((r) => setTimeout(r, 200));
let error = null;
try { await outcome.done; } catch (e) { error = e.code; }
print({ status: outcome.status, error, run: other.getRun(runId).status });`,
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.deepEqual(r.json, { status: "approved", error: "WORKFLOW_NOT_FOUND", run: "running" });
  });

  test("two concurrent resume() calls drive the run once: every task runs once", async (t) => {
    const dir = freshDir("smithers-api-");
    const dbPath = join(dir, "smithers.db");
    const effects = join(dir, "effects.log");
    const wfPath = writeGateWorkflowFile(dir, effects);
    const e1 = new SmithersEngine({ dbPath });
    const { runId } = await e1.run(wfPath);
    await e1.approve(runId, { decidedBy: "x", resume: false });
    e1.close();

    const e2 = new SmithersEngine({ dbPath });
    t.after(() => e2.close());
    const results = await Promise.allSettled([e2.resume(runId), e2.resume(runId)]);
    assert.deepEqual(
      results.map((r) => (r.status === "fulfilled" ? r.value.status : `rejected ${r.reason?.code}`)),
      ["finished", "finished"],
    );
    assert.deepEqual(readFileSync(effects, "utf8").trim().split("\n"), ["after"]);
    assert.equal(nodeOf(e2.inspect(runId), "after").attempts, 1);
  });
});

describe("parking with decided gates the plan no longer shows", () => {
  test(
    "an approved <Task needsApproval> unmounted by a later render does not keep the run from parking",
    
    async (t) => {
      // G and H are <Approval>s; T (a needsApproval task) is rendered only until G is decided.
      const r = await runScript(
        t,
        `const wf = smithers((ctx) => {
  const g = ctx.outputMaybe(outputs.gate, { nodeId: "G" });
  return h(Workflow, { name: "unmounted-gate" }, h(Parallel, {},
    h(Approval, { id: "G", output: outputs.gate, request: { title: "G" } }),
    h(Approval, { id: "H", output: outputs.gate, request: { title: "H" } }),
    g ? null : h(Task, { id: "T", output: outputs.step, needsApproval: true }, () => ({ v: 1 }))));
});
const first = await engine.run(wf);
const pending = engine.pendingApprovals({ runId: first.runId }).map((a) => a.nodeId).sort();
await engine.approve(first.runId, { nodeId: "T", decidedBy: "x", resume: false });
await engine.approve(first.runId, { nodeId: "G", decidedBy: "x", resume: false });
const resumed = await engine.resume(first.runId);
print({ first: first.status, pending, resumed: resumed.status, left: engine.pendingApprovals({ runId: first.runId }).map((a) => a.nodeId) });`,
        { timeoutMs: 10_000 },
      );
      assert.equal(r.timedOut, false, "the resume hung (killed after 10 s)");
      assert.deepEqual(r.json, { first: "waiting-approval", pending: ["G", "H", "T"], resumed: "waiting-approval", left: ["H"] });
    },
  );
});

describe("an isolating engine (`isolate`, as serve makes it)", () => {
  test("drives a workflow file's start and its resume after an approve in worker threads; closed, it refuses a drive", async () => {
    const dir = freshDir("smithers-api-isolate-");
    const effects = join(dir, "effects.txt");
    writeFileSync(effects, "");
    const wfPath = writeGateWorkflowFile(dir, effects);
    const dbPath = join(dir, "smithers.db");
    const first = new SmithersEngine({ dbPath, isolate: { maxWorkers: 2 } });
    try {
      const { runId, done } = await first.start(wfPath);
      assert.match(runId, /^run-[0-9a-f]{12}$/);
      assert.equal((await done).status, "waiting-approval");
    } finally {
      first.close();
    }
    const reader = new SmithersEngine({ dbPath });
    const [{ runId }] = reader.listRuns({ status: "waiting-approval" });
    reader.close();
    // Another isolating engine (another process, as serve after a restart): the approve resumes
    // the run in one of its workers, which loads the file.
    const second = new SmithersEngine({ dbPath, isolate: true });
    try {
      const { done } = await second.approve(runId, { decidedBy: "alice" });
      assert.equal((await done).status, "finished");
      assert.equal(readFileSync(effects, "utf8"), "after\n");
    } finally {
      second.close();
    }
    // Closed before it drove anything (its pool not made yet): ENGINE_CLOSED, nothing recorded.
    const closed = new SmithersEngine({ dbPath, isolate: true });
    closed.close();
    await assert.rejects(closed.start(wfPath), { code: "ENGINE_CLOSED" });
    const check = new SmithersEngine({ dbPath });
    assert.equal(check.listRuns({}).length, 1);
    check.close();
  });
});
