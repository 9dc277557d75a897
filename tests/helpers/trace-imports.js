// `node --import ./trace-imports.js …`: appends the URL of every ES module the process loads
// from a file to $SMITHERS_TRACE_IMPORTS (tests/cli-fast.test.js checks which path a CLI
// command took).
import { register } from "node:module";

if (process.env.SMITHERS_TRACE_IMPORTS) {
  register(new URL("./trace-imports-hooks.js", import.meta.url), { data: process.env.SMITHERS_TRACE_IMPORTS });
}
