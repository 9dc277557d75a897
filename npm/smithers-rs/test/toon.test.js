// The TOON loader: decoding with file/line/key errors, validation, field types, expressions
// and interpolation, and the graph a .toon file renders to.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { SmithersEngine, SmithersError, approvalDecisionSchema, compileToon, loadWorkflow, renderWorkflow } from "../src/index.js";

const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), "../../../examples");
const dirs = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), "smithers-toon-"));
  dirs.push(d);
  return d;
}
/** Writes files { name: text } into a fresh dir; returns the dir. */
function files(map) {
  const dir = tempDir();
  for (const [name, text] of Object.entries(map)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const FILE = "/virtual/wf.toon";
const compile = (text, file = FILE) => compileToon(text, { file });
const lines = (...l) => `${l.join("\n")}\n`;
const snap = (outputs = [], extra = {}) => ({ runId: "r1", input: {}, loops: {}, nodeLoops: {}, outputs, ...extra });
const row = (table, nodeId, value, iteration = 0) => ({ table, nodeId, iteration, value });
const render = (wf, snapshot = snap()) => renderWorkflow(wf, snapshot);
const tasksOf = (node, out = []) => {
  if (node.kind === "task") out.push(node);
  for (const c of node.children ?? []) tasksOf(c, out);
  return out;
};
const taskById = (graph, id) => tasksOf(graph.root).find((t) => t.id === id);

/** Rejects with a SmithersError of `code` whose details match `details`. */
async function rejects(promise, code, details = {}) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof SmithersError, `expected SmithersError, got ${err?.stack ?? err}`);
    assert.equal(err.code, code, err.message);
    for (const [k, v] of Object.entries(details)) assert.deepEqual(err.details[k], v, `details.${k} in: ${err.message}`);
    if (details.file && details.line) assert.ok(err.message.startsWith(`${details.file}:${details.line}: `), err.message);
    return true;
  });
}

// A minimal valid step, to build documents around.
const STEP_A = ["  - id: a", '    run: "({ v: 1 })"', "    output:", "      v: number"];

describe("decoding errors carry file, line and key", () => {
  test("bad indentation", async () => {
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", '     run: "1"')), "TOON_PARSE", {
      file: FILE,
      line: 4,
      key: "steps[0].run",
    });
  });

  test("an array length header that does not match its items", async () => {
    await rejects(compile(lines("name: x", "steps[2]:", ...STEP_A)), "TOON_PARSE", { file: FILE, line: 6, key: "steps" });
    await rejects(compile(lines("name: x", "steps[1]:", ...STEP_A, ...STEP_A.map((l) => l.replace("id: a", "id: b")))), "TOON_PARSE", {
      line: 7,
      key: "steps",
    });
    await rejects(compile(lines("name: x", "steps[1]:", ...STEP_A, "    needs[2]: b")), "TOON_PARSE", { line: 7, key: "steps[0].needs" });
  });

  test("line numbers count blank lines and # comments, which are allowed between steps", async () => {
    const text = lines("# a comment", "name: x", "", "steps[2]:", ...STEP_A, "", "  # the second step", "  - id: b", "    bad");
    await rejects(compile(text), "TOON_PARSE", { line: 12 });
    const ok = await compile(lines("# c", "name: x", "", "steps[2]:", ...STEP_A, "", "  # b", ...STEP_A.map((l) => l.replace("id: a", "id: b"))));
    assert.deepEqual(tasksOf(render(ok).graph.root).map((t) => t.id), ["a", "b"]);
  });

  test('a literal union written "a" | "b" unquoted gets a hint', async () => {
    await rejects(compile(lines("name: x", "input:", '  env: "a" | "b"', "steps[1]:", ...STEP_A)), "TOON_PARSE", { line: 3, key: "input.env" });
    await assert.rejects(compile(lines("name: x", "input:", '  env: "a" | "b"')), /'a' \| 'b'/);
  });
});

