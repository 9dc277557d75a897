import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import {
  Approval,
  Branch,
  Loop,
  Parallel,
  Ralph,
  Sequence,
  SmithersError,
  Task,
  Timer,
  Workflow,
  approvalDecisionSchema,
  approvalRankingSchema,
  approvalSelectionSchema,
  createElement as h,
  createSmithers,
  renderWorkflow,
  toJsonSchema,
  useCtx,
} from "../src/index.js";
import { Fragment, jsx, jsxDEV, jsxs } from "../src/jsx-runtime.js";

const step = z.object({ v: z.number() });
const api = createSmithers({ step, gate: approvalDecisionSchema, pick: approvalSelectionSchema });
const { outputs, smithers } = api;

const snap = (extra = {}) => ({ runId: "run1", input: { n: 1 }, loops: {}, nodeLoops: {}, outputs: [], ...extra });
/** Render `build` (ctx => children of <Workflow>) and return the graph. */
const render = (children, snapshot = snap()) =>
  renderWorkflow(
    smithers((ctx) => h(Workflow, { name: "t" }, typeof children === "function" ? children(ctx) : children)),
    snapshot,
  );
const task = (id, props = {}) => h(Task, { id, output: outputs.step, ...props }, props.children ?? { v: 1 });
const rootChildren = (result) => result.graph.root.children;
const code = (c) => (err) => {
  assert.ok(err instanceof SmithersError, `expected SmithersError, got ${err}`);
  assert.equal(err.code, c);
  return true;
};

describe("jsx runtime", () => {
  test("elements are plain objects with children in props", () => {
    const el = jsx(Task, { id: "a", children: 1 }, "k");
    assert.deepEqual(el, { $$typeof: Symbol.for("smithers.element"), type: Task, props: { id: "a", children: 1 }, key: "k" });
    assert.equal(jsxs(Fragment, {}).key, null);
    assert.equal(jsxDEV(Task, {}, undefined, false, {}, null).key, null);
  });

  test("createElement pulls out key and collects children", () => {
    const el = h(Sequence, { key: 3, skipIf: false }, "a", "b");
    assert.equal(el.key, "3");
    assert.deepEqual(el.props, { skipIf: false, children: ["a", "b"] });
  });
});

