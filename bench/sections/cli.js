// 3. The CLI as whole processes (wall time, CPU time, peak RSS) on a database of runs that each wait at one
// approval, next to `node -e 0` measured in the same rounds: the operator commands, and
// `smithers up` / `approve` (with resume) of a small .tsx workflow file.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { CLI, HERE, checkCpu, checkRss, count, dbSizeMB, fmt, log, measureProcess, removeDir, runJson, stats, tempDir } from "../lib.js";

const CHILD = join(HERE, "child.js");

/** Creates `n` runs parked at their gate in `db` (in a child process); returns its report. */
export function createParked(db, n) {
  const p = runJson(process.execPath, ["--expose-gc", CHILD, "create", db, String(n)]);
  return { ...p.json, peakRssMB: p.rssMB, processMs: p.wallMs };
}

/** Run ids waiting at an approval, oldest first. */
export function pendingRunIds(db, limit) {
  const engine = new SmithersEngine({ dbPath: db });
  try {
    return engine.pendingApprovals({ limit }).map((a) => a.runId);
  } finally {
    engine.close();
  }
}

export const FULL_CLI = { ...process.env, SMITHERS_CLI_FULL: "1" };

/** A small .tsx (a task, a gate, a task after it; JSON Schema outputs), and the same with zod. */
const GATE_TSX = join(HERE, "wf/gate.tsx");
const GATE_ZOD_TSX = join(HERE, "wf/gate-zod.tsx");

/**
 * `smithers up` of the .tsx (it parks at its gate, exit 3), then `smithers approve` of that run
 * in the same round (it loads the file again and resumes the run to its end), as `cli` runs
 * them; `tag` keeps run ids apart. The compile cache is `cacheDir` (filled by the warm-up
 * round); with `cold`, every `up` gets an empty one.
 */
function tsxCommands({ cli, file = GATE_TSX, db, cacheDir, tag, label, cold = false }) {
  let serial = 0;
  let current = null;
  const cache = () => ({ ...process.env, SMITHERS_CACHE_DIR: cold ? join(cacheDir, `cold-${tag}-${serial}`) : cacheDir });
  const up = {
    key: `up${tag}`,
    label: `\`smithers up\` of a small .tsx${file === GATE_ZOD_TSX ? " with zod" : ""} (parks at its gate)${label}`,
    args: () => {
      current = `${tag.toLowerCase()}-${++serial}`;
      return [cli, "up", file, "--run-id", current, "--by", "bench", "--db", db];
    },
    env: cache,
    status: 3,
  };
  if (cold) return [up];
  const approve = {
    key: `approve${tag}`,
    label: `\`smithers approve <run>\` of that run (loads the .tsx again, resumes it to its end)${label}`,
    args: () => [cli, "approve", current, "--by", "bench", "--db", db],
    env: cache,
  };
  return [up, approve];
}

/**
 * The command set; `next()` hands out a run id that is still waiting. `cacheDir`: the
 * loader's compile cache for the .tsx rows; `baseline`: another checkout whose CLI runs the
 * .tsx rows in the same rounds (before/after a change).
 */
export function commands(db, next, { big = false, cacheDir, baseline } = {}) {
  const smithers = (...args) => [CLI, ...args];
  const before = baseline && join(baseline, "npm/smithers-rs/bin/smithers.js");
  const tsx = big
    ? []
    : [
        { key: "zodFloor", label: "`node wf/import-zod.mjs` (Node, then `import \"zod\"`: the zod rows' floor)", args: () => [join(HERE, "wf/import-zod.mjs")] },
        ...tsxCommands({ cli: CLI, db, cacheDir, tag: "Tsx", label: " (compiled file cached)" }),
        ...tsxCommands({ cli: CLI, file: GATE_ZOD_TSX, db, cacheDir, tag: "TsxZod", label: " (cached)" }),
        ...tsxCommands({ cli: CLI, db, cacheDir, tag: "TsxCold", label: " with an empty compile cache", cold: true }),
        ...(before ? tsxCommands({ cli: before, db, cacheDir, tag: "TsxBaseline", label: " — baseline" }) : []),
        ...(before ? tsxCommands({ cli: before, file: GATE_ZOD_TSX, db, cacheDir, tag: "TsxZodBaseline", label: " — baseline" }) : []),
      ];
  const list = [
    { key: "nodeFloor", label: "`node -e 0` (runtime floor)", args: () => ["-e", "0"] },
    { key: "version", label: "`smithers --version` (CLI floor)", args: () => smithers("--version") },
    { key: "approveNoResume", label: "`smithers approve <run> --no-resume` (records only)", args: () => smithers("approve", next(), "--no-resume", "--by", "bench", "--db", db) },
    {
      key: "approveNoResumeFull",
      label: "the same through the full CLI (`SMITHERS_CLI_FULL=1`, no short path)",
      args: () => smithers("approve", next(), "--no-resume", "--by", "bench", "--db", db),
      env: FULL_CLI,
    },
    { key: "approveResume", label: "`smithers approve <run>` (resumes: gate + downstream task, finished)", args: () => smithers("approve", next(), "--by", "bench", "--db", db) },
    { key: "ps", label: "`smithers ps` (default: 50 newest)", args: () => smithers("ps", "--db", db) },
    { key: "psWaiting50", label: "`smithers ps --status waiting-approval --limit 50 --json`", args: () => smithers("ps", "--status", "waiting-approval", "--limit", "50", "--json", "--db", db) },
    { key: "psAll", label: "`smithers ps --status waiting-approval --limit 1000 --json`", args: () => smithers("ps", "--status", "waiting-approval", "--limit", "1000", "--json", "--db", db), rounds: 5 },
    ...tsx,
  ];
  // On the big databases: the operator commands only.
  return big ? list.filter((c) => ["nodeFloor", "approveNoResume", "approveNoResumeFull", "ps", "psWaiting50"].includes(c.key)) : list;
}