describe("validation errors", () => {
  test("unknown kind", async () => {
    const text = lines("name: x", "steps[2]:", ...STEP_A, "  - kind: aproval", "    id: g");
    await rejects(compile(text), "TOON_UNKNOWN_NODE", { file: FILE, line: 7, key: "steps[1].kind", kind: "aproval" });
  });

  test("missing id, name, steps, output, request title", async () => {
    await rejects(compile(lines("name: x", "steps[1]:", '  - run: "1"', "    output:", "      v: number")), "TOON_MISSING_KEY", {
      line: 3,
      key: "steps[0].id",
    });
    await rejects(compile(lines("steps[1]:", ...STEP_A)), "TOON_MISSING_KEY", { key: "name" });
    await rejects(compile(lines("name: x")), "TOON_MISSING_KEY", { key: "steps" });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", '    run: "1"')), "TOON_MISSING_KEY", { key: "steps[0].output", line: 3 });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", "    output:", "      v: number")), "TOON_MISSING_KEY", { key: "steps[0]" });
    await rejects(compile(lines("name: x", "steps[1]:", "  - kind: approval", "    id: g", "    request:", "      summary: s")), "TOON_MISSING_KEY", {
      key: "steps[0].request.title",
      line: 5,
    });
    await rejects(compile(lines("name: x", "steps[1]:", "  - kind: loop", "    id: l", "    children[1]:", ...STEP_A.map((l) => `    ${l}`))), "TOON_MISSING_KEY", {
      key: "steps[0].until",
    });
  });

  test("duplicate ids, anywhere in the tree", async () => {
    const text = lines(
      "name: x",
      "steps[2]:",
      ...STEP_A,
      "  - kind: parallel",
      "    children[1]:",
      ...STEP_A.map((l) => `    ${l}`),
    );
    await assert.rejects(compile(text), (e) => e.code === "TOON_DUPLICATE_STEP" && /first used on line 3/.test(e.message));
    await rejects(compile(text), "TOON_DUPLICATE_STEP", { line: 9, key: "steps[1].children[0].id", id: "a" });
  });

  test("needs naming an unknown step, itself, or a step that runs later", async () => {
    const two = (needsA, needsB) =>
      lines("name: x", "steps[2]:", ...STEP_A, ...(needsA ? [`    needs[1]: ${needsA}`] : []), ...STEP_A.map((l) => l.replace("id: a", "id: b")), ...(needsB ? [`    needs[1]: ${needsB}`] : []));
    await rejects(compile(two(null, "nope")), "TOON_UNKNOWN_NEED", { line: 11, key: "steps[1].needs", need: "nope" });
    await rejects(compile(two("a", null)), "TOON_UNKNOWN_NEED", { need: "a" });
    await rejects(compile(two("b", null)), "TOON_NEED_ORDER", { key: "steps[0].needs", need: "b" });
    // In a parallel, needing a later sibling is fine.
    const par = lines("name: x", "steps[1]:", "  - kind: parallel", "    children[2]:", ...STEP_A.map((l) => `    ${l}`), "        needs[1]: b", ...STEP_A.map((l) => `    ${l.replace("id: a", "id: b")}`));
    assert.deepEqual(taskById(render(await compile(par)).graph, "a").dependsOn, ["b"]);
    // A step cannot need the loop it is in.
    const inLoop = lines("name: x", "steps[1]:", "  - kind: loop", "    id: l", "    until: true", "    children[1]:", ...STEP_A.map((l) => `    ${l}`), "        needs[1]: l");
    await rejects(compile(inLoop), "TOON_NEED_ORDER", { need: "l" });
  });

  test("unknown keys, conflicting bodies, agent steps", async () => {
    await rejects(compile(lines("name: x", "steps[1]:", ...STEP_A, "    neds[1]: a")), "TOON_UNKNOWN_KEY", { line: 7, key: "steps[0].neds" });
    await rejects(compile(lines("name: x", "stpes: 1")), "TOON_UNKNOWN_KEY", { key: "stpes" });
    await rejects(compile(lines("name: x", "steps[1]:", ...STEP_A, "    handler: ./h.ts#f")), "TOON_CONFLICTING_KEYS", { key: "steps[0].handler" });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", "    prompt: Write a poem", "    output:", "      v: string")), "AGENT_TASKS_UNSUPPORTED", {
      line: 4,
      key: "steps[0].prompt",
    });
    await rejects(compile(lines("name: x", "steps[1]:", ...STEP_A, "    retry:", "      maxAttempts: 2", "      backoff: exponential")), "TOON_UNKNOWN_KEY", {
      key: "steps[0].retry.backoff",
    });
  });

  test("bad values", async () => {
    const withLine = (l) => compile(lines("name: x", "steps[1]:", ...STEP_A, l));
    await rejects(withLine("    timeout: soon"), "TOON_INVALID_VALUE", { key: "steps[0].timeout" });
    await rejects(withLine("    maxAttempts: 0"), "TOON_INVALID_VALUE", { key: "steps[0].maxAttempts" });
    await rejects(compile(lines("name: x", "steps[1]:", "  - kind: approval", "    id: g", "    request:", "      title: t", "    onDeny: maybe")), "TOON_INVALID_VALUE", {
      key: "steps[0].onDeny",
      line: 7,
    });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: input", '    run: "1"', "    output:", "      v: number")), "TOON_INVALID_VALUE", { key: "steps[0].id" });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a.b", '    run: "1"', "    output:", "      v: number")), "TOON_INVALID_VALUE", { key: "steps[0].id" });
  });

  test("field types", async () => {
    const out = (type) => compile(lines("name: x", "steps[1]:", "  - id: a", '    run: "1"', "    output:", `      v: ${type}`));
    await rejects(out("strin"), "TOON_INVALID_FIELD_TYPE", { key: "steps[0].output.v", line: 6 });
    await rejects(out("string | number"), "TOON_INVALID_FIELD_TYPE", { key: "steps[0].output.v" });
    await rejects(out("'a' | 'a'"), "TOON_INVALID_FIELD_TYPE");
    await rejects(out("7"), "TOON_INVALID_FIELD_TYPE");
    // Output fields are columns: identifiers, and not the key columns.
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", '    run: "1"', "    output:", "      iteration: number")), "TOON_INVALID_FIELD_TYPE", {
      key: "steps[0].output.iteration",
    });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", '    run: "1"', "    output:", "      my-field: number")), "TOON_INVALID_FIELD_TYPE");
  });

  test("output tables: unknown schema, a derived key that is no identifier, conflicts", async () => {
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", '    run: "1"', "    output: missing")), "TOON_UNKNOWN_SCHEMA", { key: "steps[0].output" });
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: _a", '    run: "1"', "    output:", "      v: number")), "INVALID_IDENTIFIER", { key: "steps[0].id" });
    // approve-it and approveIt both derive the table approveIt.
    const clash = lines(
      "name: x",
      "steps[2]:",
      "  - id: approve-it",
      '    run: "1"',
      "    output:",
      "      v: number",
      "  - id: approveIt",
      '    run: "1"',
      "    output:",
      "      v: string",
    );
    await rejects(compile(clash), "TOON_OUTPUT_CONFLICT", { key: "steps[1].output" });
    // build_x and buildX are different keys but the same SQL table.
    await rejects(compile(clash.replace("approve-it", "approve_it")), "TOON_OUTPUT_CONFLICT");
    // An approval's table holds decisions; it cannot be a schema of `schemas`.
    await rejects(
      compile(lines("name: x", "schemas:", "  s:", "    v: number", "steps[1]:", "  - kind: approval", "    id: g", "    output: s", "    request:", "      title: t")),
      "TOON_INVALID_VALUE",
      { key: "steps[0].output" },
    );
  });

  test("expressions that do not parse", async () => {
    await rejects(compile(lines("name: x", "steps[1]:", "  - id: a", '    run: "return {"', "    output:", "      v: number")), "TOON_INVALID_EXPRESSION", {
      key: "steps[0].run",
      line: 4,
    });
    await rejects(compile(lines("name: x", "steps[1]:", "  - kind: approval", "    id: g", "    request:", '      title: "Deploy {build.version"')), "TOON_INVALID_EXPRESSION", {
      key: "steps[0].request.title",
    });
    await rejects(compile(lines("name: x", "steps[1]:", ...STEP_A, '    skipIf: "a.v >"')), "TOON_INVALID_EXPRESSION", { key: "steps[0].skipIf" });
  });

  test("handlers: a module or export that does not exist", async () => {
    const dir = files({ "h.ts": "export const build = () => ({ v: 1 });\nexport const notAFunction = 3;\n" });
    const wf = (handler) => lines("name: x", "steps[1]:", "  - id: a", `    handler: ${handler}`, "    output:", "      v: number");
    const file = join(dir, "wf.toon");
    await rejects(compile(wf("./missing.ts#build"), file), "TOON_HANDLER_NOT_FOUND", { file, line: 4, key: "steps[0].handler", module: join(dir, "missing.ts") });
    await rejects(compile(wf("./h.ts#deploy"), file), "TOON_HANDLER_NOT_FOUND", { line: 4, export: "deploy" });
    await rejects(compile(wf("./h.ts#notAFunction"), file), "TOON_HANDLER_NOT_FOUND");
    await rejects(compile(wf("./h.ts"), file), "TOON_HANDLER_NOT_FOUND", { export: "default" });
    await rejects(compile(wf("tools#build"), file), "TOON_HANDLER_NOT_FOUND");
    // An imported handler module must exist, used or not; without extension, as the hooks resolve it.
    const imported = (from) => lines("name: x", "imports:", "  handlers[1]{from,as}:", `    ${from},tools`, "steps[1]:", "  - id: a", "    handler: tools#build", "    output:", "      v: number");
    await rejects(compile(imported("./nope.ts"), file), "TOON_HANDLER_NOT_FOUND", { line: 4, key: "imports.handlers[0].from" });
    for (const from of ["./h", "./h.js"]) {
      const viaImport = render(await compile(imported(from), file));
      assert.deepEqual(await viaImport.computeFns.get("a")(), { v: 1 }, from);
    }
    // A module that throws while it loads is another error.
    writeFileSync(join(dir, "broken.ts"), "throw new Error('no config');\nexport const build = () => ({ v: 1 });\n");
    await rejects(compile(wf("./broken.ts#build"), file), "TOON_HANDLER_LOAD_FAILED", { line: 4 });
    await assert.rejects(compile(wf("./broken.ts#build"), file), /no config/);
    await compile(wf("./h.ts#build"), file); // and this one loads
  });

  test("imports: a missing file, an unknown name, a cycle", async () => {
    const dir = files({
      "a.toon": lines("name: a", "imports:", "  workflows[1]{from,as}:", "    ./b.toon,b", "steps[1]:", "  - kind: workflow", "    id: callb", "    use: b"),
      "b.toon": lines("name: b", "imports:", "  workflows[1]{from,as}:", "    ./a.toon,a", "steps[1]:", "  - kind: workflow", "    id: calla", "    use: a"),
    });
    await rejects(loadWorkflow(join(dir, "a.toon")), "TOON_IMPORT_CYCLE", { file: join(dir, "b.toon"), key: "steps[0].use" });
    await rejects(compile(lines("name: x", "imports:", "  workflows[1]{from,as}:", "    ./nope.toon,n", "steps[1]:", ...STEP_A), join(dir, "x.toon")), "TOON_IMPORT_NOT_FOUND", {
      key: "imports.workflows[0].from",
    });
    await rejects(compile(lines("name: x", "steps[1]:", "  - kind: workflow", "    id: w", "    use: nope")), "TOON_UNKNOWN_IMPORT", { key: "steps[0].use" });
  });

  test("errors are SmithersErrors with a stable code and { file, line, key }", async () => {
    const err = await compile(lines("name: x", "steps[1]:", "  - kind: nope")).catch((e) => e);
    assert.ok(err instanceof SmithersError);
    assert.deepEqual({ code: err.code, file: err.details.file, line: err.details.line, key: err.details.key }, {
      code: "TOON_UNKNOWN_NODE",
      file: FILE,
      line: 3,
      key: "steps[0].kind",
    });
    assert.equal(err.message, `${FILE}:3: steps[0].kind: unknown node kind "nope"; expected one of approval, sequence, parallel, branch, loop, workflow, or no kind for a step`);
  });
});