describe("graph shapes", () => {
  test("Workflow is the root sequence; name defaults to 'workflow'", () => {
    const { graph } = renderWorkflow(smithers(() => h(Workflow, null, task("a"))), snap());
    assert.equal(graph.version, 1);
    assert.deepEqual(graph.workflow, { name: "workflow" });
    assert.deepEqual(Object.keys(graph.schemas), ["step", "gate", "pick"]);
    assert.deepEqual(graph.root, {
      kind: "sequence",
      children: [{ kind: "task", id: "a", iteration: 0, output: "step", body: { type: "static", value: { v: 1 } } }],
    });
  });

  test("Sequence, Parallel, Branch, fragments", () => {
    const r = render(
      h(
        Sequence,
        null,
        task("a"),
        h(Parallel, { maxConcurrency: 2 }, task("b"), task("c")),
        h(Parallel, null),
        h(Branch, { if: false, then: task("yes"), else: h(Fragment, null, task("no1"), task("no2")) }),
        h(Fragment, null, [task("d"), null, false, true, undefined]),
        h(Sequence, { skipIf: true }, task("skipped")),
      ),
    );
    const [seq] = rootChildren(r);
    const ids = (n) => n.children.map((c) => c.id ?? c.kind);
    assert.equal(seq.kind, "sequence");
    assert.deepEqual(ids(seq), ["a", "parallel", "parallel", "group", "d"]);
    assert.deepEqual(seq.children[1], { kind: "parallel", maxConcurrency: 2, children: seq.children[1].children });
    assert.deepEqual(ids(seq.children[1]), ["b", "c"]);
    assert.equal("maxConcurrency" in seq.children[2], false);
    assert.deepEqual(ids(seq.children[3]), ["no1", "no2"]);
  });

  test("Branch renders only the chosen side", () => {
    const r = render(h(Branch, { if: 1, then: task("yes"), else: task("no") }));
    assert.deepEqual(rootChildren(r)[0].children.map((c) => c.id), ["yes"]);
  });

  test("Loop defaults, iteration from the snapshot, Ralph alias", () => {
    const r = render(
      h(Loop, { id: "L", until: false }, task("a")),
      snap({ loops: { L: 3 } }),
    );
    assert.deepEqual(rootChildren(r)[0], {
      kind: "loop",
      id: "L",
      until: false,
      maxIterations: 5,
      onMaxReached: "return-last",
      children: [{ kind: "task", id: "a", iteration: 3, output: "step", body: { type: "static", value: { v: 1 } } }],
    });
    assert.equal(Ralph, Loop);
    const r2 = render(h(Ralph, { id: "R", until: true, maxIterations: 2, onMaxReached: "fail" }, task("b")));
    assert.deepEqual(
      { ...rootChildren(r2)[0], children: undefined },
      { kind: "loop", id: "R", until: true, maxIterations: 2, onMaxReached: "fail", children: undefined },
    );
    assert.equal(rootChildren(r2)[0].children[0].iteration, 0);
  });

  test("nested loops suffix ids with the outer loops, iteration from the innermost", () => {
    const r = render(
      h(Loop, { id: "outer" }, task("a"), h(Loop, { id: "inner" }, task("b"), h(Loop, { id: "deepest" }, task("c")))),
      snap({ loops: { outer: 2, inner: 1 } }),
    );
    const outer = rootChildren(r)[0];
    const inner = outer.children[1];
    const deepest = inner.children[1];
    assert.deepEqual([outer.children[0].id, outer.children[0].iteration], ["a", 2]);
    assert.deepEqual([inner.children[0].id, inner.children[0].iteration], ["b@@outer=2", 1]);
    assert.deepEqual([deepest.children[0].id, deepest.children[0].iteration], ["c@@outer=2,inner=1", 0]);
  });

  test("Task props map to the task node; compute bodies land in computeFns", () => {
    const fn = () => ({ v: 2 });
    const r = render([
      task("a"),
      h(
        Task,
        {
          id: "b",
          output: "step",
          dependsOn: ["a"],
          needs: { prev: "a", other: "c" },
          skipIf: true,
          retries: 2,
          timeoutMs: 1000,
          continueOnFail: true,
          label: "Bee",
          meta: { x: 1 },
        },
        fn,
      ),
      task("c"),
    ]);
    assert.deepEqual(rootChildren(r)[1], {
      kind: "task",
      id: "b",
      iteration: 0,
      output: "step",
      body: { type: "compute" },
      dependsOn: ["a", "c"],
      skip: true,
      retries: 2,
      timeoutMs: 1000,
      continueOnFail: true,
      label: "Bee",
      meta: { x: 1 },
    });
    assert.equal(r.computeFns.get("b"), fn);
    assert.deepEqual([...r.computeFns.keys()], ["b"]);
  });

  test("Task needsApproval becomes a gate", () => {
    const r = render([task("a", { needsApproval: true }), task("b", { needsApproval: true, label: "Ship?" })]);
    const [a, b] = rootChildren(r);
    assert.deepEqual(a.approval, { mode: "gate", onDeny: "fail", request: { title: "a", summary: null } });
    assert.deepEqual(b.approval.request, { title: "Ship?", summary: null });
    assert.equal(b.label, "Ship?");
  });

  test("Approval quorum: passed to the gate's spec; a malformed one is INVALID_PROP", () => {
    const [gate] = rootChildren(
      render([h(Approval, { id: "g", output: outputs.gate, request: { title: "Ship?" }, quorum: { approvals: 2, from: ["a", "b"], veto: ["sec"] } })]),
    );
    assert.deepEqual(gate.approval.quorum, { approvals: 2, from: ["a", "b"], veto: ["sec"] });
    for (const quorum of [{ approvals: 0 }, { approvals: 1, from: "a" }, { approvals: 1, voters: [] }, [2]]) {
      assert.throws(() => render([h(Approval, { id: "g", output: outputs.gate, request: { title: "Ship?" }, quorum })]), (e) => e.code === "INVALID_PROP", JSON.stringify(quorum));
    }
  });

  test("Approval: decision, select, rank, skipIf", () => {
    const r = render([
      h(Approval, {
        id: "gate",
        output: outputs.gate,
        request: { title: "Deploy?", summary: "prod", metadata: { env: "prod" } },
        onDeny: "skip",
        allowedUsers: ["alice"],
        allowedScopes: ["approve"],
        dependsOn: ["x"],
        meta: { team: "ops" },
      }),
      h(Approval, {
        id: "pick",
        output: "pick",
        mode: "select",
        label: "Choose",
        request: { title: "Which plan?" },
        options: [{ key: "a", label: "A", summary: "first" }, { key: "", label: "dropped" }, { key: "b", label: "B" }],
      }),
      h(Approval, {
        id: "order",
        output: outputs.pick,
        mode: "rank",
        request: { title: "Order" },
        options: [{ key: "a", label: "A" }],
      }),
      h(Approval, { id: "never", output: outputs.gate, request: { title: "x" }, skipIf: true }),
      task("x"),
    ]);
    const [gate, pick, order, x] = rootChildren(r);
    assert.deepEqual(gate, {
      kind: "task",
      id: "gate",
      iteration: 0,
      output: "gate",
      body: { type: "approval" },
      dependsOn: ["x"],
      approval: {
        mode: "decision",
        onDeny: "skip",
        request: { title: "Deploy?", summary: "prod", metadata: { env: "prod" } },
        allowedUsers: ["alice"],
        allowedScopes: ["approve"],
      },
      label: "Deploy?",
      meta: { team: "ops" },
    });
    assert.deepEqual(pick.approval, {
      mode: "select",
      onDeny: "continue",
      request: { title: "Which plan?", summary: null, metadata: null },
      options: [{ key: "a", label: "A", summary: "first" }, { key: "b", label: "B" }],
    });
    assert.equal(pick.label, "Choose");
    assert.equal(order.approval.mode, "rank");
    assert.equal(x.id, "x"); // the skipped Approval left no node
    assert.equal(r.computeFns.size, 0);
  });

  test("function components get props; useCtx works during render; text is ignored", () => {
    let seen = null;
    function Step({ id, n }) {
      seen = useCtx();
      return h(Task, { id, output: outputs.step }, { v: n });
    }
    const Wrapper = ({ children }) => h(Workflow, { name: "wrapped" }, children);
    const wf = smithers(() => h(Wrapper, null, "some text", 42, h(Step, { id: "s", n: 7 })));
    const { graph } = renderWorkflow(wf, snap());
    assert.equal(graph.workflow.name, "wrapped");
    assert.deepEqual(graph.root.children[0].body, { type: "static", value: { v: 7 } });
    assert.equal(seen.runId, "run1");
    assert.throws(() => useCtx(), code("CTX_OUTSIDE_RENDER"));
  });
});

