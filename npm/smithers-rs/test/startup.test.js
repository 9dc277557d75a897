// What `smithers up` of a .tsx and `smithers approve` that resumes it load, as whole processes
// (issue 17: the CLI starts at Node's speed; the figures are in the benchmark, bench/README.md).
// With the compiled file cached, neither loads node:crypto or fs/promises, and where the
// loader's hooks run in this thread (module.registerHooks) neither loads a compiler, Node's
// streams (the CLI prints with writeSync) or worker threads (with module.register, Node's
// loader thread is a worker, with streams of its own), nor the package modules the workflow
// does not use (builder, composites, Dagu: src/lazy.js). A preload records, at exit, the builtins
// Node loaded and the CommonJS files required; the builtins of `node -e 0` under the same
// preload are subtracted.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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
  const loaded = { builtins: process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13)), required: Object.keys(require.cache), esm };
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
/** This package's modules a workflow that uses neither the builder, composites nor Dagu does not need (src/lazy.js). */
const LAZY = /\/src\/(builder|composites|dagu\/compile|dagu\/parse|toon\/fields)\.js$/;
/** Unused by these commands; Node's loader thread (module.register) loads streams and net itself. */
const UNUSED = ["crypto", "fs/promises"];
const UNUSED_IN_ONE_THREAD = [...UNUSED, "stream", "internal/fs/streams", "internal/streams/writable", "net", "tty", "worker_threads", "internal/worker"];

for (const { path: node, syncHooks } of NODES) {
  describe(`what a start loads (Node ${node === process.execPath ? process.version : node})`, () => {
    test("up of a .tsx, then approve that resumes it: with the compiled file cached, no compiler, no node:crypto, no streams", async () => {
      const dir = mkdtempSync(join(tmpdir(), "smithers-rs-startup-"));
      writeFileSync(join(dir, "preload.cjs"), PRELOAD);
      const env = { SMITHERS_CACHE_DIR: join(dir, "cache") };
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
        if (syncHooks) {
          assert.ok(r.esm.some((u) => u.endsWith("/src/render.js")), `${name}: the preload's load hook saw the package's modules (the check below can fail)`);
          assert.deepEqual(r.esm.filter((u) => LAZY.test(u)), [], `${name} loaded modules the workflow does not use`);
        }
        assert.deepEqual(extra(r).filter((m) => unused.includes(m)), [], `${name} loaded builtins it does not use`);
      }
    });
  });
}
