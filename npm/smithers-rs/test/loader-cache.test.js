// The loader's on-disk cache of compiled modules (src/loader/cache.js): keyed by content, safe
// with concurrent processes, a damaged entry or another key's ignored, an unwritable location only means
// compiling every time; and what the compiled modules keep of the source (lines, file names).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { cacheKey, cached, digest } from "../src/loader/cache.js";

const BIN = fileURLToPath(new URL("../bin/smithers.js", import.meta.url));
const freshDir = () => mkdtempSync(join(tmpdir(), "smithers-rs-cache-"));
const entries = (cache) => {
  try {
    return readdirSync(join(cache, "modules")).filter((f) => !f.startsWith("."));
  } catch {
    return [];
  }
};

/** `smithers …` in a child process with its own cache location. */
const smithers = (args, cache, env = {}) =>
  new Promise((done) =>
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env, SMITHERS_CACHE_DIR: cache } }, (e, stdout, stderr) =>
      done({ code: e ? e.code : 0, stdout, stderr }),
    ),
  );

const WORKFLOW = `import { Task, createSmithers } from "smithers-orchestrator";
interface Out { n: number }
const { Workflow, smithers, outputs } = createSmithers({ out: { type: "object", properties: { n: { type: "number" } }, required: ["n"] } });
const value: Out = { n: VALUE };
export default smithers(() => <Workflow name="cached"><Task id="t" output={outputs.out}>{value}</Task></Workflow>);
`;

describe("the compiled-module cache, in a process", () => {
  test("a miss compiles and stores; a hit does not compile; the key covers compiler, options, path and source", () => {
    process.env.SMITHERS_CACHE_DIR = freshDir();
    try {
      const key = cacheKey("compiler@1", { a: 1 }, "/x.tsx", "source");
      let compiles = 0;
      const compile = () => `compiled ${++compiles}`;
      assert.equal(cached(key, compile), "compiled 1");
      assert.equal(cached(key, compile), "compiled 1");
      assert.equal(compiles, 1);
      const others = [
        cacheKey("compiler@2", { a: 1 }, "/x.tsx", "source"),
        cacheKey("compiler@1", { a: 2 }, "/x.tsx", "source"),
        cacheKey("compiler@1", { a: 1 }, "/y.tsx", "source"),
        cacheKey("compiler@1", { a: 1 }, "/x.tsx", "source "),
      ];
      assert.equal(new Set([key, ...others]).size, 5);
    } finally {
      delete process.env.SMITHERS_CACHE_DIR;
    }
  });

  test("a damaged entry (edited, cut short, not ours) is a miss, and is written again", () => {
    const dir = freshDir();
    process.env.SMITHERS_CACHE_DIR = dir;
    try {
      const key = cacheKey("compiler@1", {}, "/damaged.tsx", "source");
      const file = join(dir, "modules", `${digest(key)}.js`);
      let compiles = 0;
      const compile = () => `export default ${++compiles};\n`;
      cached(key, compile);
      const whole = readFileSync(file, "utf8");
      for (const damaged of [whole.replace("export default 1", "export default 9"), whole.slice(0, whole.length - 4), "export default 9;\n", ""]) {
        writeFileSync(file, damaged);
        const before = compiles;
        assert.equal(cached(key, compile), `export default ${before + 1};\n`);
        assert.equal(compiles, before + 1);
        assert.equal(cached(key, compile), `export default ${before + 1};\n`, "written again");
        assert.equal(compiles, before + 1);
      }
    } finally {
      delete process.env.SMITHERS_CACHE_DIR;
    }
  });

  test("an entry under the same file name for another key (a digest collision) is a miss, never the other module", () => {
    const dir = freshDir();
    process.env.SMITHERS_CACHE_DIR = dir;
    try {
      const key = cacheKey("compiler@1", {}, "/a.tsx", "source a");
      const other = cacheKey("compiler@1", {}, "/b.tsx", "source b");
      cached(other, () => "export default 'b';\n");
      // The other key's whole, valid entry, where this key's would be.
      const entry = readFileSync(join(dir, "modules", `${digest(other)}.js`), "utf8");
      writeFileSync(join(dir, "modules", `${digest(key)}.js`), entry);
      assert.equal(cached(key, () => "export default 'a';\n"), "export default 'a';\n");
      assert.equal(cached(key, () => "recompiled"), "export default 'a';\n", "its own entry replaced it");
    } finally {
      delete process.env.SMITHERS_CACHE_DIR;
    }
  });

  test("the digest: 16 hex digits, stable, different for near-identical texts", () => {
    assert.match(digest(""), /^[0-9a-f]{16}$/);
    assert.equal(digest("export default 1;"), digest("export default 1;"));
    const texts = ["a", "b", "ab", "ba", "export default 1;", "export default 2;", "é", "\u{1F600}", "a".repeat(1000), `${"a".repeat(999)}b`];
    assert.equal(new Set(texts.map(digest)).size, texts.length);
  });
});

