#!/usr/bin/env node
// The `smithers` CLI. This file is CommonJS (bin/package.json): an ES module entry makes Node
// start its ESM loader first, a few milliseconds that every command pays.
// `approve`/`deny --no-resume` and `ps` take a short path that loads only the native binding
// (src/cli/fast.cjs); everything else, and anything that path does not handle, runs the full
// CLI (src/cli/main.js).
"use strict";
// V8's compile cache (Node 22.1 and later): the CLI's modules, and the workflow's, are not
// compiled again at every start.
require("node:module").enableCompileCache?.(require("node:path").join(require("../src/loader/cache-dir.cjs").cacheRoot(), "v8"));
const { fast } = require("../src/cli/fast.cjs");

const argv = process.argv.slice(2);
const code = fast(argv);
if (code !== null) {
  process.exitCode = code;
} else {
  import("../src/cli/main.js")
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
