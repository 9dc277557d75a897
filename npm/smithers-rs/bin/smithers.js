#!/usr/bin/env node
// The `smithers` CLI. This file is CommonJS (bin/package.json): an ES module entry makes Node
// start its ESM loader first, a few milliseconds that every command pays.
// `approve`/`deny --no-resume` and `ps` take a short path that loads only the native binding
// (src/cli/fast.cjs); everything else, and anything that path does not handle, runs the full
// CLI (src/cli/main.js).
"use strict";
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
