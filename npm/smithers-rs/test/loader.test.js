import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "node:test";
import { SmithersError, loadWorkflow, renderWorkflow } from "../src/index.js";

// Fresh folders with no package.json, tsconfig or node_modules: everything must come
// from the loader hooks.
const freshDir = () => mkdtempSync(join(tmpdir(), "smithers-rs-loader-"));
const snapshot = (outputs = []) => ({ runId: "r1", input: { n: 3 }, loops: {}, nodeLoops: {}, outputs });

test("loads a .tsx workflow: pragma, smithers-orchestrator, zod, extensionless import, top-level await", async () => {
  const dir = freshDir();
  mkdirSync(join(dir, "lib"));
  writeFileSync(
    join(dir, "lib", "index.ts"),
    `export const double = (n: number): number => n * 2;\nexport const title: string = "Go on?";\n`,
  );
  writeFileSync(join(dir, "steps.tsx"), `import { Task } from "smithers-rs";\nexport const Step = (p: { id: string; output: any; v: number }) => <Task id={p.id} output={p.output}>{{ v: p.v }}</Task>;\n`);
  writeFileSync(
    join(dir, "workflow.tsx"),
    `/** @jsxImportSource smithers-orchestrator */
import { createSmithers, Task, Sequence, Approval, approvalDecisionSchema } from "smithers-orchestrator";
import { z } from "zod";
import { double, title } from "./lib";
import { Step } from "./steps";

const start: number = await Promise.resolve(20);

const { Workflow, smithers, outputs } = createSmithers({
  input: z.object({ n: z.number() }),
  step: z.object({ v: z.number() }),
  gate: approvalDecisionSchema,
});

interface Unused { x: number }

export default smithers((ctx) => {
  const first = ctx.outputMaybe(outputs.step, { nodeId: "first" });
  return (
    <Workflow name="loader-test">
      <Sequence>
        <Step id="first" output={outputs.step} v={start} />
        <Approval id="gate" output={outputs.gate} request={{ title }} />
        {first ? (
          <Task id="second" output={outputs.step}>
            {() => ({ v: double(first.v) + (ctx.input as { n: number }).n })}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
`,
  );

  const wf = await loadWorkflow(join(dir, "workflow.tsx"));
  assert.equal(wf.__smithersWorkflow, true);
  assert.equal(wf.inputSchema.type, "object");
  assert.deepEqual(Object.keys(wf.jsonSchemas), ["step", "gate"]);

  const first = renderWorkflow(wf, snapshot());
  assert.equal(first.graph.workflow.name, "loader-test");
  assert.deepEqual(first.graph.renderDeps, ["first"]);
  const seq = first.graph.root.children[0];
  assert.deepEqual(
    seq.children.map((c) => [c.id, c.body.type]),
    [["first", "static"], ["gate", "approval"]],
  );
  assert.deepEqual(seq.children[0].body.value, { v: 20 });
  assert.equal(seq.children[1].approval.request.title, "Go on?");

  const second = renderWorkflow(wf, snapshot([{ table: "step", nodeId: "first", iteration: 0, value: { v: 20 } }]));
  assert.equal(second.graph.root.children[0].children[2].id, "second");
  assert.deepEqual(await second.computeFns.get("second")(), { v: 43 });

  // Importing again gives the same module instance (no second load).
  assert.equal(await loadWorkflow(join(dir, "workflow.tsx")), wf);
});

// The peer's own workflow file, from shared/ beside the repository (as CI lays it out).
const PEER_APPROVAL = [
  fileURLToPath(new URL("../../../../shared/peers/smithers/wf/approval.tsx", import.meta.url)),
  "/work/shared/peers/smithers/wf/approval.tsx",
].find((p) => existsSync(p));