/**
 * Interleaved rounds (drift on a noisy machine hits every command alike); round 0 warms the
 * page cache and is not counted.
 */
export function rounds(list, total, scratch, node = process.execPath) {
  const samples = Object.fromEntries(list.map((c) => [c.key, []]));
  for (let round = 0; round <= total; round++) {
    for (const c of list) {
      if (round > (c.rounds ?? total)) continue;
      const env = typeof c.env === "function" ? c.env() : c.env;
      const p = measureProcess(node, c.args(), { env, cwd: scratch, cpu: true });
      if (p.status !== (c.status ?? 0)) throw new Error(`${c.label} exited ${p.status}: ${p.stderr || p.stdout}`);
      if (round > 0) samples[c.key].push(p);
    }
  }
  return list.map((c) => ({
    key: c.key,
    label: c.label,
    // Per round, in order: a difference to the floor can be taken round by round.
    walls: samples[c.key].map((p) => p.wallMs),
    wall: stats(samples[c.key].map((p) => p.wallMs)),
    // CPU time (user + system) of the process, per round; null without Python 3 (checkCpu).
    cpus: samples[c.key][0]?.cpuMs == null ? null : samples[c.key].map((p) => p.cpuMs),
    cpu: samples[c.key][0]?.cpuMs == null ? null : stats(samples[c.key].map((p) => p.cpuMs)),
    rss: samples[c.key][0]?.rssMB == null ? null : stats(samples[c.key].map((p) => p.rssMB)),
  }));
}

/**
 * `node` (default: the Node running the suite) runs every process of the section, the floor
 * included: `--node=PATH` measures start-up on another Node, e.g. one with module.registerHooks
 * (22.15+) when the suite runs on Node 20.
 */
export async function run({ baseline, node = process.execPath, rounds: ROUNDS = 30 } = {}) {
  const RUNS = 1000;
  const dir = tempDir("cli");
  const db = join(dir, "smithers.db");
  try {
    log(`cli: creating ${count(RUNS)} runs, each waiting at one approval`);
    const created = createParked(db, RUNS);
    const dbMB = dbSizeMB(db);
    log(`cli: ${count(RUNS)} runs parked in ${fmt(created.totalMs)} ms (p50 ${fmt(created.perRun.p50)} ms/run), db ${fmt(dbMB)} MB`);
    if (!checkCpu()) log("cli: bench/rusage.py (Python 3) not usable: no CPU time; wall from the suite");
    if (!checkCpu() && !checkRss()) log("cli: /usr/bin/time (GNU time) not usable: peak RSS unavailable (Debian package `time` provides it)");
    const ids = pendingRunIds(db, RUNS);
    let i = 0;
    const next = () => {
      if (i >= ids.length) throw new Error("cli: ran out of waiting runs");
      return ids[i++];
    };
    const nodeVersion = execFileSync(node, ["--version"], { encoding: "utf8" }).trim();
    log(`cli: processes run on Node ${nodeVersion} (${node})`);
    const rows = rounds(commands(db, next, { cacheDir: join(dir, "cache"), baseline }), ROUNDS, dir, node);
    const check = new SmithersEngine({ dbPath: db });
    const waiting = check.listRuns({ status: "waiting-approval", limit: 10_000 }).length;
    const finished = check.listRuns({ status: "finished", limit: 10_000 }).length;
    check.close();
    for (const r of rows) log(`cli: ${r.label}: wall median ${fmt(r.wall.median)} ms, CPU ${r.cpu ? `${fmt(r.cpu.median)} ms` : "n/a"}, RSS ${r.rss ? `${fmt(r.rss.median)} MB` : "n/a"}`);
    return { runs: RUNS, rounds: ROUNDS, create: created, dbMB, rows, after: { waiting, finished }, rssAvailable: rows[0]?.rss != null, cpuAvailable: rows[0]?.cpu != null, baseline: baseline ?? null, node: nodeVersion };
  } finally {
    removeDir(dir);
  }
}
