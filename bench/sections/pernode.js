// 1. Per-node overhead: a <Sequence> of N static tasks, of N compute tasks, and a <Parallel>
// of N compute tasks, in-process (SmithersEngine.run on a fresh temp database each repetition),
// then as whole processes (bench/one.js: Node start-up, module load, one run, exit).
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { HERE, fmt, log, measureProcess, removeDir, stats, tempDir } from "../lib.js";
import { manyTasks, readingSequence } from "../workflows.js";

const ONE = join(HERE, "one.js");

export const CASES = [
  { kind: "static", shape: "sequence", label: "Sequence, static tasks" },
  { kind: "compute", shape: "sequence", label: "Sequence, compute tasks" },
  { kind: "compute", shape: "parallel", label: "Parallel, compute tasks" },
];

/** The sequence whose render reads the previous task's output: a render after every task. */
export const READING = { kind: "reading", shape: "sequence", label: "Sequence reading the previous output" };
const READING_SIZES = [500, 1000, 2000];

/** One run on a fresh database: its wall time; `cpu`, when given, gets the process CPU time it took. */
async function runOnce(kind, shape, n, cpu) {
  const dir = tempDir("pernode");
  try {
    const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
    const workflow = kind === "reading" ? readingSequence(n) : manyTasks(kind, shape, n);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const result = await engine.run(workflow);
    const ms = performance.now() - t0;
    const used = process.cpuUsage(c0);
    cpu?.push((used.user + used.system) / 1000);
    engine.close();
    if (result.status !== "finished") throw new Error(`${shape}/${kind} N=${n}: run ended ${result.status} ${JSON.stringify(result.error ?? {})}`);
    return ms;
  } finally {
    removeDir(dir);
  }
}

export async function run({ full }) {
  const sizes = full ? [10, 100, 1000, 10000] : [10, 100, 1000];
  const reps = { 10: 15, 100: 10, 1000: 7, 10000: 3 };
  log("per-node: warm-up");
  for (const c of CASES) await runOnce(c.kind, c.shape, 100);
  const rows = [];
  for (const c of CASES) {
    for (const n of sizes) {
      const times = [];
      for (let i = 0; i < reps[n]; i++) times.push(await runOnce(c.kind, c.shape, n));
      const total = stats(times);
      const perNode = stats(times.map((t) => t / n));
      rows.push({ ...c, n, total, perNode });
      log(`per-node: ${c.label} N=${n}: ${fmt(perNode.median)} ms/node (median of ${reps[n]}, total ${fmt(total.median)} ms)`);
    }
  }
  // Growth: per-node median at N against N/10. "Roughly linear" while it stays within 1.5x.
  const growth = CASES.map((c) => {
    const at = (n) => rows.find((r) => r.kind === c.kind && r.shape === c.shape && r.n === n);
    const steps = [];
    for (const n of sizes.slice(1)) {
      const a = at(n / 10);
      const b = at(n);
      const perNodeRatio = b.perNode.median / a.perNode.median;
      steps.push({ from: n / 10, to: n, perNodeRatio, marginalMs: (b.total.median - a.total.median) / (n - n / 10), linear: perNodeRatio < 1.5 });
    }
    return { ...c, steps };
  });
  for (const g of growth) {
    for (const s of g.steps) {
      log(`per-node: ${g.label} N=${s.from}->${s.to}: ms/node ratio ${s.perNodeRatio.toFixed(2)} (${s.linear ? "linear or better" : "GROWS"}), marginal ${fmt(s.marginalMs)} ms/added node`);
    }
  }
  // Re-renders: N renders of N nodes each. Linear growth doubles the total with N.
  const reading = [];
  for (const n of READING_SIZES) {
    const times = [];
    const cpus = [];
    for (let i = 0; i < (n <= 500 ? 3 : 1); i++) times.push(await runOnce(READING.kind, READING.shape, n, cpus));
    const total = stats(times);
    // CPU time of this process (the run is in-process): what a loaded machine does not inflate.
    const cpu = stats(cpus);
    reading.push({ ...READING, n, total, cpu, perNode: stats(times.map((t) => t / n)) });
    log(`per-node: ${READING.label} N=${n}: total ${fmt(total.median)} ms, CPU ${fmt(cpu.median)} ms (${fmt(total.median / n)} ms/node)`);
  }
  const procN = full ? [100, 1000, 10000] : [100, 1000];
  const processes = [];
  for (const c of CASES) {
    for (const n of procN) {
      const runs = [];
      const k = n >= 10000 ? 1 : 3;
      for (let i = 0; i < k; i++) {
        const p = measureProcess(process.execPath, [ONE, c.kind, c.shape, String(n)]);
        if (p.status !== 0) throw new Error(`bench/one.js ${c.kind} ${c.shape} ${n} exited ${p.status}: ${p.stderr}`);
        runs.push({ ...p, engineMs: JSON.parse(p.stdout).runMs });
      }
      const row = {
        ...c,
        n,
        wall: stats(runs.map((r) => r.wallMs)),
        engine: stats(runs.map((r) => r.engineMs)),
        rss: runs[0].rssMB == null ? null : stats(runs.map((r) => r.rssMB)),
      };
      processes.push(row);
      log(`per-node: process ${c.label} N=${n}: wall ${fmt(row.wall.median)} ms, peak RSS ${row.rss ? `${fmt(row.rss.median)} MB` : "n/a"}`);
    }
  }
  return { sizes, reps, rows, growth, reading, processes };
}
