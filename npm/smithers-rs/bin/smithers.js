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
require("node:module").enableCompileCache?.(require("node:path").join(require("../src/loader/cache-dir.cjs").cacheRoot(), "v8"));

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
  try {
    manifest = JSON.parse(readFileSync(join(pkg, "dist/manifest.json"), "utf8"));
  } catch {
    return null;
  }
  // Installed from a tarball, npm sets every file's mtime to one date: sizes only there.
  const installed = pkg.includes(`${require("node:path").sep}node_modules${require("node:path").sep}`);
  for (const file in manifest.inputs) {
    const [mtime, size] = manifest.inputs[file];
    const s = statSync(join(pkg, file), { throwIfNoEntry: false });
    if (s?.size !== size || (!installed && s.mtimeMs !== mtime)) return null;
  }
  return join(pkg, "dist", manifest.bundle);
}

/** The bundle; src/ if it is gone meanwhile (a build of dist/ swaps the folder). */
function loadBundle(path) {
  try {
    return require(path);
  } catch (e) {
    if (e?.code === "MODULE_NOT_FOUND" && e.message.includes(path)) return import("../src/cli/main.js");
    throw e;
  }
}