describe("ctx", () => {
  const rows = [
    { table: "step", nodeId: "a", iteration: 0, value: { v: 10 } },
    { table: "step", nodeId: "a", iteration: 1, value: { v: 11 } },
    { table: "step", nodeId: "a", iteration: 2, value: { v: 12 } },
    { table: "step", nodeId: "b", iteration: 0, value: { v: 20 } },
    { table: "gate", nodeId: "g", iteration: 0, value: { approved: true, note: null, decidedBy: "me", decidedAt: null } },
  ];
  const withCtx = (snapshot, fn) => {
    let result;
    renderWorkflow(
      smithers((ctx) => {
        result = fn(ctx);
        return h(Workflow, null);
      }),
      snapshot,
    );
    return result;
  };

  test("basic fields", () => {
    const ctx = withCtx(snap({ loops: { L: 2, M: 5 } }), (c) => c);
    assert.equal(ctx.runId, "run1");
    assert.deepEqual(ctx.input, { n: 1 });
    assert.equal(ctx.iteration, 2);
    assert.deepEqual(ctx.iterations, { L: 2, M: 5 });
    assert.equal(withCtx(snap(), (c) => c.iteration), 0);
  });

  test("outputMaybe: schema object or key; default iteration follows the node's loop", () => {
    const s = snap({ outputs: rows, loops: { L: 1 }, nodeLoops: { a: "L" } });
    withCtx(s, (ctx) => {
      assert.deepEqual(ctx.outputMaybe(outputs.step, { nodeId: "a" }), { runId: "run1", nodeId: "a", iteration: 1, v: 11 });
      assert.equal(ctx.outputMaybe("step", { nodeId: "a", iteration: 2 }).v, 12);
      assert.equal(ctx.outputMaybe("step", { nodeId: "b" }).v, 20); // b is in no loop: iteration 0
      assert.equal(ctx.outputMaybe("step", { nodeId: "zzz" }), undefined);
      assert.equal(ctx.outputMaybe(api.tables.gate, { nodeId: "g" }).approved, true);
    });
    // The node's loop has not started: iteration 0.
    withCtx(snap({ outputs: rows, nodeLoops: { a: "L" } }), (ctx) => {
      assert.equal(ctx.outputMaybe(outputs.step, { nodeId: "a" }).v, 10);
    });
  });

  test("output, latest, iterationCount, outputs", () => {
    withCtx(snap({ outputs: rows }), (ctx) => {
      assert.equal(ctx.output(outputs.step, { nodeId: "b" }).v, 20);
      assert.throws(() => ctx.output(outputs.step, { nodeId: "c" }), code("MISSING_OUTPUT"));
      assert.equal(ctx.latest(outputs.step, "a").iteration, 2);
      assert.equal(ctx.latest(outputs.step, "nope"), undefined);
      assert.equal(ctx.iterationCount(outputs.step, "a"), 3);
      assert.equal(ctx.iterationCount("step", "nope"), 0);
      assert.deepEqual(ctx.outputs("step").map((r) => r.v), [10, 11, 12, 20]);
      assert.deepEqual(ctx.outputs.gate.map((r) => r.nodeId), ["g"]);
      assert.deepEqual(ctx.outputs.pick, []);
      assert.throws(() => ctx.outputMaybe("nope", { nodeId: "a" }), code("UNKNOWN_OUTPUT_SCHEMA"));
      assert.throws(() => ctx.outputMaybe(z.object({ v: z.number() }), { nodeId: "a" }), code("UNKNOWN_OUTPUT_SCHEMA"));
    });
  });

  test("addOutput keeps the ctx live for compute bodies that run after the render", () => {
    const wf = smithers((ctx) =>
      h(Workflow, null, h(Task, { id: "b", output: outputs.step }, () => ({ v: ctx.output(outputs.step, { nodeId: "a" }).v + 1 }))),
    );
    const r = renderWorkflow(wf, snap({ outputs: [{ table: "step", nodeId: "a", iteration: 0, value: { v: 1 } }] }));
    assert.deepEqual(r.graph.renderDeps, []); // the body's read happens later, not in the render
    assert.deepEqual(r.computeFns.get("b")(), { v: 2 });
    r.addOutput({ table: "step", nodeId: "a", iteration: 0, value: { v: 40 } }); // upsert
    r.addOutput({ table: "step", nodeId: "c", iteration: 0, value: { v: 5 } });
    assert.deepEqual(r.computeFns.get("b")(), { v: 41 });
    assert.equal(r.ctx.iterationCount(outputs.step, "a"), 1);
    assert.deepEqual(r.ctx.outputs.step.map((row) => row.v), [40, 5]);
  });

  test("renderDeps records the nodes a render read", () => {
    const deps = (fn) =>
      renderWorkflow(
        smithers((ctx) => {
          fn(ctx);
          return h(Workflow, null, task("t"));
        }),
        snap({ outputs: rows }),
      ).graph.renderDeps;
    assert.deepEqual(deps(() => {}), []);
    assert.deepEqual(
      deps((ctx) => {
        ctx.outputMaybe(outputs.step, { nodeId: "z" });
        ctx.outputMaybe(outputs.step, { nodeId: "a" });
        ctx.latest(outputs.step, "b");
        ctx.iterationCount(outputs.step, "a");
        ctx.outputMaybe(outputs.gate, { nodeId: "missing" });
      }),
      ["a", "b", "missing", "z"],
    );
    assert.deepEqual(deps((ctx) => ctx.output(outputs.step, { nodeId: "b" })), ["b"]);
    assert.equal(deps((ctx) => ctx.outputs("step")), "*");
    assert.equal(deps((ctx) => ctx.outputs.step), "*");
  });
});

