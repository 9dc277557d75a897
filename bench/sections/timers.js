// 11. Many waiting gates with deadlines (issue 15): n runs each waiting at a gate that denies
// itself after an hour (n = 1,000 and 10,000; --full adds 100,000). For each n, on a fresh
// database: the time to create them, an engine over them (memory, the first page of 50 pending
// approvals and of `listRuns`: what `ps` and the inbox show first), then a process two hours
// later by the test clock fires every deadline (`fireDueTimers`, batches of 100, runs not
// resumed): firing cost per timer and that process's memory.
import { join } from "node:path";
import { HERE, count, dbSizeMB, fmt, log, removeDir, runJson, tempDir } from "../lib.js";

const CHILD = join(HERE, "child.js");
const LATER = { ...process.env, SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(2 * 3_600_000) };

export async function run({ full }) {
  const sizes = full ? [1000, 10_000, 100_000] : [1000, 10_000];
  const rows = [];
  for (const n of sizes) {
    const dir = tempDir(`timers-${n}`);
    const db = join(dir, "smithers.db");
    try {
      log(`timers: creating ${count(n)} runs waiting at a gate with a 1 h deadline`);
      const c = runJson(process.execPath, ["--expose-gc", CHILD, "create-deadline", db, String(n)]);
      const create = { ...c.json, peakRssMB: c.rssMB };
      const h = runJson(process.execPath, ["--expose-gc", CHILD, "hold", db, String(n)]);
      const hold = { ...h.json, peakRssMB: h.rssMB };
      log(`timers: ${count(n)} pending with deadlines: page of 50 first ${fmt(hold.pageFirst.p50)} ms, last by cursor ${fmt(hold.pageKeysetLast?.p50)} ms, last by offset ${fmt(hold.pageLast.p50)} ms, listRuns page ${fmt(hold.runsPage.p50)} ms, engine RSS ${fmt(hold.after.rssMB)} MB`);
      const f = runJson(process.execPath, ["--expose-gc", CHILD, "fire-all", db, String(n)], { env: LATER });
      const fire = { ...f.json, peakRssMB: f.rssMB };
      if (fire.fired !== n || fire.left !== null) throw new Error(`timers: fired ${fire.fired} of ${n}, next due ${fire.left}`);
      log(`timers: fired ${count(n)} deadlines in ${fmt(fire.totalMs / 1000)} s: ${fmt(fire.perTimer.p50)} ms/timer p50 (p99 ${fmt(fire.perTimer.p99)}), RSS ${fmt(fire.before.rssMB)} -> ${fmt(fire.after.rssMB)} MB (peak ${fmt(fire.peakRssMB)})`);
      rows.push({ n, create, hold, fire, dbMB: dbSizeMB(db) });
    } finally {
      removeDir(dir);
    }
  }
  return { sizes, rows };
}