describe("the compiled-module cache, through the CLI", () => {
  test("a warm start reuses the entry; an edit is a new entry; parallel cold starts agree", async () => {
    const dir = freshDir();
    const cache = join(dir, "cache");
    const file = join(dir, "wf.tsx");
    const db = join(dir, "smithers.db");
    writeFileSync(file, WORKFLOW.replace("VALUE", "1"));
    // Four processes at once on an empty cache: all run, one whole entry, no temporary file left.
    const cold = await Promise.all([1, 2, 3, 4].map((i) => smithers(["up", file, "--db", db, "--run-id", `c${i}`], cache)));
    for (const r of cold) assert.equal(r.code, 0, r.stderr);
    const [entry, ...rest] = entries(cache);
    assert.deepEqual(rest, []);
    assert.match(entry, /^[0-9a-f]{16}\.js$/);
    const mtime = statSync(join(cache, "modules", entry)).mtimeMs;
    assert.equal((await smithers(["up", file, "--db", db, "--run-id", "w1"], cache)).code, 0);
    assert.equal(statSync(join(cache, "modules", entry)).mtimeMs, mtime, "the warm start read the entry");
    writeFileSync(file, WORKFLOW.replace("VALUE", "2"));
    const edited = await smithers(["up", file, "--db", db, "--run-id", "e1", "--json"], cache);
    assert.equal(edited.code, 0, edited.stderr);
    assert.equal(entries(cache).length, 2);
    const out = await smithers(["inspect", "e1", "--db", db, "--json"], cache);
    assert.deepEqual(JSON.parse(out.stdout).outputs[0].value, { n: 2 }, "the edited file ran, not the cached one");
  });

  test("NAPI_RS_NATIVE_LIBRARY_PATH naming this package's addon (as the bench sets it) is not taken as oxc-transform's", async () => {
    const pkg = fileURLToPath(new URL("..", import.meta.url));
    const addon = readdirSync(pkg).find((f) => f.endsWith(".node"));
    assert.ok(addon, "the package holds its built addon (npm install builds it)");
    const dir = freshDir();
    const file = join(dir, "wf.tsx");
    writeFileSync(file, WORKFLOW.replace("VALUE", "4"));
    // An empty cache: oxc-transform is loaded to compile the file.
    const r = await smithers(["up", file, "--db", join(dir, "smithers.db"), "--run-id", "n1"], join(dir, "cache"), { NAPI_RS_NATIVE_LIBRARY_PATH: join(pkg, addon) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^run n1: finished$/m);
    assert.equal(entries(join(dir, "cache")).length, 1);
  });

  test("a cache location that cannot be written (a file, a read-only folder) only means compiling each time", async () => {
    const dir = freshDir();
    const file = join(dir, "wf.tsx");
    const db = join(dir, "smithers.db");
    writeFileSync(file, WORKFLOW.replace("VALUE", "3"));
    const notADir = join(dir, "plain-file");
    writeFileSync(notADir, "");
    const r1 = await smithers(["up", file, "--db", db, "--run-id", "f1"], notADir);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r1.stderr, "");
    const readOnly = join(dir, "read-only");
    mkdirSync(join(readOnly, "modules"), { recursive: true });
    chmodSync(join(readOnly, "modules"), 0o555);
    chmodSync(readOnly, 0o555);
    const r2 = await smithers(["up", file, "--db", db, "--run-id", "f2"], readOnly);
    assert.equal(r2.code, 0, r2.stderr);
    // (root may write anyway; otherwise nothing was written)
    if (process.getuid?.() !== 0) assert.deepEqual(entries(readOnly), []);
  });

  test("errors and stack traces name the .tsx file and its lines, not the compiled module's", async () => {
    const dir = freshDir();
    const cache = join(dir, "cache");
    const db = join(dir, "smithers.db");
    // Type-only lines vanish from the compiled module: lines after them would move without
    // the source map.
    const throws = join(dir, "throws.tsx");
    writeFileSync(throws, `interface A {\n  a: number;\n  b: string;\n}\ntype B = A;\nthrow new Error("boom at line 6");\nexport default 1;\n`);
    for (const attempt of ["cold", "warm"]) {
      const r = await smithers(["up", throws, "--db", db], cache);
      assert.equal(r.code, 4, `${attempt}: ${r.stderr}`);
      assert.match(r.stderr, /^smithers: WORKFLOW_LOAD_FAILED: .*throws\.tsx:6(:\d+)?: boom at line 6$/m, attempt);
    }
    const syntax = join(dir, "syntax.tsx");
    writeFileSync(syntax, `const a: number = 1;\n\nexport default <Task id=>;\n`);
    const r = await smithers(["up", syntax, "--db", db, "--json"], cache);
    assert.equal(r.code, 4);
    const { error } = JSON.parse(r.stdout);
    assert.equal(error.code, "WORKFLOW_LOAD_FAILED");
    assert.deepEqual([error.details.file, error.details.line, error.details.column], [syntax, 3, 24]);
    // A task body that throws: the run's error stack points into the .tsx.
    const task = join(dir, "task.tsx");
    writeFileSync(
      task,
      `import { Task, createSmithers } from "smithers-orchestrator";\ninterface Out { n: number }\ntype Unused = Out;\nconst { Workflow, smithers, outputs } = createSmithers({ out: { type: "object", properties: { n: { type: "number" } } } });\nfunction fail(): Out {\n  throw new Error("task boom");\n}\nexport default smithers(() => <Workflow name="t"><Task id="t" output={outputs.out}>{() => fail()}</Task></Workflow>);\n`,
    );
    const failed = await smithers(["up", task, "--db", db, "--run-id", "tb"], cache);
    assert.equal(failed.code, 1, failed.stderr);
    const inspected = await smithers(["inspect", "tb", "--db", db, "--json"], cache);
    const node = JSON.parse(inspected.stdout).nodes.find((n) => n.nodeId === "t");
    assert.equal(node.error.message, "task boom");
    assert.match(node.error.stack, /at fail \(.*task\.tsx:6:\d+\)/);
  });
});
