import { SmithersEngine, createSmithers, Workflow, Sequence, Task, commandResultSchema } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// Per-step cost of command tasks (`true`, run by the core as a child process) in a Sequence:
//   node bench/command-tasks.js
// Dagu 1.30.2 on this machine: ~12 ms per `true` step (shared/reference/dagu.md §9).
const DB = join(mkdtempSync(join(tmpdir(), "smithers-cmd-bench-")), "bench.db");
const { smithers, outputs } = createSmithers({ cmd: commandResultSchema });
const mk = (n) => smithers(() => jsx(Workflow, { name: "c", children: jsx(Sequence, { children: Array.from({ length: n }, (_, i) => jsx(Task, { id: `t${i}`, output: outputs.cmd, command: "true" })) }) }));
for (const n of [1, 100, 300]) {
  rmSync(DB, { force: true }); rmSync(`${DB}-wal`, { force: true });
  const e = new SmithersEngine({ dbPath: DB });
  const t0 = performance.now(); const r = await e.run(mk(n)); const ms = performance.now() - t0;
  console.log(n, r.status, ms.toFixed(0), "ms", (ms / n).toFixed(2), "ms/step"); e.close();
}
