#!/usr/bin/env node
// The `smithers` CLI. This file is CommonJS (bin/package.json): an ES module entry makes Node
// start its ESM loader first, a few milliseconds that every command pays.
// `approve`/`deny --no-resume` and `ps` take a short path that loads only the native binding
// (src/cli/fast.cjs); everything else, and anything that path does not handle, runs the full
// CLI: dist/smithers.cjs, the bundle of src/ (scripts/bundle.js), while it is up to date with
// src/, else src/cli/main.js.
"use strict";
// V8's compile cache (Node 22.1 and later): the CLI's modules, and the workflow's, are not
// compiled again at every start.
const V8_CACHE = require("node:path").join(require("../src/loader/cache-dir.cjs").cacheRoot(), "v8");
require("node:module").enableCompileCache?.(V8_CACHE);

const argv = process.argv.slice(2);
// fast.cjs is read only for the commands it may handle.
const code = ["approve", "deny", "ps"].includes(argv[0]) ? require("../src/cli/fast.cjs").fast(argv) : null;
if (code !== null) {
  process.exitCode = code;
} else {
  const bundle = bundled();
  (bundle ? Promise.resolve().then(() => loadBundle(bundle)) : import("../src/cli/main.js"))
    .then(({ main }) => main(argv))
    .then(
      (code) => {
        process.exitCode = code;
      },
      (e) => {
        console.error(e?.stack ?? String(e));
        process.exitCode = 1;
      },
    );
}

/**
 * The bundled CLI, dist/smithers.cjs (scripts/bundle.js; built by `npm pack` and `npm install`),
 * or null: src/ runs when there is no bundle, when a source file it was built from changed
 * since (mtime or size differs from dist/manifest.json: a checkout whose src/ was edited runs
 * the edit; in node_modules, where npm gives every file the same mtime, the size), and with
 * SMITHERS_NO_BUNDLE=1.
 * @returns {string | null}
 */
function bundled() {
  if (process.env.SMITHERS_NO_BUNDLE) return null;
  const { readFileSync, statSync } = require("node:fs");
  const { join } = require("node:path");
  const pkg = join(__dirname, "..");
  let manifest;
  let text;
  try {
    text = readFileSync(join(pkg, "dist/manifest.json"), "utf8");
    manifest = JSON.parse(text);
  } catch {
    return null;
  }
  // Installed from a tarball, npm sets every file's mtime to one date: sizes only there.
  const installed = pkg.includes(`${require("node:path").sep}node_modules${require("node:path").sep}`);
  // `pkg + "/" + file`, not path.join: ~60 joins made Node's normalizeString hot enough for
  // V8 to optimise it on a background thread, ~10 ms of CPU per start (--trace-opt).
  const prefix = `${pkg}/`;
  for (const file in manifest.inputs) {
    const [mtime, size] = manifest.inputs[file];
    const s = statSync(prefix + file, { throwIfNoEntry: false });
    if (s?.size !== size || (!installed && s.mtimeMs !== mtime)) return null;
  }
  return { path: join(pkg, "dist", manifest.bundle), build: text };
}

/** The bundle; src/ if it is gone meanwhile (a build of dist/ swaps the folder). */
function loadBundle({ path, build }) {
  try {
    return requireWarm(path, build) ?? require(path);
  } catch (e) {
    if ((e?.code === "MODULE_NOT_FOUND" || e?.code === "ENOENT") && e.message.includes(path)) return import("../src/cli/main.js");
    throw e;
  }
}

/**
 * The bundle as `require` would load it, compiled with a V8 code cache of this command's own:
 * one written after the command ran, so it holds the functions the command compiled, not only
 * those V8 compiles eagerly (Node's compile cache is made when a file is first compiled, and a
 * start compiles most of the bundle's functions it calls lazily: parse and bytecode generation
 * were ~18 % of `up`'s CPU time over `node -e 0`, bench/README.md). The cache is per command
 * (`up` and `approve` run different code) and per build of the bundle (`build`: the text of
 * dist/manifest.json, which names every source file with its size and mtime, kept at the head
 * of the file and compared in full); V8 refuses data made by another V8 or with other flags,
 * and then a new file is written. SMITHERS_NO_WARM_CACHE=1:
 * `require` as before (Node's compile cache).
 * @param {string} path
 * @param {string} build
 */
function requireWarm(path, build) {
  const vm = require("node:vm");
  // The bundle's `import()`s (a workflow file, packages) go to Node's own loader, as from a
  // file; Node 22 knows how (USE_MAIN_CONTEXT_DEFAULT_LOADER; Node 20's breaks once the code
  // comes from a cache). Node calls that experimental, once, on stderr: not for a CLI's users.
  const loader = vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  if (process.env.SMITHERS_NO_WARM_CACHE || loader === undefined || Number(process.versions.node.split(".")[0]) < 22) return null;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (warning, ...rest) {
    if (String(warning?.message ?? warning).startsWith("vm.USE_MAIN_CONTEXT_DEFAULT_LOADER")) return;
    return emitWarning.call(this, warning, ...rest);
  };
  const Module = require("node:module");
  const { dirname, join } = require("node:path");
  const fs = require("node:fs");
  const source = fs.readFileSync(path, "utf8");
  const command = /^[a-z-]{1,20}$/.test(argv[0] ?? "") ? argv[0] : "other";
  const file = join(V8_CACHE, `bundle-${process.version}-${process.arch}-${source.length}-${command}.bin`);
  // The file: the manifest's text (its length in 4 bytes first), then V8's data. Compared as
  // bytes, natively: a JS loop over them would itself get hot enough to be optimised.
  const head = Buffer.from(`....${build}`);
  head.writeUInt32LE(head.length - 4, 0);
  let cachedData;
  try {
    const bytes = fs.readFileSync(file);
    if (bytes.length > head.length && head.equals(bytes.subarray(0, head.length))) cachedData = bytes.subarray(head.length);
  } catch {}
  const script = new vm.Script(Module.wrap(source), { filename: path, cachedData, importModuleDynamically: loader });
  if (cachedData === undefined || script.cachedDataRejected) {
    // Written when the command is over: what it compiled is in the cache then.
    process.once("exit", () => {
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        fs.mkdirSync(V8_CACHE, { recursive: true });
        // Opened first: where nothing can be written, nothing is serialised either.
        const fd = fs.openSync(tmp, "w");
        try {
          fs.writeSync(fd, head);
          fs.writeSync(fd, script.createCachedData());
        } finally {
          fs.closeSync(fd);
        }
        fs.renameSync(tmp, file);
      } catch {
        try {
          fs.unlinkSync(tmp);
        } catch {}
        // A cache that cannot be written costs the next start its compile time, nothing else.
      }
    });
  }
  const fn = script.runInThisContext();
  const m = new Module(path, module);
  m.filename = path;
  m.paths = Module._nodeModulePaths(dirname(path));
  // The instance dist/index.js (a workflow's `smithers-orchestrator`) requires.
  Module._cache[path] = m;
  try {
    fn.call(m.exports, m.exports, Module.createRequire(path), m, path, dirname(path));
  } catch (e) {
    delete Module._cache[path];
    throw e;
  }
  m.loaded = true;
  return m.exports;
}
