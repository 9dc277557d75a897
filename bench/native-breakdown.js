// Where the time of one run goes, by native method: counts and time inside the binding
// (the core plus napi's conversion of the typed arguments and results), and the bytes of the
// JSON text that crosses (graphs, task results; JSON.stringify is done by the callers).
//   node bench/native-breakdown.js <static|compute> <sequence|parallel> <N>
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { NativeEngine } from "../npm/smithers-rs/src/native.js";
import { manyTasks } from "./workflows.js";

const [kind = "compute", shape = "sequence", nArg = "1000"] = process.argv.slice(2);
const n = Number(nArg);
const perMethod = new Map();
for (const method of Object.getOwnPropertyNames(NativeEngine.prototype)) {
  if (method === "constructor") continue;
  const typed = NativeEngine.prototype[method];
  NativeEngine.prototype[method] = function timed(...args) {
    const t0 = performance.now();
    try {
      return typed.apply(this, args);
    } finally {
      let m = perMethod.get(method);
      if (!m) perMethod.set(method, (m = { calls: 0, nativeMs: 0, inBytes: 0 }));
      m.calls += 1;
      m.nativeMs += performance.now() - t0;
      for (const a of args) if (typeof a === "string") m.inBytes += a.length;
    }
  };
}

const dir = mkdtempSync(join(tmpdir(), "smithers-bench-breakdown-"));
try {
  const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
  const t0 = performance.now();
  const result = await engine.run(manyTasks(kind, shape, n));
  const total = performance.now() - t0;
  engine.close();
  console.log(`${shape} of ${n} ${kind} tasks: ${result.status} in ${total.toFixed(1)} ms (${(total / n).toFixed(3)} ms/node)`);
  let nat = 0;
  console.log("method            calls   native ms  ms/call  JSON in KB");
  for (const [k, m] of [...perMethod].sort((a, b) => b[1].nativeMs - a[1].nativeMs)) {
    nat += m.nativeMs;
    console.log(
      `${k.padEnd(16)} ${String(m.calls).padStart(6)} ${m.nativeMs.toFixed(1).padStart(11)} ${(m.nativeMs / m.calls).toFixed(3).padStart(8)} ${(m.inBytes / 1024).toFixed(0).padStart(11)}`,
    );
  }
  console.log(`native ${nat.toFixed(1)} ms (${((100 * nat) / total).toFixed(0)}%), rest (JS driver, render, bodies, event loop) ${(total - nat).toFixed(1)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
