// 7. A Dagu DAG: a chain of N command steps (`true`), ms per step, next to Dagu running the
// same file. Per-step overhead as /work/shared/peers/dagu measured it:
// (median wall of the 100-step chain − median of the 1-step one) / 99, so that process
// start-up cancels out. Ours: `smithers up chain.yaml` as a whole process, and
// `engine.run` in-process. Dagu: `dagu start chain.yaml` (its CLI, no server), the binary
// npm serves in @dagu-org/dagu-linux-x64 (1.30.2), fetched by bench/peers-install.js into a
// scratch folder outside the repository (the peers section uses the same one); without it,
// the figure measured on this machine earlier is quoted.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SmithersEngine, loadWorkflow } from "../../npm/smithers-rs/src/index.js";
import { CLI, fmt, log, measureProcess, removeDir, stats, tempDir } from "../lib.js";
import { installDagu } from "../peers-install.js";

/** Dagu 1.30.2's CLI on this machine (shared/peers/dagu, two runs): ms per `true` step. */
export const DAGU_REFERENCE = { cliMsPerStep: [11.9, 12.7], source: "/work/shared/reference/dagu.md §9 (Dagu 1.30.2, `dagu start`, 2-core host)" };

const LENGTHS = [1, 100];

/** The chain as Dagu writes it (and as we read it): type graph, each step after the one before. */
function chainSpec(n) {
  const lines = ["type: graph", "steps:"];
  for (let i = 0; i < n; i++) {
    lines.push(`  - name: s${i}`, '    command: "true"');
    if (i) lines.push(`    depends: [s${i - 1}]`);
  }
  return `${lines.join("\n")}\n`;
}

/** Per-step overhead from walls of the chains: (median(100) − median(1)) / 99. */
function perStep(walls) {
  const [a, b] = LENGTHS;
  return (stats(walls[b]).median - stats(walls[a]).median) / (b - a);
}

export async function run({ full }) {
  const reps = full ? 10 : 5;
  const dir = tempDir("dagu");
  const files = Object.fromEntries(LENGTHS.map((n) => [n, join(dir, `chain${n}.yaml`)]));
  for (const n of LENGTHS) writeFileSync(files[n], chainSpec(n));
  try {
    const cli = Object.fromEntries(LENGTHS.map((n) => [n, []]));
    const inproc = Object.fromEntries(LENGTHS.map((n) => [n, []]));
    const dagu = Object.fromEntries(LENGTHS.map((n) => [n, []]));
    const installed = installDagu({ log });
    if (!installed.ok) log(`dagu: not available (${installed.reason}); quoting the reference figure`);
    const daguHome = join(dir, "dagu-home");
    // Interleaved: load that comes and goes hits every figure alike. Round 0 warms up.
    for (let round = 0; round <= reps; round++) {
      for (const n of LENGTHS) {
        const db = join(dir, `cli-${round}-${n}.db`);
        const p = measureProcess(process.execPath, [CLI, "up", files[n], "--db", db, "--json"], { cwd: dir });
        if (p.status !== 0) throw new Error(`smithers up chain${n}.yaml exited ${p.status}: ${p.stderr || p.stdout}`);
        if (round > 0) cli[n].push(p.wallMs);

        const engine = new SmithersEngine({ dbPath: join(dir, `inproc-${round}-${n}.db`) });
        const t0 = performance.now();
        const result = await engine.run(await loadWorkflow(files[n]));
        const ms = performance.now() - t0;
        engine.close();
        if (result.status !== "finished") throw new Error(`chain${n}.yaml in-process: ${result.status}`);
        if (round > 0) inproc[n].push(ms);

        if (installed.ok) {
          const d = measureProcess(installed.bin, ["start", files[n]], { cwd: dir, env: { ...process.env, DAGU_HOME: daguHome }, timeoutMs: 300_000 });
          if (d.status !== 0) throw new Error(`dagu start chain${n}.yaml exited ${d.status}: ${d.stderr.slice(-500)}`);
          if (round > 0) dagu[n].push(d.wallMs);
        }
      }
    }
    const out = {
      reps,
      lengths: LENGTHS,
      cli: { walls: Object.fromEntries(LENGTHS.map((n) => [n, stats(cli[n])])), perStepMs: perStep(cli) },
      inproc: { walls: Object.fromEntries(LENGTHS.map((n) => [n, stats(inproc[n])])), perStepMs: perStep(inproc) },
      dagu: installed.ok
        ? { available: true, version: installed.version, walls: Object.fromEntries(LENGTHS.map((n) => [n, stats(dagu[n])])), perStepMs: perStep(dagu) }
        : { available: false, reason: installed.reason },
      reference: DAGU_REFERENCE,
    };
    log(`dagu: ours ${fmt(out.cli.perStepMs)} ms/step (CLI), ${fmt(out.inproc.perStepMs)} ms/step (in-process); Dagu ${out.dagu.available ? `${fmt(out.dagu.perStepMs)} ms/step (${out.dagu.version})` : `n/a, reference ${DAGU_REFERENCE.cliMsPerStep.join("–")} ms/step`}`);
    return out;
  } finally {
    removeDir(dir);
  }
}