describe("field types -> JSON Schema", () => {
  test("the same schemas zod gives the same types", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "input:",
        "  env: 'staging' | 'prod'",
        "  dry: boolean?",
        "steps[1]:",
        "  - id: a",
        '    run: "1"',
        "    output:",
        "      version: string",
        "      size: number",
        "      ok: boolean",
        "      env: staging | prod",
        '      tier: "\\"gold\\" | \\"silver\\""',
        "      tags: string[]",
        "      note: string?",
        "      labels: 'x' | 'y'[]?",
        "      meta:",
        "        owner: string",
        "        since: number?",
        "      files[1]:",
        "        - name: string",
        "          bytes: number",
      ),
    );
    const zodJson = (s) => s["~standard"].jsonSchema.output({ target: "draft-2020-12" });
    assert.deepEqual(
      wf.jsonSchemas.a,
      zodJson(
        z.object({
          version: z.string(),
          size: z.number(),
          ok: z.boolean(),
          env: z.enum(["staging", "prod"]),
          tier: z.enum(["gold", "silver"]),
          tags: z.array(z.string()),
          note: z.string().nullish(),
          labels: z.array(z.enum(["x", "y"])).nullish(),
          meta: z.object({ owner: z.string(), since: z.number().nullish() }),
          files: z.array(z.object({ name: z.string(), bytes: z.number() })),
        }),
      ),
    );
    assert.deepEqual(wf.inputSchema, zodJson(z.object({ env: z.enum(["staging", "prod"]), dry: z.boolean().nullish() })));
  });

  test("schemas: named tables, and input: naming one", async () => {
    const wf = await compile(
      lines("name: x", "schemas:", "  release:", "    version: string", "input: release", "steps[1]:", "  - id: a", '    run: "input"', "    output: release"),
    );
    assert.deepEqual(Object.keys(wf.jsonSchemas), ["release"]);
    assert.deepEqual(wf.inputSchema, wf.jsonSchemas.release);
    assert.equal(taskById(render(wf).graph, "a").output, "release");
  });
});