describe("schemas", () => {
  test("zod 4 objects convert through Standard JSON Schema", () => {
    const json = toJsonSchema(
      z.object({ n: z.number(), s: z.string().nullable(), at: z.iso.datetime().nullable(), tags: z.array(z.string()).optional() }),
      "thing",
    );
    assert.equal(json.$schema, "https://json-schema.org/draft/2020-12/schema");
    assert.equal(json.type, "object");
    assert.deepEqual(json.properties.n, { type: "number" });
    assert.deepEqual(json.required, ["n", "s", "at"]);
    assert.equal(json.additionalProperties, false);
    assert.equal(json.properties.at.anyOf[1].type, "null");
  });

  test("plain JSON Schema passes through as a copy", () => {
    const plain = { type: "object", properties: { a: { type: "integer" } }, required: ["a"] };
    const json = toJsonSchema(plain, "plain");
    assert.deepEqual(json, plain);
    assert.notEqual(json, plain);
  });

  test("unsupported schemas", () => {
    const bad = (schema, key = "k") => assert.throws(() => toJsonSchema(schema, key), code("SCHEMA_UNSUPPORTED"));
    bad(z.string()); // not an object
    bad(z.object({ d: z.date() })); // no JSON form
    bad({ notASchema: true });
    bad(null);
    bad({ "~standard": { vendor: "zod", version: 1, validate() {} } }); // zod 3 style
    assert.throws(() => toJsonSchema(42, "myKey"), /myKey/);
    assert.deepEqual(toJsonSchema(z.string(), "input", { kind: "input" }).type, "string");
  });

  test("approval schemas", () => {
    assert.deepEqual(approvalDecisionSchema.required, ["approved", "note", "decidedBy", "decidedAt"]);
    assert.deepEqual(approvalDecisionSchema.properties.decidedAt, {
      anyOf: [{ type: "string", format: "date-time" }, { type: "null" }],
    });
    assert.deepEqual(approvalSelectionSchema.properties.notes, { anyOf: [{ type: "string" }, { type: "null" }] });
    assert.deepEqual(approvalRankingSchema.properties.ranked, { type: "array", items: { type: "string" } });
    assert.ok(Object.isFrozen(approvalDecisionSchema.properties));
  });

  test("createSmithers: outputs, input key, workflow object", () => {
    const input = z.object({ n: z.number() });
    const created = createSmithers({ input, step }, { dbPath: "x.db" });
    assert.equal(created.outputs.step, step);
    assert.equal(created.Task, Task);
    const wf = created.smithers(() => null);
    assert.equal(wf.__smithersWorkflow, true);
    assert.deepEqual(Object.keys(wf.jsonSchemas), ["step"]);
    assert.equal(wf.inputSchema.type, "object");
    assert.equal(wf.schemaKeys.get(step), "step");
    assert.equal(wf.dbPath, "x.db");
    assert.equal(created.smithers(() => null, { dbPath: "y.db" }).dbPath, "y.db");
    assert.equal(wf.name, null);
  });

  test("createSmithers rejects bad keys and schemas at once", () => {
    assert.throws(() => createSmithers({ "bad-key": step }), code("INVALID_IDENTIFIER"));
    assert.throws(() => createSmithers({ _x: step }), code("INVALID_IDENTIFIER"));
    assert.throws(() => createSmithers({ ok: z.object({ "bad field": z.string() }) }), code("INVALID_IDENTIFIER"));
    assert.throws(() => createSmithers({ ok: z.object({ d: z.date() }) }), code("SCHEMA_UNSUPPORTED"));
  });

  test("one schema object under several keys: a table per key, outputs.<key> told apart", () => {
    const made = createSmithers({ securityReview: approvalDecisionSchema, qaReview: approvalDecisionSchema, step });
    const { smithers: s2, outputs: o2 } = made;
    assert.notEqual(o2.securityReview, o2.qaReview);
    assert.equal(o2.step, step, "a schema under one key is its own handle");
    // The handles behave as the schema: a JSON Schema's fields, a zod object's methods.
    assert.equal(o2.qaReview.properties, approvalDecisionSchema.properties);
    const review = z.object({ ok: z.boolean() });
    const { outputs: o3 } = createSmithers({ a: review, b: review });
    assert.ok(o3.a instanceof z.ZodObject);
    assert.equal(o3.b.shape, review.shape);
    assert.deepEqual(o3.b.parse({ ok: true }), { ok: true });
    assert.throws(() => o3.a.parse({ ok: 1 }));
    let seen = {};
    const wf = s2((ctx) => {
      seen = {
        security: ctx.outputMaybe(o2.securityReview, { nodeId: "sec" }),
        qa: ctx.outputMaybe(o2.qaReview, { nodeId: "qa" }),
        byKey: ctx.outputMaybe("qaReview", { nodeId: "qa" }),
        crossed: ctx.outputMaybe(o2.qaReview, { nodeId: "sec" }),
        // The shared schema object itself: found in whichever of its tables the node wrote.
        shared: ctx.outputMaybe(approvalDecisionSchema, { nodeId: "sec" }),
        all: ctx.outputs(approvalDecisionSchema).length,
      };
      return h(
        Workflow,
        null,
        h(Approval, { id: "sec", output: o2.securityReview, request: { title: "s" } }),
        h(Approval, { id: "qa", output: o2.qaReview, request: { title: "q" } }),
        // As in Smithers, the shared object as an output names the last key.
        h(Approval, { id: "raw", output: approvalDecisionSchema, request: { title: "r" } }),
      );
    });
    const row = (table, nodeId, approved) => ({ table, nodeId, iteration: 0, value: { approved, note: null, decidedBy: "x", decidedAt: null } });
    const { graph } = renderWorkflow(wf, snap({ outputs: [row("securityReview", "sec", true), row("qaReview", "qa", false)] }));
    assert.deepEqual(graph.root.children.map((n) => [n.id, n.output]), [["sec", "securityReview"], ["qa", "qaReview"], ["raw", "qaReview"]]);
    assert.deepEqual(Object.keys(graph.schemas), ["securityReview", "qaReview", "step"]);
    assert.equal(seen.security.approved, true);
    assert.equal(seen.qa.approved, false);
    assert.equal(seen.byKey.approved, false);
    assert.equal(seen.crossed, undefined, "qaReview holds no row of node sec");
    assert.equal(seen.shared.approved, true);
    assert.equal(seen.all, 2);
  });
});

