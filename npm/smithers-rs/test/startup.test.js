// What `smithers up` of a .tsx and `smithers approve` that resumes it load, as whole processes
// (issue 17: the CLI starts at Node's speed; the figures are in the benchmark, bench/README.md).
// With the compiled file cached, neither loads node:crypto or fs/promises, and where the
// loader's hooks run in this thread (module.registerHooks) neither loads a compiler, Node's
// streams (the CLI prints with writeSync) or worker threads (with module.register, Node's
// loader thread is a worker, with streams of its own), nor the package modules the workflow
// does not use (builder, composites, Dagu: src/lazy.js). Both as the CLI runs from its bundle
// (dist/smithers.cjs, scripts/bundle.js: built here first if src/ changed since) and from src/
// (SMITHERS_NO_BUNDLE=1). A preload records, at exit, the builtins Node loaded, the CommonJS
// files required, and which modules of src/ the bundle ran; the builtins of `node -e 0` under
// the same preload are subtracted.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";

const BIN = fileURLToPath(new URL("../bin/smithers.js", import.meta.url));
const WORKFLOW = fileURLToPath(new URL("../../../bench/wf/gate.tsx", import.meta.url));

const hasRegisterHooks = (version) => {
  const [major, minor] = version.replace(/^v/, "").split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 5) || (major === 22 && minor >= 15);
};

/** This process's Node, and the one with registerHooks named by $SMITHERS_TEST_NODE22 (.ci/run). */
const NODES = [{ path: process.execPath, syncHooks: hasRegisterHooks(process.version) }];
if (!NODES[0].syncHooks && process.env.SMITHERS_TEST_NODE22) NODES.push({ path: process.env.SMITHERS_TEST_NODE22, syncHooks: true });

const PRELOAD = `const esm = [];
// Where hooks run in this thread, a load hook that sees every ES module loaded from a file.
require("node:module").registerHooks?.({ load(url, context, next) {
  if (url.startsWith("file:")) esm.push(url);
  return next(url, context);
} });
process.on("exit", () => {
  const loaded = { builtins: process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13)), required: Object.keys(require.cache), esm,
    ran: globalThis[Symbol.for("smithers-rs.bundle.ran")] ?? null };
  require("node:fs").writeFileSync(process.env.STARTUP_TEST_OUT, JSON.stringify(loaded));
});
`;

/** What a process loaded: builtins and required files. */
function loadedBy(node, args, dir, env = {}) {
  const out = join(dir, `loaded-${Math.random().toString(36).slice(2)}.json`);
  return new Promise((done, fail) =>
    execFile(node, ["--require", join(dir, "preload.cjs"), ...args], { cwd: dir, env: { ...process.env, ...env, STARTUP_TEST_OUT: out } }, (e, stdout, stderr) => {
      if (e && e.code !== 3) return fail(new Error(`${args.join(" ")}: ${e.code}: ${stderr}`));
      done({ code: e ? e.code : 0, stdout, ...JSON.parse(readFileSync(out, "utf8")) });
    }),
  );
}

const COMPILERS = /node_modules\/(oxc-transform|@oxc-transform|@mdx-js)\//;
/**
 * This package's modules a workflow that uses neither the builder, composites nor Dagu does not
 * need (src/lazy.js), and the tracer, loaded only when OTEL_EXPORTER_OTLP_* configure traces.
 */
const LAZY = /(^|\/src\/)(builder|composites|dagu\/compile|dagu\/parse|toon\/fields|telemetry\/trace)\.js$/;
const PKG = fileURLToPath(new URL("..", import.meta.url));
const BUNDLE = join(PKG, "dist/smithers.cjs");

/** Builds dist/ unless it is there and every source file it lists is unchanged (as bin/smithers.js checks). */
async function freshBundle() {
  try {
    const { inputs } = JSON.parse(readFileSync(join(PKG, "dist/manifest.json"), "utf8"));
    if (Object.entries(inputs).every(([f, [mtime, size]]) => {
      const st = statSync(join(PKG, f), { throwIfNoEntry: false });
      return st?.mtimeMs === mtime && st.size === size;
    })) return;
  } catch {}
  const { bundle } = await import("../scripts/bundle.js");
  await bundle({ quiet: true });
}
/** Unused by these commands; Node's loader thread (module.register) loads streams and net itself. */
const UNUSED = ["crypto", "fs/promises"];
const UNUSED_IN_ONE_THREAD = [...UNUSED, "stream", "internal/fs/streams", "internal/streams/writable", "net", "tty", "worker_threads", "internal/worker"];

