// One run of a benchmark workflow in a fresh temp database, as its own process:
//   node bench/one.js <static|compute|reading> <sequence|parallel> <N>
// (`reading`: a sequence whose render reads the previous task's output, rendered after each task)
// Prints {"status","runMs","n"} as JSON on stdout. run.js uses it for whole-process wall
// time and peak RSS; it is also the target for profiling, e.g.
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/one.js compute sequence 1000
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { manyTasks, readingSequence } from "./workflows.js";

const [kind = "compute", shape = "sequence", nArg = "1000"] = process.argv.slice(2);
const n = Number(nArg);
const shapes = kind === "reading" ? ["sequence"] : ["sequence", "parallel"];
if (!["static", "compute", "reading"].includes(kind) || !shapes.includes(shape) || !(n > 0)) {
  console.error("usage: node bench/one.js <static|compute|reading> <sequence|parallel> <N>");
  process.exit(4);
}
const dir = mkdtempSync(join(tmpdir(), "smithers-bench-one-"));
try {
  const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
  const workflow = kind === "reading" ? readingSequence(n) : manyTasks(kind, shape, n);
  const t0 = performance.now();
  const result = await engine.run(workflow);
  const runMs = performance.now() - t0;
  engine.close();
  console.log(JSON.stringify({ status: result.status, runMs, n }));
  if (result.status !== "finished") process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