describe("loops without an id", () => {
  const loopWf = (showFirst) =>
    smithers(() =>
      h(
        Workflow,
        null,
        h(
          Sequence,
          null,
          showFirst ? task("first") : null,
          h(Loop, { until: false }, task("a")),
          h(Branch, { if: showFirst, then: h(Loop, { maxIterations: 2 }, task("b")), else: h(Loop, null, task("c")) }),
        ),
      ),
    );
  test("are named after their place in the tree, the same whatever renders beside them", () => {
    const first = renderWorkflow(loopWf(true), snap()).graph.root.children[0];
    const again = renderWorkflow(loopWf(false), snap({ loops: { "loop:0.1": 2 } })).graph.root.children[0];
    assert.deepEqual(first.children.map((c) => c.id ?? c.children[0].id), ["first", "loop:0.1", "loop:0.2.0.0"]);
    assert.deepEqual(again.children.map((c) => c.id ?? c.children[0].id), ["loop:0.1", "loop:0.2.1.0"]);
    assert.equal(again.children[0].children[0].iteration, 2, "the iteration of the loop by that id");
  });
});

describe("props a component does not honour are refused, naming them", () => {
  const refused = [
    [() => h(Timer, { id: "t", duration: "1s", every: "1h" }), "every", /recurring/],
    [() => h(Approval, { id: "g", output: outputs.gate, request: { title: "t" }, retryPolicy: { backoff: "fixed" } }), "retryPolicy", /backoff/],
    [() => h(Approval, { id: "g", output: outputs.gate, request: { title: "t" }, cache: { version: "1" } }), "cache", /caching/],
    [() => h(Approval, { id: "g", output: outputs.gate, request: { title: "t" }, retries: 2 }), "retries", /no body/],
    [() => h(Approval, { id: "g", output: outputs.gate, request: { title: "t" } }, task("child")), "children", /renders no children/],
    [() => h(Task, { id: "a", output: outputs.step, retryPolicy: { initialDelayMs: 10 } }, { v: 1 }), "retryPolicy", /backoff/],
    [() => h(Task, { id: "a", output: outputs.step, cache: { by: () => 1 } }, { v: 1 }), "cache", /caching/],
    [() => h(Task, { id: "a", output: outputs.step, allowTools: ["Read"] }, { v: 1 }), "allowTools", /give the agent its tools/],
    [() => h(Task, { id: "a", output: outputs.step, outputSchema: { type: "object" } }, { v: 1 }), "outputSchema", /except on agent tasks/],
    [() => h(Task, { id: "a", output: outputs.step, heartbeatTimeoutMs: 5 }, { v: 1 }), "heartbeatTimeoutMs", /heartbeats/],
    [() => h(Task, { id: "a", output: outputs.step, async: true }, { v: 1 }), "async", /needsApproval/],
    [() => h(Task, { id: "a", output: outputs.step, continueOnFial: true }, { v: 1 }), "continueOnFial", /not a prop of <Task>/],
    [() => h(Loop, { id: "L", continueAsNewEvery: 3 }, task("a")), "continueAsNewEvery", /not supported/],
    [() => h(Sequence, { id: "s" }, task("a")), "id", /not a prop of <Sequence>/],
    [() => h(Approval, { id: "g", output: outputs.gate, request: { title: "t" }, autoApprove: { afterr: 2 } }), "autoApprove.afterr", /after, condition, audit and revertOn/],
  ];
  for (const [make, prop, why] of refused) {
    test(`${prop}`, () => {
      assert.throws(() => render(make()), (err) => {
        assert.equal(err.code, "UNSUPPORTED_PROP");
        assert.equal(err.details.prop, prop);
        assert.match(err.message, why);
        return true;
      });
    });
  }
  test("on <Workflow>: cache", () => {
    assert.throws(() => renderWorkflow(smithers(() => h(Workflow, { cache: true }, task("a"))), snap()), code("UNSUPPORTED_PROP"));
  });
  test("undefined and null props say nothing; noRetry is honoured", () => {
    const [a] = rootChildren(render(h(Task, { id: "a", output: outputs.step, cache: undefined, retryPolicy: null, noRetry: true }, { v: 1 })));
    assert.equal(a.retries, 0);
    assert.throws(() => render(h(Task, { id: "a", output: outputs.step, noRetry: true, retries: 2 }, { v: 1 })), code("INVALID_PROP"));
  });
});

