// 4. Many waiting runs: n runs each waiting at one approval (n = 1,000 and 10,000; --full adds
// 100,000). For each n, on a fresh database: the time to create them, the database size, an
// engine process over them (memory, a page of 50 pending approvals), the operator CLI on the
// larger databases, and the time to approve all of them (each approve resumes its run to the end).
import { join } from "node:path";
import { HERE, count, dbSizeMB, fmt, log, removeDir, runJson, tempDir } from "../lib.js";
import { commands, createParked, pendingRunIds, rounds } from "./cli.js";

const CHILD = join(HERE, "child.js");

export async function run({ full }) {
  const sizes = full ? [1000, 10_000, 100_000] : [1000, 10_000];
  const out = [];
  for (const n of sizes) {
    const dir = tempDir(`waiting-${n}`);
    const db = join(dir, "smithers.db");
    try {
      log(`waiting: creating ${count(n)} runs waiting at an approval`);
      const create = createParked(db, n);
      const dbMB = dbSizeMB(db);
      log(`waiting: ${count(n)} created in ${fmt(create.totalMs / 1000)} s (p50 ${fmt(create.perRun.p50)} ms/run), db ${fmt(dbMB)} MB, creating process RSS ${fmt(create.after.rssMB)} MB`);

      const h = runJson(process.execPath, ["--expose-gc", CHILD, "hold", db, String(n)]);
      const hold = { ...h.json, peakRssMB: h.rssMB };
      log(`waiting: engine over ${count(n)} pending: RSS ${fmt(hold.after.rssMB)} MB (peak ${fmt(hold.peakRssMB)}), page of 50: first ${fmt(hold.pageFirst.median)} ms, last ${fmt(hold.pageLast.median)} ms`);

      let cli = null;
      if (n >= 10_000) {
        const ids = pendingRunIds(db, 100);
        let i = 0;
        const next = () => ids[i++];
        cli = rounds(commands(db, next, { big: true }), 10, dir);
        for (const r of cli) log(`waiting: cli on ${count(n)}: ${r.label}: wall median ${fmt(r.wall.median)} ms, RSS ${r.rss ? `${fmt(r.rss.median)} MB` : "n/a"}`);
      }

      log(`waiting: approving all ${count(n)} (each resumes its run to the end)`);
      const a = runJson(process.execPath, ["--expose-gc", CHILD, "approve-all", db, "resume"]);
      const approveAll = { ...a.json, peakRssMB: a.rssMB, processMs: a.wallMs };
      if (approveAll.left !== 0) throw new Error(`waiting: ${approveAll.left} approvals still pending after approving all`);
      log(`waiting: approved ${count(approveAll.n)} in ${fmt(approveAll.totalMs / 1000)} s (record p50 ${fmt(approveAll.record.p50)} ms, to finished p50 ${fmt(approveAll.done.p50)} ms)`);
      out.push({ n, create, dbMB, dbKBPerRun: (dbMB * 1024) / n, hold, cli, approveAll, dbMBAfter: dbSizeMB(db) });
    } finally {
      removeDir(dir);
    }
  }
  return { sizes, rows: out };
}
