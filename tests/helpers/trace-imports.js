// `node --import ./trace-imports.js …`: appends the URL of every ES module the process loads
// from a file to $SMITHERS_TRACE_IMPORTS, and at exit the path of every CommonJS file it
// required (the CLI's bundle, dist/smithers.cjs, among them): tests/cli-fast.test.js checks
// which path a CLI command took.
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";

const out = process.env.SMITHERS_TRACE_IMPORTS;
if (out) {
  register(new URL("./trace-imports-hooks.js", import.meta.url), { data: out });
  const { cache } = createRequire(import.meta.url);
  process.on("exit", () => appendFileSync(out, Object.keys(cache).map((f) => `${f}\n`).join("")));
}