for (const { path: node, syncHooks } of NODES) for (const fromBundle of [true, false]) {
  describe(`what a start loads (Node ${node === process.execPath ? process.version : node}, ${fromBundle ? "the bundle" : "src/"})`, () => {
    test("up of a .tsx, then approve that resumes it: with the compiled file cached, no compiler, no node:crypto, no streams", async () => {
      if (fromBundle) await freshBundle();
      const dir = mkdtempSync(join(tmpdir(), "smithers-rs-startup-"));
      writeFileSync(join(dir, "preload.cjs"), PRELOAD);
      const env = { SMITHERS_CACHE_DIR: join(dir, "cache"), SMITHERS_NO_BUNDLE: fromBundle ? "" : "1" };
      const floor = new Set((await loadedBy(node, ["-e", "0"], dir)).builtins);
      const extra = (r) => r.builtins.filter((m) => !floor.has(m));

      const cold = await loadedBy(node, [BIN, "up", WORKFLOW, "--run-id", "cold", "--db", "s.db"], dir, env);
      assert.equal(cold.code, 3, cold.stdout);
      // With module.register the hooks, and so the compilers, run on Node's loader thread, which
      // the preload does not see: the compiler checks are for registerHooks.
      if (syncHooks) assert.ok(cold.required.some((f) => COMPILERS.test(f)), "an empty cache compiles (the check below can fail)");

      const up = await loadedBy(node, [BIN, "up", WORKFLOW, "--run-id", "warm", "--db", "s.db"], dir, env);
      assert.equal(up.code, 3, up.stdout);
      assert.match(up.stdout, /^run warm: waiting-approval$/m);
      const approve = await loadedBy(node, [BIN, "approve", "warm", "--db", "s.db"], dir, env);
      assert.equal(approve.code, 0, approve.stdout);
      assert.match(approve.stdout, /^run warm: finished$/m);

      const unused = syncHooks ? UNUSED_IN_ONE_THREAD : UNUSED;
      for (const [name, r] of [["up", up], ["approve", approve]]) {
        if (syncHooks) assert.deepEqual(r.required.filter((f) => COMPILERS.test(f)), [], `${name} loaded a compiler`);
        if (fromBundle) {
          // One file for the package's modules; the workflow's import of it is dist/index.js,
          // which re-exports the bundle's instances.
          assert.ok(r.required.includes(BUNDLE), `${name} ran from the bundle`);
          assert.deepEqual(r.required.filter((f) => f.startsWith(join(PKG, "src")) && f.endsWith(".js")), [], `${name} required ES modules of src/`);
          assert.deepEqual(r.esm.filter((u) => u.includes("/smithers-rs/src/") && u.endsWith(".js")), [], `${name} imported ES modules of src/`);
          if (syncHooks) assert.ok(r.esm.some((u) => u.endsWith("/smithers-rs/dist/index.js")), `${name}: the workflow's smithers-orchestrator is dist/index.js`);
          assert.ok(r.ran.includes("render.js") && r.ran.includes("index.js"), `${name}: the bundle records what ran (the check below can fail)`);
          assert.deepEqual(r.ran.filter((m) => LAZY.test(m)), [], `${name} ran modules the workflow does not use`);
        } else if (syncHooks) {
          assert.equal(r.ran, null, `${name} ran from src/`);
          assert.ok(r.esm.some((u) => u.endsWith("/src/render.js")), `${name}: the preload's load hook saw the package's modules (the check below can fail)`);
          assert.deepEqual(r.esm.filter((u) => LAZY.test(u)), [], `${name} loaded modules the workflow does not use`);
        }
        assert.deepEqual(extra(r).filter((m) => unused.includes(m)), [], `${name} loaded builtins it does not use`);
      }
    });
  });
}

// The bundle's own V8 code cache (bin/smithers.js requireWarm; Node 22 and later): written
// once per command after it ran, then read, never written again while the build is the same;
// a damaged or foreign file is a miss that is written again, and the command's output is the
// same either way.
for (const { path: node } of NODES.filter((n) => Number(/^v?(\d+)/.exec(n.path === process.execPath ? process.version : "v22")[1]) >= 22)) {
  test(`the bundle's warm code cache: written after a command, then used; a damaged one is replaced (Node ${node})`, async () => {
    await freshBundle();
    const dir = mkdtempSync(join(tmpdir(), "smithers-rs-warm-"));
    writeFileSync(join(dir, "preload.cjs"), PRELOAD);
    const env = { SMITHERS_CACHE_DIR: join(dir, "cache") };
    const v8 = join(dir, "cache", "v8");
    const caches = () => readdirSync(v8).filter((f) => f.startsWith("bundle-")).sort();
    const up = (id) => loadedBy(node, [BIN, "up", WORKFLOW, "--run-id", id, "--db", "s.db"], dir, env);
    const first = await up("w1");
    assert.equal(first.code, 3, first.stdout);
    const [upCache] = caches();
    assert.match(upCache, /^bundle-v\d+\.\d+\.\d+-\w+-\d+-up\.bin$/);
    const written = statSync(join(v8, upCache));
    const second = await up("w2");
    assert.equal(second.stdout, first.stdout.replaceAll("w1", "w2"));
    assert.ok(second.required.includes(BUNDLE));
    assert.equal(statSync(join(v8, upCache)).mtimeMs, written.mtimeMs, "a cache that was used is not written again");
    const approve = await loadedBy(node, [BIN, "approve", "w2", "--db", "s.db"], dir, env);
    assert.match(approve.stdout, /^run w2: finished$/m);
    assert.deepEqual(caches(), [upCache.replace(/-up\.bin$/, "-approve.bin"), upCache]);
    // Another build's (or a damaged) file: not used, written again, same output.
    writeFileSync(join(v8, upCache), "not a cache");
    const third = await up("w3");
    assert.equal(third.stdout, first.stdout.replaceAll("w1", "w3"));
    assert.ok(statSync(join(v8, upCache)).size > 1000, "the damaged cache was written again");
  });
}
