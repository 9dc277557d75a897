// Where the time of one run goes, by native method: counts, time inside the addon, and the
// JSON.parse of its answers (plus the JSON.stringify of graphs/results done by the callers).
//   node bench/native-breakdown.js <static|compute|reading> <sequence|parallel> <N>
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { NativeEngine } from "../npm/smithers-rs/src/native.js";
import { SmithersError } from "../npm/smithers-rs/src/errors.js";
import { manyTasks, readingSequence } from "./workflows.js";

const [kind = "compute", shape = "sequence", nArg = "1000"] = process.argv.slice(2);
const n = Number(nArg);
const perMethod = new Map();
NativeEngine.prototype.call = function call(method, ...args) {
  const t0 = performance.now();
  const text = this.raw[method](...args);
  const t1 = performance.now();
  const answer = JSON.parse(text);
  const t2 = performance.now();
  let m = perMethod.get(method);
  if (!m) perMethod.set(method, (m = { calls: 0, nativeMs: 0, parseMs: 0, inBytes: 0, outBytes: 0 }));
  m.calls += 1;
  m.nativeMs += t1 - t0;
  m.parseMs += t2 - t1;
  m.outBytes += text.length;
  for (const a of args) if (typeof a === "string") m.inBytes += a.length;
  if (answer.ok) return answer.value;
  throw new SmithersError(answer.error.code, answer.error.message, answer.error.details ?? {});
};

const dir = mkdtempSync(join(tmpdir(), "smithers-bench-breakdown-"));
try {
  const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
  const t0 = performance.now();
  const result = await engine.run(kind === "reading" ? readingSequence(n) : manyTasks(kind, shape, n));
  const total = performance.now() - t0;
  engine.close();
  console.log(`${shape} of ${n} ${kind} tasks: ${result.status} in ${total.toFixed(1)} ms (${(total / n).toFixed(3)} ms/node)`);
  let nat = 0;
  let parse = 0;
  console.log("method            calls   native ms  ms/call   parse ms   in KB   out KB");
  for (const [k, m] of [...perMethod].sort((a, b) => b[1].nativeMs - a[1].nativeMs)) {
    nat += m.nativeMs;
    parse += m.parseMs;
    console.log(
      `${k.padEnd(16)} ${String(m.calls).padStart(6)} ${m.nativeMs.toFixed(1).padStart(11)} ${(m.nativeMs / m.calls).toFixed(3).padStart(8)} ${m.parseMs.toFixed(1).padStart(10)} ${(m.inBytes / 1024).toFixed(0).padStart(7)} ${(m.outBytes / 1024).toFixed(0).padStart(8)}`,
    );
  }
  console.log(`native ${nat.toFixed(1)} ms (${((100 * nat) / total).toFixed(0)}%), JSON.parse ${parse.toFixed(1)} ms, rest (JS driver, render, bodies, event loop) ${(total - nat - parse).toFixed(1)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