describe("the graph a .toon file renders", () => {
  test("examples/deploy.toon: tables, dependencies, a title rendered once build has an output", async () => {
    const wf = await loadWorkflow(join(EXAMPLES, "deploy.toon"));
    assert.deepEqual([wf.source, wf.file, wf.baseDir], ["toon", join(EXAMPLES, "deploy.toon"), EXAMPLES]);
    const input = { service: "api", env: "prod" };
    const first = render(wf, snap([], { input })).graph;
    assert.equal(first.workflow.name, "deploy");
    assert.deepEqual(Object.keys(first.schemas).sort(), ["approveDeploy", "build", "deploy"]);
    assert.deepEqual(first.schemas.approveDeploy, JSON.parse(JSON.stringify(approvalDecisionSchema)));
    assert.deepEqual(first.renderDeps, ["build"]);
    assert.deepEqual(first.root, {
      kind: "sequence",
      children: [
        { kind: "task", id: "build", iteration: 0, output: "build", body: { type: "compute" } },
        {
          kind: "task",
          id: "approve-deploy",
          iteration: 0,
          output: "approveDeploy",
          body: { type: "approval" },
          dependsOn: ["build"],
          approval: { mode: "decision", onDeny: "fail", request: { title: "approve-deploy", summary: null, metadata: null } },
          label: "approve-deploy",
        },
        { kind: "task", id: "deploy", iteration: 0, output: "deploy", body: { type: "compute" }, dependsOn: ["build", "approve-deploy"] },
      ],
    });

    const built = render(wf, snap([row("build", "build", { version: "1.4.2", commitSha: "abc", artifact: "api-1.4.2.tgz" })], { input }));
    assert.deepEqual(taskById(built.graph, "approve-deploy").approval.request, {
      title: "Deploy api 1.4.2 to prod?",
      summary: "Commit abc, artifact api-1.4.2.tgz.",
      metadata: null,
    });
    // Compute bodies read the run's input and the outputs by id (hyphenated ids too).
    const fresh = render(wf, snap([], { input }));
    assert.deepEqual(await fresh.computeFns.get("build")(), { version: "1.4.2", commitSha: "a1b2c3d", artifact: "api-1.4.2.tgz" });
    fresh.addOutput(row("build", "build", { version: "1.4.2", commitSha: "a1b2c3d", artifact: "x" }));
    fresh.addOutput(row("approveDeploy", "approve-deploy", { approved: true, note: null, decidedBy: "alice", decidedAt: "t" }));
    assert.deepEqual(await fresh.computeFns.get("deploy")(), { url: "https://prod.example.com/api", version: "1.4.2", approvedBy: "alice" });
  });

  test("step options: retries, timeout, label, continueOnFail, skipIf", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[3]:",
        ...STEP_A,
        "    maxAttempts: 3",
        "    timeout: 1m30s",
        "    label: The A step",
        "    continueOnFail: true",
        ...STEP_A.map((l) => l.replace("id: a", "id: b")),
        "    retry:",
        "      maxAttempts: 2",
        "    timeout: 250ms",
        '    skipIf: "a.v > 0"',
        ...STEP_A.map((l) => l.replace("id: a", "id: c")),
        "    timeout: 2000",
        "    skipIf: false",
      ),
    );
    const g0 = render(wf).graph;
    assert.deepEqual(taskById(g0, "a"), {
      kind: "task",
      id: "a",
      iteration: 0,
      output: "a",
      body: { type: "compute" },
      retries: 2,
      timeoutMs: 90_000,
      continueOnFail: true,
      label: "The A step",
    });
    // skipIf reads a, an earlier step: a dependency, and false until a has an output.
    assert.deepEqual(taskById(g0, "b"), { kind: "task", id: "b", iteration: 0, output: "b", body: { type: "compute" }, dependsOn: ["a"], retries: 1, timeoutMs: 250 });
    assert.equal(taskById(g0, "c").timeoutMs, 2000);
    assert.equal(taskById(g0, "c").skip, undefined);
    const g1 = render(wf, snap([row("a", "a", { v: 1 })])).graph;
    assert.equal(taskById(g1, "b").skip, true);
    assert.deepEqual(g1.renderDeps, ["a"]);
  });

  test("conditions: bare, {…} form, booleans; an unread output is false; a real error fails the render", async () => {
    const branchOn = (cond) =>
      compile(
        lines(
          "name: x",
          "steps[2]:",
          ...STEP_A,
          "  - kind: branch",
          `    condition: ${cond}`,
          "    then:",
          "      id: yes",
          '      run: "1"',
          "      output:",
          "        v: number",
          "    else[1]:",
          "      - id: no",
          '        run: "1"',
          "        output:",
          "          v: number",
        ),
      );
    const chosen = (wf, outputs) => tasksOf(render(wf, snap(outputs)).graph.root).map((t) => t.id).filter((id) => id !== "a");
    for (const cond of [
      "a.v > 1",
      '"{a.v} > 1"',
      '"{a.v > 1}"',
      '"(a.v > 1) == true"',
      '"{a} && {a}.v > 1"',
      '"[a].some((x) => { return x && x.v > 1; })"',
    ]) {
      const wf = await branchOn(cond);
      assert.deepEqual(chosen(wf, []), ["no"], cond);
      assert.deepEqual(chosen(wf, [row("a", "a", { v: 5 })]), ["yes"], cond);
      assert.deepEqual(chosen(wf, [row("a", "a", { v: 0 })]), ["no"], cond);
    }
    assert.deepEqual(chosen(await branchOn("true"), []), ["yes"]);
    // The chosen side waits for the steps the condition reads.
    assert.deepEqual(taskById(render(await branchOn("a.v > 1"), snap([row("a", "a", { v: 5 })])).graph, "yes").dependsOn, ["a"]);
    // `then:` as one node stays that node; a list is a sequence.
    const g = render(await branchOn("true")).graph;
    assert.deepEqual(g.root.children[1].children[0].kind, "task");
    assert.deepEqual(render(await branchOn("false")).graph.root.children[1].children[0].kind, "sequence");

    const broken = await branchOn('"a.v.nope.deeper"');
    assert.throws(() => render(broken, snap([row("a", "a", { v: 5 })])), (e) => e.code === "TOON_EXPRESSION_FAILED" && e.details.key === "steps[1].condition");
  });

  test("interpolation: escapes, ternaries, method calls, objects; {input.x}; unknown globals", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[2]:",
        "  - id: build",
        "    run: \"({ version: '1.2', tags: ['a', 'b'], meta: { k: 1 } })\"",
        "    output:",
        "      version: string",
        "      tags: string[]",
        "      meta:",
        "        k: number",
        "  - kind: approval",
        "    id: gate",
        "    request:",
        '      title: "{{literal}} v{build.version} {build.tags.length > 1 ? \'many\' : \'one\'} {build.tags.map((t) => t.toUpperCase()).join(\'+\')}"',
        '      summary: "{build.meta} for {input.who} at {Math.max(1, 2)} }} done"',
      ),
    );
    const outputs = [row("build", "build", { version: "1.2", tags: ["a", "b"], meta: { k: 1 } })];
    const { request } = taskById(render(wf, snap(outputs, { input: { who: "ops" } })).graph, "gate").approval;
    assert.deepEqual(request, { title: "{literal} v1.2 many A+B", summary: '{"k":1} for ops at 2 } done', metadata: null });
  });

  test("run bodies: expression or statements, hyphenated ids, steps[…], names shadowed by locals", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[4]:",
        "  - id: first-step",
        '    run: "({ v: 2 })"',
        "    output:",
        "      v: number",
        "  - id: b",
        "    run: \"const x = first-step.v * 10;\\n// first-step in a comment, 'first-step' in a string\\nreturn { v: x + steps['first-step'].v }\"",
        "    output:",
        "      v: number",
        "  - id: c",
        '    run: "const b = { v: 100 };\\nreturn { v: b.v }"',
        "    output:",
        "      v: number",
        "  - id: d",
        "    run: \"await new Promise((r) => setTimeout(r, 1)); return { v: [1, 2].map((n) => n / 1).length + b.v }\"",
        "    output:",
        "      v: number",
      ),
    );
    const r = render(wf);
    assert.deepEqual(taskById(r.graph, "b").dependsOn, ["first-step"]);
    assert.deepEqual(taskById(r.graph, "d").dependsOn, ["b"]);
    r.addOutput(row("firstStep", "first-step", { v: 2 }));
    assert.deepEqual(await r.computeFns.get("b")(), { v: 22 });
    r.addOutput(row("b", "b", { v: 22 }));
    assert.deepEqual(await r.computeFns.get("c")(), { v: 100 });
    assert.deepEqual(await r.computeFns.get("d")(), { v: 24 });
    assert.deepEqual(r.graph.renderDeps, [], "run bodies read outputs when they run, not when the workflow renders");
  });

  test("loops: until, loop.iteration (1-based, and after the loop), latest outputs", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[2]:",
        "  - kind: loop",
        "    id: review",
        "    until: attempt.ok",
        "    maxIterations: 4",
        "    onMaxReached: fail",
        "    children[1]:",
        "      - id: attempt",
        '        run: "({ n: loop.iteration, ok: loop.iteration >= 2, prev: attempt ? attempt.n : 0 })"',
        "        output:",
        "          n: number",
        "          ok: boolean",
        "          prev: number",
        "  - kind: approval",
        "    id: gate",
        "    request:",
        '      title: "After {loop.iteration} rounds: {attempt.ok}"',
      ),
    );
    const at0 = render(wf, snap([], { loops: {} }));
    const loopNode = at0.graph.root.children[0];
    assert.deepEqual({ ...loopNode, children: undefined }, { kind: "loop", id: "review", until: false, maxIterations: 4, onMaxReached: "fail", children: undefined });
    assert.deepEqual(taskById(at0.graph, "attempt").dependsOn, undefined, "a step reading itself (the previous iteration) is no dependency");
    assert.deepEqual(await at0.computeFns.get("attempt")(), { n: 1, ok: false, prev: 0 });
    const rows = [row("attempt", "attempt", { n: 1, ok: false, prev: 0 }, 0)];
    const at1 = render(wf, snap(rows, { loops: { review: 1 }, nodeLoops: { attempt: "review" } }));
    assert.equal(at1.graph.root.children[0].until, false);
    assert.equal(taskById(at1.graph, "attempt").iteration, 1);
    assert.deepEqual(await at1.computeFns.get("attempt")(), { n: 2, ok: true, prev: 1 });
    rows.push(row("attempt", "attempt", { n: 2, ok: true, prev: 1 }, 1));
    const done = render(wf, snap(rows, { loops: { review: 1 }, nodeLoops: { attempt: "review" } }));
    assert.equal(done.graph.root.children[0].until, true);
    assert.equal(taskById(done.graph, "gate").approval.request.title, "After 2 rounds: true");
  });

  test("a reference to a later step (feedback from the previous iteration) is no dependency", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[1]:",
        "  - kind: loop",
        "    id: l",
        "    until: fix.done",
        "    children[2]:",
        "      - id: draft",
        "        run: \"({ text: fix ? fix.text + '+' : 'v1' })\"",
        "        output:",
        "          text: string",
        "      - id: fix",
        "        run: \"({ text: draft.text, done: draft.text.length > 4 })\"",
        "        output:",
        "          text: string",
        "          done: boolean",
      ),
    );
    const r = render(wf, snap([row("fix", "fix", { text: "v1", done: false })], { loops: { l: 1 }, nodeLoops: { draft: "l", fix: "l" } }));
    assert.equal(taskById(r.graph, "draft").dependsOn, undefined);
    assert.deepEqual(taskById(r.graph, "fix").dependsOn, ["draft"]);
    assert.deepEqual(await r.computeFns.get("draft")(), { text: "v1+" });
  });

  test("a need on a step of a branch not taken is dropped from the graph", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[2]:",
        "  - kind: branch",
        "    condition: input.fast",
        "    then:",
        "      id: quick",
        '      run: "({ v: 1 })"',
        "      output:",
        "        v: number",
        "    else:",
        "      id: slow",
        '      run: "({ v: 2 })"',
        "      output:",
        "        v: number",
        "  - id: after",
        "    needs[2]: quick,slow",
        '    run: "({ v: (quick ?? slow).v })"',
        "    output:",
        "      v: number",
      ),
    );
    assert.deepEqual(taskById(render(wf, snap([], { input: { fast: true } })).graph, "after").dependsOn, ["quick"]);
    assert.deepEqual(taskById(render(wf, snap([], { input: { fast: false } })).graph, "after").dependsOn, ["slow"]);
  });

  test("approvals: onDeny, a named table, allowed users; needs on a loop wait for its steps", async () => {
    const wf = await compile(
      lines(
        "name: x",
        "steps[2]:",
        "  - kind: loop",
        "    id: l",
        "    until: true",
        "    children[2]:",
        ...STEP_A.map((s) => `    ${s}`),
        ...STEP_A.map((s) => `    ${s.replace("id: a", "id: b")}`),
        "  - kind: approval",
        "    id: g",
        "    needs[1]: l",
        "    output: decisions",
        "    onDeny: skip",
        "    allowedUsers[2]: alice,bob",
        "    request:",
        "      title: Ship it?",
        "      summary: All green.",
      ),
    );
    const g = taskById(render(wf).graph, "g");
    assert.deepEqual(g, {
      kind: "task",
      id: "g",
      iteration: 0,
      output: "decisions",
      body: { type: "approval" },
      dependsOn: ["a", "b"],
      approval: { mode: "decision", onDeny: "skip", request: { title: "Ship it?", summary: "All green.", metadata: null }, allowedUsers: ["alice", "bob"] },
      label: "Ship it?",
    });
    assert.deepEqual(wf.jsonSchemas.decisions, JSON.parse(JSON.stringify(approvalDecisionSchema)));
  });

  test("an approval's quorum: approvals, from, veto (as <Approval quorum>); a malformed one is refused", async () => {
    const gate = (...q) => lines("name: x", "steps[1]:", "  - kind: approval", "    id: g", "    request:", "      title: Ship?", "    quorum:", ...q);
    const wf = await compile(gate("      approvals: 2", "      from[3]: alice,bob,dave", "      veto[1]: security"));
    assert.deepEqual(taskById(render(wf).graph, "g").approval.quorum, { approvals: 2, from: ["alice", "bob", "dave"], veto: ["security"] });
    await rejects(compile(gate("      approvals: 0")), "TOON_INVALID_VALUE", { key: "steps[0].quorum.approvals" });
    await rejects(compile(gate("      approvals: 1", "      voters[1]: a")), "TOON_UNKNOWN_KEY", { key: "steps[0].quorum.voters" });
    await rejects(compile(gate("      approvals: 1", "      veto: 3")), "TOON_INVALID_VALUE", { key: "steps[0].quorum.veto" });
  });

  test("handlers: ./module.ts#export and imported handler modules get { input, steps, loop, ctx }", async () => {
    const dir = files({
      "lib/tools.ts": lines(
        "type Args = { input: { service: string }; steps: Record<string, any>; loop: { iteration: number } };",
        "export async function build({ input }: Args): Promise<{ version: string }> {",
        "  return { version: `${input.service}-1.0` };",
        "}",
        "export default ({ steps, loop }: Args) => ({ version: steps.build.version + '!', n: loop.iteration });",
      ),
      "wf.toon": lines(
        "name: h",
        "imports:",
        "  handlers[1]{from,as}:",
        "    ./lib/tools.ts,tools",
        "steps[2]:",
        "  - id: build",
        "    handler: ./lib/tools.ts#build",
        "    output:",
        "      version: string",
        "  - id: again",
        "    needs[1]: build",
        "    handler: tools",
        "    output:",
        "      version: string",
        "      n: number",
      ),
    });
    const wf = await loadWorkflow(join(dir, "wf.toon"));
    const r = render(wf, snap([], { input: { service: "api" } }));
    assert.deepEqual(await r.computeFns.get("build")(), { version: "api-1.0" });
    r.addOutput(row("build", "build", { version: "api-1.0" }));
    assert.deepEqual(await r.computeFns.get("again")(), { version: "api-1.0!", n: 0 });
    assert.deepEqual(taskById(r.graph, "again").dependsOn, ["build"]);
  });

  test("kind: workflow inlines an imported workflow: ids <call>.<id>, tables from those ids, mapped input", async () => {
    const dir = files({
      "child.toon": lines(
        "name: child",
        "input:",
        "  version: string",
        "  env: string?",
        "steps[2]:",
        "  - id: bundle",
        "    run: \"({ artifact: 'pkg-' + input.version })\"",
        "    output:",
        "      artifact: string",
        "  - kind: approval",
        "    id: approve",
        "    request:",
        '      title: "Ship {bundle.artifact} to {input.env ?? \'nowhere\'}?"',
      ),
      "parent.toon": lines(
        "name: parent",
        "imports:",
        "  workflows[1]{from,as}:",
        "    ./child.toon,release",
        "steps[3]:",
        "  - id: build",
        "    run: \"({ version: '3.1' })\"",
        "    output:",
        "      version: string",
        "  - kind: workflow",
        "    id: rel",
        "    use: release",
        "    with:",
        '      version: "{build.version}"',
        "      env: prod",
        "  - id: after",
        "    needs[1]: rel",
        '    run: "({ approved: rel.approved })"',
        "    output:",
        "      approved: boolean",
      ),
    });
    const wf = await loadWorkflow(join(dir, "parent.toon"));
    assert.deepEqual(Object.keys(wf.jsonSchemas).sort(), ["after", "build", "relApprove", "relBundle"]);
    const r = render(wf, snap([row("build", "build", { version: "3.1" }), row("relBundle", "rel.bundle", { artifact: "pkg-3.1" })]));
    assert.deepEqual(tasksOf(r.graph.root).map((t) => [t.id, t.dependsOn ?? []]), [
      ["build", []],
      ["rel.bundle", ["build"]],
      ["rel.approve", ["build", "rel.bundle"]],
      ["after", ["rel.bundle", "rel.approve"]],
    ]);
    assert.equal(taskById(r.graph, "rel.approve").approval.request.title, "Ship pkg-3.1 to prod?");
    assert.deepEqual(await r.computeFns.get("rel.bundle")(), { artifact: "pkg-3.1" });
    r.addOutput(row("relApprove", "rel.approve", { approved: true, note: null, decidedBy: "a", decidedAt: "t" }));
    assert.deepEqual(await r.computeFns.get("after")(), { approved: true }, "a call reads as its last step's output");

    const bad = (mapping) =>
      compile(lines("name: p", "imports:", "  workflows[1]{from,as}:", "    ./child.toon,release", "steps[1]:", "  - kind: workflow", "    id: rel", "    use: release", "    with:", ...mapping), join(dir, "p.toon"));
    await rejects(bad(["      env: prod"]), "TOON_MISSING_KEY", { key: "steps[0].with" });
    await rejects(bad(["      version: '1'", "      colour: red"]), "TOON_UNKNOWN_KEY", { key: "steps[0].with.colour" });
  });
});