test("loads the Smithers peer workflow approval.tsx unmodified", { skip: !PEER_APPROVAL && "shared/ is not beside the repository" }, async () => {
  const dir = freshDir();
  copyFileSync(PEER_APPROVAL, join(dir, "approval.tsx"));
  const wf = await loadWorkflow(join(dir, "approval.tsx"));
  const { graph, computeFns } = renderWorkflow(wf, snapshot());
  assert.equal(graph.workflow.name, "approval-bench");
  assert.deepEqual(Object.keys(graph.schemas), ["compute", "gate", "after"]);
  assert.deepEqual(graph.renderDeps, ["compute", "gate"]);
  assert.deepEqual(graph.root, {
    kind: "sequence",
    children: [
      {
        kind: "sequence",
        children: [
          { kind: "task", id: "compute", iteration: 0, output: "compute", body: { type: "static", value: { value: 21 } } },
          {
            kind: "task",
            id: "gate",
            iteration: 0,
            output: "gate",
            body: { type: "approval" },
            approval: {
              mode: "decision",
              onDeny: "continue",
              request: { title: "Continue?", summary: "bench gate", metadata: null },
            },
            label: "Continue?",
          },
        ],
      },
    ],
  });
  assert.equal(computeFns.size, 0);
});

test("a default export that is not a workflow is INVALID_WORKFLOW", async () => {
  const dir = freshDir();
  writeFileSync(join(dir, "nope.ts"), `export default { hello: "world" } as const;\n`);
  await assert.rejects(loadWorkflow(join(dir, "nope.ts")), (err) => {
    assert.ok(err instanceof SmithersError);
    assert.equal(err.code, "INVALID_WORKFLOW");
    assert.match(err.message, /default export must be smithers\(\(ctx\) => …\)/);
    return true;
  });
});

test("unresolvable imports fail with WORKFLOW_LOAD_FAILED, naming the module and the importing file", async () => {
  const dir = freshDir();
  writeFileSync(join(dir, "missing-pkg.ts"), `import "definitely-not-installed-pkg";\nexport default 1;\n`);
  await assert.rejects(loadWorkflow(join(dir, "missing-pkg.ts")), (e) => {
    assert.equal(e.code, "WORKFLOW_LOAD_FAILED");
    assert.equal(e.details.cause, "ERR_MODULE_NOT_FOUND");
    assert.match(e.message, /definitely-not-installed-pkg/);
    assert.match(e.message, /missing-pkg\.ts/);
    return true;
  });
  writeFileSync(join(dir, "missing-rel.ts"), `import "./nothing-here";\nexport default 1;\n`);
  const file = join(dir, "missing-rel.ts");
  await assert.rejects(loadWorkflow(file), { code: "WORKFLOW_LOAD_FAILED", details: { cause: "ERR_MODULE_NOT_FOUND", path: file, file } });
});

test("TypeScript-style .js specifiers find the .ts source; syntax errors point at the file", async () => {
  const dir = freshDir();
  writeFileSync(join(dir, "util.ts"), `export const k: number = 7;\n`);
  writeFileSync(
    join(dir, "wf.ts"),
    `import { createSmithers } from "smithers-rs";\nimport { k } from "./util.js";\nconst { smithers } = createSmithers({ out: { type: "object", properties: { k: { type: "integer" } } } });\nexport const value = k;\nexport default smithers(() => null);\n`,
  );
  const wf = await loadWorkflow(join(dir, "wf.ts"));
  assert.deepEqual(Object.keys(wf.jsonSchemas), ["out"]);
  writeFileSync(join(dir, "broken.tsx"), `export default <Task id=>;\n`);
  await assert.rejects(loadWorkflow(join(dir, "broken.tsx")), /broken\.tsx/);
});

test("TypeScript the loader compiles: enums, namespaces, parameter properties, decorators (experimentalDecorators), `using`", async () => {
  const dir = freshDir();
  writeFileSync(
    join(dir, "ts.ts"),
    `import { createSmithers } from "smithers-orchestrator";
enum Color { Red = 1, Green }
namespace Names { export const first = "ada"; }
const doubled = (target: any, key: string, descriptor: PropertyDescriptor) => {
  const get = descriptor.value;
  descriptor.value = function () { return get.call(this) * 2; };
};
class Box { constructor(private readonly value: number) {} @doubled get(): number { return this.value; } }
export const disposed: string[] = [];
{
  using held = { [Symbol.dispose]() { disposed.push("held"); } };
}
const { smithers } = createSmithers({ out: { type: "object", properties: { n: { type: "number" } } } });
export const facts = { green: Color.Green, first: Names.first, boxed: new Box(7).get() };
export default smithers(() => null);
`,
  );
  await loadWorkflow(join(dir, "ts.ts"));
  const mod = await import(pathToFileURL(join(dir, "ts.ts")).href);
  assert.deepEqual(mod.facts, { green: 2, first: "ada", boxed: 14 });
  assert.deepEqual(mod.disposed, ["held"]);
});