describe("Task deps", () => {
  test("the task appears once every dep has an output; a function child gets the rows", () => {
    const make = (children) => () => [
      task("first"),
      h(Task, { id: "second", output: outputs.step, deps: { first: outputs.step, other: "step" }, needs: { other: "third" } }, children),
    ];
    assert.deepEqual(rootChildren(render(make(({ first }) => ({ v: first.v + 1 })))).map((n) => n.id), ["first"]);
    const rows = [
      { table: "step", nodeId: "first", iteration: 0, value: { v: 1 } },
      { table: "step", nodeId: "third", iteration: 0, value: { v: 5 } },
    ];
    const r = render(make(({ first, other }) => ({ v: first.v + other.v })), snap({ outputs: rows }));
    const second = rootChildren(r)[1];
    assert.deepEqual(second.body, { type: "static", value: { v: 6 } });
    // first is in this render: second waits for it; third is not, it only had to have an output.
    assert.deepEqual(second.dependsOn, ["third", "first"]);
    assert.ok(r.graph.renderDeps.includes("first") && r.graph.renderDeps.includes("third"));
  });
});

describe("Approval async and autoApprove", () => {
  test("reach the descriptor: async, and autoApprove with condition and revertOn evaluated on ctx", () => {
    const seen = [];
    const [gate, gate2, pre] = rootChildren(
      render(() => [
        h(Approval, {
          id: "g",
          output: outputs.gate,
          request: { title: "t" },
          async: true,
          autoApprove: {
            after: 2,
            condition: (c) => {
              seen.push(c.input.n);
              return c.input.n === 1;
            },
            revertOn: () => 0,
          },
        }),
        h(Approval, { id: "g2", output: outputs.gate, request: { title: "t" }, autoApprove: { audit: false } }),
        task("pre", { needsApproval: true, async: true }),
      ]),
    );
    assert.deepEqual(gate.approval, {
      mode: "decision",
      onDeny: "continue",
      request: { title: "t", summary: null, metadata: null },
      async: true,
      autoApprove: { after: 2, audit: true, conditionMet: true, revertOnMet: false },
    });
    assert.deepEqual(seen, [1]);
    assert.deepEqual(gate2.approval.autoApprove, { audit: false });
    assert.equal(pre.approval.async, true);
  });
});
describe("render errors", () => {
  const cases = [
    ["WORKFLOW_ROOT_REQUIRED", () => renderWorkflow(smithers(() => h(Sequence, null)), snap())],
    ["WORKFLOW_ROOT_REQUIRED", () => renderWorkflow(smithers(() => null), snap())],
    ["WORKFLOW_ROOT_REQUIRED", () => render(h(Workflow, null))],
    ["UNKNOWN_COMPONENT", () => render(h("div", null))],
    ["INVALID_ELEMENT", () => render({ not: "an element" })],
    ["INVALID_PROP", () => render(h(Loop, { id: "" }, task("a")))],
    ["DUPLICATE_ID", () => render([h(Loop, { id: "L" }), h(Loop, { id: "L" })])],
    ["INVALID_PROP", () => render(h(Loop, { id: "L", until: () => true }))],
    ["INVALID_PROP", () => render(h(Loop, { id: "L", maxIterations: 0 }))],
    ["INVALID_PROP", () => render(h(Loop, { id: "L", onMaxReached: "explode" }))],
    ["INVALID_PROP", () => render(h(Parallel, { maxConcurrency: -1 }))],
    ["TASK_ID_REQUIRED", () => render(h(Task, { output: outputs.step }, { v: 1 }))],
    ["TASK_MISSING_OUTPUT", () => render(h(Task, { id: "a" }, { v: 1 }))],
    ["UNKNOWN_OUTPUT_SCHEMA", () => render(h(Task, { id: "a", output: "nope" }, { v: 1 }))],
    ["UNKNOWN_OUTPUT_SCHEMA", () => render(h(Task, { id: "a", output: z.object({ v: z.number() }) }, { v: 1 }))],
    ["INVALID_PROP", () => render(h(Task, { id: "a", output: outputs.step, agent: {} }, "prompt"))],
    ["TASK_BODY_REQUIRED", () => render(h(Task, { id: "a", output: outputs.step, agent: { generate: async () => ({}) } }))],
    ["TASK_BODY_REQUIRED", () => render(h(Task, { id: "a", output: outputs.step }))],
    ["INVALID_PROP", () => render(h(Task, { id: "a", output: outputs.step, retries: -1 }, { v: 1 }))],
    ["INVALID_PROP", () => render(h(Task, { id: "a", output: outputs.step, dependsOn: "b" }, { v: 1 }))],
    ["DUPLICATE_ID", () => render([task("a"), task("a")])],
    ["DUPLICATE_ID", () => render([task("a"), h(Approval, { id: "a", output: outputs.gate, request: { title: "t" } })])],
    ["TASK_ID_REQUIRED", () => render(h(Approval, { output: outputs.gate, request: { title: "t" } }))],
    ["TASK_MISSING_OUTPUT", () => render(h(Approval, { id: "g", request: { title: "t" } }))],
    ["APPROVAL_OPTIONS_REQUIRED", () => render(h(Approval, { id: "g", output: "pick", mode: "select", request: { title: "t" } }))],
    ["APPROVAL_OPTIONS_REQUIRED", () => render(h(Approval, { id: "g", output: "pick", mode: "rank", options: [], request: { title: "t" } }))],
    ["INVALID_PROP", () => render(h(Approval, { id: "g", output: "gate", onDeny: "maybe", request: { title: "t" } }))],
    ["INVALID_PROP", () => render(h(Approval, { id: "g", output: "gate", mode: "vote", request: { title: "t" } }))],
    ["INVALID_PROP", () => render(h(Approval, { id: "g", output: "gate" }))],
    ["INVALID_WORKFLOW", () => renderWorkflow({}, snap())],
    ["INVALID_WORKFLOW", () => renderWorkflow(smithers(async () => h(Workflow, null)), snap())],
  ];
  for (const [expected, fn] of cases) {
    test(`${expected}: ${fn.toString().slice(6, 90)}`, () => assert.throws(fn, code(expected)));
  }

  test("errors carry code, message and details", () => {
    try {
      render(h(Task, { id: "a", output: outputs.step, agent: {} }, "prompt"));
      assert.fail("no error");
    } catch (err) {
      assert.equal(err.name, "SmithersError");
      assert.match(err.message, /agent must be an object with a generate\(\) method/);
      assert.deepEqual(err.details, { id: "a" });
    }
    assert.throws(() => render(h("div", null)), /<div>/);
    assert.deepEqual(new SmithersError("X", "m").details, {});
  });
});