describe("running a .toon workflow in process", () => {
  test("a sub-workflow's approval pauses the run; approving resumes it", async (t) => {
    const dir = files({
      "child.toon": lines("name: child", "input:", "  n: number", "steps[1]:", "  - kind: approval", "    id: ok", "    request:", '      title: "n is {input.n}"'),
      "main.toon": lines(
        "name: main",
        "imports:",
        "  workflows[1]{from,as}:",
        "    ./child.toon,check",
        "input:",
        "  n: number",
        "steps[2]:",
        "  - kind: workflow",
        "    id: c",
        "    use: check",
        "    input:",
        '      n: "{input.n * 2}"',
        "  - id: done",
        '    run: "({ doubled: input.n * 2, approved: c.approved })"',
        "    output:",
        "      doubled: number",
        "      approved: boolean",
      ),
    });
    const engine = new SmithersEngine({ dbPath: join(dir, "smithers.db") });
    t.after(() => engine.close());
    const first = await engine.run(join(dir, "main.toon"), { input: { n: 21 } });
    assert.equal(first.status, "waiting-approval");
    const [pending] = engine.pendingApprovals({ runId: first.runId });
    assert.deepEqual([pending.nodeId, pending.title], ["c.ok", "n is 42"]);
    const decision = await engine.approve(first.runId, { decidedBy: "alice" });
    assert.equal((await decision.done).status, "finished");
    const outputs = engine.inspect(first.runId).outputs.map((o) => [o.table, o.nodeId, o.value.approved]);
    assert.deepEqual(outputs.sort(), [["cOk", "c.ok", true], ["done", "done", true]]);
    await assert.rejects(engine.run(join(dir, "main.toon"), { input: { n: "x" } }), (e) => e.code === "INVALID_INPUT");
  });
});
