// Agent prompts and answers: JSX and compiled MDX rendered to markdown text, schema examples,
// JSON taken out of an answer; MDX files compiled by the loader (cached) with clear errors.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { jsonInText, structuredValue } from "../src/agents/extract.js";
import { describeFields, renderMdx, renderPromptText, schemaExample } from "../src/agents/prompt.js";
import { Fragment, jsx } from "../src/jsx-runtime.js";

const h = (type, props, ...children) =>
  jsx(type, children.length === 0 ? { ...props } : { ...props, children: children.length === 1 ? children[0] : children });
const BIN = fileURLToPath(new URL("../bin/smithers.js", import.meta.url));

describe("prompt text", () => {
  test("markdown elements (as MDX produces them) become markdown; components are called with their props", () => {
    const Item = ({ name }) => h("li", null, name);
    const tree = h(Fragment, null,
      h("h1", null, "Deploy ", h("code", null, "api")),
      "\n",
      h("p", null, "Error rate ", h("strong", null, "12%"), ", see ", h("a", { href: "https://x.test/d" }, "dashboard"), "."),
      "\n",
      h("ol", null, "\n", h("li", null, "stop"), "\n", h("li", null, "roll back"), "\n"),
      "\n",
      h("ul", null, ["a", "b"].map((name) => h(Item, { name, key: name }))),
      h("pre", null, h("code", { className: "language-sh" }, "smithers up wf.tsx\n")),
      h("blockquote", null, h("p", null, "be careful")),
    );
    assert.equal(
      renderPromptText(tree),
      "# Deploy `api`\n\nError rate **12%**, see [dashboard](https://x.test/d).\n\n1. stop\n2. roll back\n\n- a\n- b\n\n```sh\nsmithers up wf.tsx\n```\n\n> be careful",
    );
    assert.equal(renderPromptText(["Count ", 3, null, false, " things"]), "Count 3 things");
    assert.equal(renderMdx(({ who }) => h("p", null, `hello ${who}`), { who: "you" }), "hello you");
    assert.throws(() => renderPromptText({ not: "an element" }), { code: "INVALID_PROMPT" });
  });

  test("a schema's example and field list, as prompts and follow-ups show them", () => {
    const schema = {
      type: "object",
      properties: {
        verdict: { type: "string", enum: ["ship", "hold"] },
        reasons: { type: "array", items: { type: "string", description: "one reason" } },
        score: { type: "number" },
        note: { anyOf: [{ type: "string" }, { type: "null" }] },
      },
      required: ["verdict", "reasons", "score"],
    };
    assert.deepEqual(schemaExample(schema), { verdict: "ship", reasons: ["one reason"], score: 0, note: "string" });
    assert.equal(describeFields(schema), '- verdict: "ship" | "hold"\n- reasons: string[]\n- score: number\n- note: string | null (optional)');
  });
});

describe("JSON in answers", () => {
  test("the whole text, else the last ```json fence, else the last balanced object; strings inside are no braces", () => {
    assert.deepEqual(jsonInText('{"a":1}'), { found: true, value: { a: 1 } });
    assert.deepEqual(jsonInText('first ```json\n{"a":1}\n``` then ```json\n{"a":2, "s":"}{"}\n```'), { found: true, value: { a: 2, s: "}{" } });
    assert.deepEqual(jsonInText('I looked at {"tool":"read"} and decided {"verdict":"ship"}. Done.'), { found: true, value: { verdict: "ship" } });
    assert.deepEqual(jsonInText("no json at all"), { found: false });
  });

  test("result.output when it is an object; else the text; else the steps from the last", () => {
    assert.deepEqual(structuredValue({ output: { a: 1 }, text: '{"a":2}' }).value, { a: 1 });
    assert.deepEqual(structuredValue({ get output() { throw new Error("no output"); }, text: '{"a":2}' }).value, { a: 2 });
    assert.deepEqual(structuredValue({ output: "plain text", text: "plain text", steps: [{ text: '{"a":3}' }, { text: "nothing" }] }).value, { a: 3 });
    assert.equal(structuredValue({ text: "nope", steps: [] }).found, false);
  });
});

describe("MDX files in workflows", () => {
  const run = (args, env) =>
    new Promise((done) =>
      execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } }, (e, stdout, stderr) => done({ code: e ? e.code : 0, stdout, stderr })),
    );

  test("an .mdx import compiles with no build step (cached by content), renders with its props; a broken one is WORKFLOW_LOAD_FAILED at its line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "smithers-mdx-"));
    const cache = join(dir, "cache");
    writeFileSync(join(dir, "greeting.mdx"), "# Hello {props.name}\n\nYou have **{props.count}** tasks:\n\n- first\n- second\n");
    writeFileSync(
      join(dir, "wf.tsx"),
      `import { Task, createSmithers, renderMdx } from "smithers-orchestrator";
import Greeting from "./greeting.mdx";
const { Workflow, smithers, outputs } = createSmithers({ out: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } });
export default smithers(() => <Workflow name="mdx"><Task id="t" output={outputs.out}>{{ text: renderMdx(Greeting, { name: "Ada", count: 2 }) }}</Task></Workflow>);
`,
    );
    const db = join(dir, "smithers.db");
    const first = await run(["up", join(dir, "wf.tsx"), "--db", db, "--run-id", "m1", "--json"], { SMITHERS_CACHE_DIR: cache });
    assert.equal(first.code, 0, first.stderr);
    const inspect = await run(["inspect", "m1", "--db", db, "--json"], {});
    assert.equal(JSON.parse(inspect.stdout).outputs[0].value.text, "# Hello Ada\n\nYou have **2** tasks:\n\n- first\n- second");
    // The compiled workflow and the compiled prompt.
    const modules = join(cache, "modules");
    const cached = readdirSync(modules).filter((f) => f.endsWith(".js"));
    assert.equal(cached.length, 2);
    const before = cached.map((f) => statSync(join(modules, f)).mtimeMs);
    assert.equal((await run(["up", join(dir, "wf.tsx"), "--db", db, "--run-id", "m2"], { SMITHERS_CACHE_DIR: cache })).code, 0);
    assert.deepEqual(cached.map((f) => statSync(join(modules, f)).mtimeMs), before, "the second load used the cache");

    writeFileSync(join(dir, "greeting.mdx"), "# Hello\n\nan {unclosed expression\n");
    const broken = await run(["up", join(dir, "wf.tsx"), "--db", db], { SMITHERS_CACHE_DIR: cache });
    assert.equal(broken.code, 4);
    assert.match(broken.stderr, /^smithers: WORKFLOW_LOAD_FAILED: .*greeting\.mdx:3(:\d+)?: /m);
  });
});