describe("<Timer> and deadlines", () => {
  const s = createSmithers({ step: z.object({ v: z.number() }), gate: approvalDecisionSchema });
  const root = (...children) => renderWorkflow(s.smithers(() => h(Workflow, { name: "t" }, h(Sequence, {}, ...children))), { runId: "r" }).graph.root.children[0].children;

  test("<Timer duration|until> is a timer node with no output", () => {
    const [a, b] = root(h(Timer, { id: "a", duration: "1.5h" }), h(Timer, { id: "b", until: "2030-01-01T00:00:00Z" }));
    assert.deepEqual(a.body, { type: "timer", durationMs: 5_400_000 });
    assert.equal(a.output, "");
    assert.equal(a.label, "timer:a");
    assert.deepEqual(b.body, { type: "timer", untilMs: Date.parse("2030-01-01T00:00:00Z") });
    assert.deepEqual(root(h(Timer, { id: "c", duration: "250" }))[0].body, { type: "timer", durationMs: 250 });
    assert.deepEqual(root(h(Timer, { id: "d", duration: "1s", skipIf: true })), []);
  });

  test("a <Timer> needs exactly one of duration and until, each well formed", () => {
    for (const props of [{}, { duration: "1s", until: "2030-01-01" }, { duration: "soon" }, { until: "not a time" }]) {
      assert.throws(() => root(h(Timer, { id: "t", ...props })), (e) => e.code === "INVALID_PROP", JSON.stringify(props));
    }
  });

  test("gates, needsApproval and reviews take timeoutMs, deadline and onTimeout", () => {
    const [gate, task, reviewed] = root(
      h(Approval, { id: "g", output: s.outputs.gate, request: { title: "t" }, timeoutMs: 60_000, onTimeout: "approve" }),
      h(Task, { id: "n", output: s.outputs.step, needsApproval: { deadline: "2030-01-01T00:00:00Z", onTimeout: "fail" } }, { v: 1 }),
      h(Task, { id: "r", output: s.outputs.step, approval: { prompt: "ok?", timeoutMs: 5 } }, { v: 1 }),
    );
    assert.equal(gate.approval.timeoutMs, 60_000);
    assert.equal(gate.approval.onTimeout, "approve");
    assert.equal(task.approval.deadlineMs, Date.parse("2030-01-01T00:00:00Z"));
    assert.equal(task.approval.onTimeout, "fail");
    assert.equal(reviewed.review.timeoutMs, 5);
    const bad = [
      h(Approval, { id: "g", output: s.outputs.gate, request: { title: "t" }, onTimeout: "deny" }),
      h(Approval, { id: "g", output: s.outputs.gate, request: { title: "t" }, timeoutMs: 5, onTimeout: "maybe" }),
      h(Approval, { id: "g", output: s.outputs.gate, request: { title: "t" }, timeoutMs: -1 }),
      h(Task, { id: "n", output: s.outputs.step, needsApproval: { timeout: 5 } }, { v: 1 }),
    ];
    for (const el of bad) assert.throws(() => root(el), (e) => e.code === "INVALID_PROP" || e.code === "UNSUPPORTED_PROP");
  });
});
