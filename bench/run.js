#!/usr/bin/env node
// smithers-rs benchmark suite.  `npm run bench` (quick, a few minutes) or
// `npm run bench -- --full` (adds N = 10000).
//
// 1. per-node overhead: <Sequence> of N static / compute tasks, <Parallel> of N compute tasks,
//    in-process with SmithersEngine.run on a fresh temp database each repetition; plus one
//    whole process per shape at the largest N (wall and peak RSS).
// 2. in-process approve -> downstream task started (and run finished).
// 3. the CLI as whole processes (wall, peak RSS) on a database holding 1000 runs that each
//    wait at one approval, next to `node -e 0`.
// 4. a table on stdout, BENCHMARKS.md at the repo root, raw JSON in bench/results/.
// 5. budgets (issue 6): PASS/MISS, reported only; the exit code is 0 regardless.
//
// Options: --full, --no-write (do not touch BENCHMARKS.md), --only=pernode,approve,cli
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SmithersEngine, engineBuild, engineVersion } from "../npm/smithers-rs/src/index.js";
import { PEER, PEER_NAME, PEER_SOURCE } from "./peer-reference.js";
import { approvalThenTask, manyTasks } from "./workflows.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");
const CLI = join(ROOT, "npm/smithers-rs/bin/smithers.js");
const ONE = join(HERE, "one.js");
const APPROVAL_WF = join(HERE, "wf/approval.js");

const argv = process.argv.slice(2);
const FULL = argv.includes("--full");
const WRITE = !argv.includes("--no-write");
const onlyArg = argv.find((a) => a.startsWith("--only="));
const ONLY = onlyArg ? new Set(onlyArg.slice("--only=".length).split(",")) : null;
const want = (section) => ONLY === null || ONLY.has(section);

const log = (msg) => process.stderr.write(`[bench ${elapsed()}] ${msg}\n`);
const T_START = performance.now();
const elapsed = () => `${((performance.now() - T_START) / 1000).toFixed(1).padStart(6)}s`;

// ---------------------------------------------------------------- stats

function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const pct = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { n: s.length, min: s[0], median, max: s[s.length - 1], p50: pct(50), p90: pct(90), p99: pct(99) };
}

const fmt = (v, digits) => {
  if (v == null || Number.isNaN(v)) return "–";
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : Math.abs(v) >= 1 ? 2 : 3);
  return v.toFixed(d);
};
const mmm = (s, digits) => `${fmt(s.min, digits)} / ${fmt(s.median, digits)} / ${fmt(s.max, digits)}`;
const ratio = (ours, theirs) => (ours == null || theirs == null ? "–" : `${Number((ours / theirs).toPrecision(2))}×`);

// ---------------------------------------------------------------- environment

function machine() {
  let cpu = "unknown";
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpu;
  } catch {}
  return {
    cpu,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

/** The native addon this process loaded, and how it was compiled (the addon says). */
function buildInfo() {
  const require = createRequire(import.meta.url);
  const loaded = Object.keys(require.cache).filter((k) => k.endsWith(".node"));
  const file = loaded[0] ?? join(ROOT, "npm/smithers-rs/smithers.linux-x64-gnu.node");
  let size = null;
  try {
    size = statSync(file).size;
  } catch {}
  const type = `${engineBuild()} build`;
  return { file, sizeMB: size == null ? null : size / 2 ** 20, type, engineVersion: engineVersion() };
}

function tempDir(tag) {
  return mkdtempSync(join(os.tmpdir(), `smithers-bench-${tag}-`));
}

// ---------------------------------------------------------------- processes

const TIME_BIN = "/usr/bin/time";
let rssAvailable = null;
function checkRss() {
  if (rssAvailable !== null) return rssAvailable;
  rssAvailable = false;
  if (existsSync(TIME_BIN)) {
    const dir = tempDir("time");
    const out = join(dir, "rss");
    const r = spawnSync(TIME_BIN, ["-f", "%M", "-o", out, process.execPath, "-e", "0"], { stdio: "ignore" });
    rssAvailable = r.status === 0 && existsSync(out) && /^\d+\s*$/m.test(readFileSync(out, "utf8"));
    rmSync(dir, { recursive: true, force: true });
  }
  return rssAvailable;
}

/** Runs a command as a whole process: { wallMs, rssMB (null without GNU time), status, stdout, stderr }. */
function measureProcess(cmd, args, options = {}) {
  let rssFile = null;
  let file = cmd;
  let fullArgs = args;
  if (checkRss()) {
    rssFile = join(options.scratch ?? os.tmpdir(), `rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
    file = TIME_BIN;
    fullArgs = ["-f", "%M", "-o", rssFile, cmd, ...args];
  }
  const t0 = performance.now();
  const r = spawnSync(file, fullArgs, { encoding: "utf8", cwd: options.cwd ?? ROOT, env: options.env ?? process.env, maxBuffer: 64 << 20 });
  const wallMs = performance.now() - t0;
  let rssMB = null;
  if (rssFile) {
    try {
      // GNU time writes "Command exited with non-zero status N" before the figure.
      const kb = Number(readFileSync(rssFile, "utf8").trim().split("\n").pop());
      rssMB = kb / 1024;
    } catch {}
    rmSync(rssFile, { force: true });
  }
  return { wallMs, rssMB, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------- 1. per-node overhead

async function runOnce(kind, shape, n) {
  const dir = tempDir("pernode");
  try {
    const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
    const workflow = manyTasks(kind, shape, n);
    const t0 = performance.now();
    const result = await engine.run(workflow);
    const ms = performance.now() - t0;
    engine.close();
    if (result.status !== "finished") throw new Error(`${shape}/${kind} N=${n}: run ended ${result.status} ${JSON.stringify(result.error ?? {})}`);
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CASES = [
  { kind: "static", shape: "sequence", label: "Sequence, static tasks" },
  { kind: "compute", shape: "sequence", label: "Sequence, compute tasks" },
  { kind: "compute", shape: "parallel", label: "Parallel, compute tasks" },
];

async function perNode() {
  const sizes = FULL ? [10, 100, 1000, 10000] : [10, 100, 1000];
  const reps = { 10: 15, 100: 10, 1000: 7, 10000: 3 };
  log("per-node: warm-up");
  for (const c of CASES) await runOnce(c.kind, c.shape, 100);
  const rows = [];
  for (const c of CASES) {
    for (const n of sizes) {
      const times = [];
      for (let i = 0; i < reps[n]; i++) times.push(await runOnce(c.kind, c.shape, n));
      const total = stats(times);
      const perNodeMs = stats(times.map((t) => t / n));
      rows.push({ ...c, n, total, perNode: perNodeMs });
      log(`per-node: ${c.label} N=${n}: ${fmt(perNodeMs.median)} ms/node (median of ${reps[n]}, total ${fmt(total.median)} ms)`);
    }
  }
  // Growth from N = 100 to N = 1000: ratio of per-node medians, and the marginal cost per
  // added node. "Roughly linear" when the per-node time changes by less than 1.5× either way.
  const growth = CASES.map((c) => {
    const at = (n) => rows.find((r) => r.kind === c.kind && r.shape === c.shape && r.n === n);
    const a = at(100);
    const b = at(1000);
    const perNodeRatio = b.perNode.median / a.perNode.median;
    const marginalMs = (b.total.median - a.total.median) / 900;
    const big = at(10000);
    return {
      ...c,
      perNodeRatio,
      marginalMs,
      linear: perNodeRatio < 1.5 && perNodeRatio > 1 / 1.5,
      ratio10k: big ? big.perNode.median / b.perNode.median : null,
    };
  });
  for (const g of growth) {
    log(`per-node: ${g.label}: per-node ratio N=1000/N=100 = ${g.perNodeRatio.toFixed(2)} (${g.linear ? "roughly linear" : "NOT linear"}), marginal ${fmt(g.marginalMs)} ms/added node`);
  }
  // Whole processes (bench/one.js) at the largest N: wall including Node start-up, peak RSS.
  const procN = FULL ? [1000, 10000] : [1000];
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
      log(`per-node: process ${c.label} N=${n}: wall ${fmt(row.wall.median)} ms, peak RSS ${row.rss ? `${fmt(row.rss.median)} MB` : "unavailable"}`);
    }
  }
  return { sizes, reps, rows, growth, processes };
}

// ---------------------------------------------------------------- 2. in-process approve -> downstream

async function approveInProcess() {
  const dir = tempDir("approve");
  try {
    const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
    const bodyAt = new Map();
    const workflow = approvalThenTask((runId) => bodyAt.set(runId, performance.now()));
    const park = async () => {
      const { runId, done } = await engine.start(workflow);
      const r = await done;
      if (r.status !== "waiting-approval") throw new Error(`run ${runId} did not park: ${r.status}`);
      return runId;
    };
    const WARMUP = 20;
    const N = 200;
    const toBody = [];
    const toDone = [];
    const parkMs = [];
    log(`approve: ${WARMUP} warm-up + ${N} runs, approve with resume`);
    for (let i = 0; i < WARMUP + N; i++) {
      const p0 = performance.now();
      const runId = await park();
      const p1 = performance.now();
      const t0 = performance.now();
      const outcome = await engine.approve(runId, { decidedBy: "bench" });
      const r = await outcome.done;
      const t1 = performance.now();
      if (r.status !== "finished" || !bodyAt.has(runId)) throw new Error(`run ${runId} did not finish after approve: ${r.status}`);
      if (i >= WARMUP) {
        parkMs.push(p1 - p0);
        toBody.push(bodyAt.get(runId) - t0);
        toDone.push(t1 - t0);
      }
    }
    // Breakdown: record the decision only (resume: false), then resume in a second call.
    const M = 100;
    const recordMs = [];
    const resumeToBody = [];
    log(`approve: ${M} runs, record only then engine.resume (breakdown)`);
    for (let i = 0; i < M; i++) {
      const runId = await park();
      const t0 = performance.now();
      await engine.approve(runId, { decidedBy: "bench", resume: false });
      const t1 = performance.now();
      const r = await engine.resume(runId);
      if (r.status !== "finished") throw new Error(`run ${runId}: ${r.status} after resume`);
      recordMs.push(t1 - t0);
      resumeToBody.push(bodyAt.get(runId) - t1);
    }
    engine.close();
    const out = {
      n: N,
      toBody: stats(toBody),
      toDone: stats(toDone),
      park: stats(parkMs),
      record: stats(recordMs),
      resumeToBody: stats(resumeToBody),
    };
    log(`approve: approve -> downstream body p50 ${fmt(out.toBody.p50)} ms, p99 ${fmt(out.toBody.p99)} ms; -> run finished p50 ${fmt(out.toDone.p50)} ms`);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 3. CLI processes

async function cli() {
  const RUNS = 1000;
  const dir = tempDir("cli");
  const db = join(dir, "smithers.db");
  try {
    log(`cli: creating ${RUNS} runs, each waiting at one approval`);
    const { default: workflow } = await import(APPROVAL_WF);
    const engine = new SmithersEngine({ dbPath: db });
    const ids = [];
    const createMs = [];
    const c0 = performance.now();
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const { runId, done } = await engine.start(workflow, { workflowPath: APPROVAL_WF });
      const r = await done;
      createMs.push(performance.now() - t0);
      if (r.status !== "waiting-approval") throw new Error(`run ${runId} did not park: ${r.status}`);
      ids.push(runId);
    }
    const createTotal = performance.now() - c0;
    engine.close();
    const dbMB = statSync(db).size / 2 ** 20 + (existsSync(`${db}-wal`) ? statSync(`${db}-wal`).size / 2 ** 20 : 0);
    log(`cli: ${RUNS} runs parked in ${fmt(createTotal)} ms (p50 ${fmt(stats(createMs).p50)} ms/run), db ${fmt(dbMB)} MB`);
    if (!checkRss()) log(`cli: ${TIME_BIN} (GNU time) not usable: peak RSS unavailable (Debian package "time" provides it)`);

    const smithers = (...args) => [CLI, ...args];
    const next = (() => {
      let i = 0;
      return () => ids[i++];
    })();
    const ROUNDS = 20;
    const commands = [
      { key: "nodeFloor", label: "`node -e 0` (runtime floor)", args: () => ["-e", "0"], expect: 0 },
      { key: "version", label: "`smithers --version` (CLI floor)", args: () => smithers("--version"), expect: 0 },
      { key: "approveNoResume", label: "`smithers approve <run> --no-resume`", args: () => smithers("approve", next(), "--no-resume", "--by", "bench", "--db", db), expect: 0 },
      { key: "approveResume", label: "`smithers approve <run>` (resumes: gate + downstream task, finished)", args: () => smithers("approve", next(), "--by", "bench", "--db", db), expect: 0 },
      { key: "ps", label: "`smithers ps` (default: 50 newest)", args: () => smithers("ps", "--db", db), expect: 0 },
      { key: "psAll", label: "`smithers ps --status waiting-approval --limit 1000 --json`", args: () => smithers("ps", "--status", "waiting-approval", "--limit", "1000", "--json", "--db", db), expect: 0, rounds: 5 },
    ];
    const samples = Object.fromEntries(commands.map((c) => [c.key, []]));
    // Interleaved rounds, so drift on a noisy machine hits every command alike.
    for (let round = 0; round < ROUNDS + 1; round++) {
      for (const c of commands) {
        if (round > (c.rounds ?? ROUNDS)) continue;
        const p = measureProcess(process.execPath, c.args(), { scratch: dir });
        if (p.status !== c.expect) throw new Error(`${c.label} exited ${p.status}: ${p.stderr || p.stdout}`);
        if (round > 0) samples[c.key].push(p); // round 0 warms the page cache
      }
      if (round > 0) log(`cli: round ${round}/${ROUNDS}`);
    }
    // Check what the last approve with resume did.
    const check = new SmithersEngine({ dbPath: db });
    const waiting = check.listRuns({ status: "waiting-approval", limit: 5000 }).length;
    const finished = check.listRuns({ status: "finished", limit: 5000 }).length;
    check.close();
    const rows = commands.map((c) => ({
      key: c.key,
      label: c.label,
      wall: stats(samples[c.key].map((p) => p.wallMs)),
      rss: samples[c.key][0].rssMB == null ? null : stats(samples[c.key].map((p) => p.rssMB)),
    }));
    for (const r of rows) log(`cli: ${r.label}: wall median ${fmt(r.wall.median)} ms, RSS ${r.rss ? `${fmt(r.rss.median)} MB` : "n/a"}`);
    return {
      runs: RUNS,
      create: { total: createTotal, perRun: stats(createMs) },
      dbMB,
      rows,
      after: { waiting, finished },
      rssAvailable: checkRss(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- report

function budgets(res) {
  const out = [];
  if (res.pernode) {
    const r = res.pernode.rows.find((x) => x.kind === "static" && x.shape === "sequence" && x.n === 1000);
    out.push({ what: "static per-node overhead at N=1000 < 0.2 ms", value: `${fmt(r.perNode.median)} ms/node`, pass: r.perNode.median < 0.2 });
  }
  if (res.cli) {
    const get = (k) => res.cli.rows.find((r) => r.key === k);
    const floor = get("nodeFloor");
    const approve = get("approveNoResume");
    const delta = approve.wall.median - floor.wall.median;
    out.push({ what: "`smithers approve --no-resume` within 20 ms of `node -e 0`", value: `+${fmt(delta)} ms (${fmt(approve.wall.median)} vs ${fmt(floor.wall.median)} ms)`, pass: delta <= 20 });
    out.push(
      approve.rss
        ? { what: "`smithers approve --no-resume` peak RSS < 60 MB", value: `${fmt(approve.rss.median)} MB`, pass: approve.rss.median < 60 }
        : { what: "`smithers approve --no-resume` peak RSS < 60 MB", value: "RSS unavailable (no GNU time)", pass: null },
    );
  }
  if (res.approve) {
    out.push({ what: "in-process approve -> downstream started, p50 < 5 ms", value: `${fmt(res.approve.toBody.p50)} ms`, pass: res.approve.toBody.p50 < 5 });
  }
  return out;
}

function mdTable(header, rows, { left = 1 } = {}) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  const align = header.map((h, i) => (i < left ? "---" : "---:"));
  return [line(header), line(align), ...rows.map(line)].join("\n");
}

function render(res) {
  const { env, build } = res;
  const parts = [];
  const ours = "smithers-rs";
  parts.push(`# smithers-rs benchmarks\n`);
  parts.push(
    `Produced by \`npm run bench\`${res.full ? " -- --full" : ""} (bench/run.js) on ${res.date}. ` +
      `Times are milliseconds as min / median / max over the repetitions shown. ` +
      `The machine is shared and noisy: read medians and ratios.\n`,
  );
  parts.push(
    mdTable(["item", "value"], [
      ["date", res.date],
      ["machine", `${env.cpu}, ${env.cores} cores, ${fmt(env.memoryGiB, 1)} GiB, ${env.kernel}`],
      ["node", env.node],
      ["load average (1/5/15 min)", `at start ${res.loadavgStart.map((x) => x.toFixed(2)).join(" / ")}, at end ${res.loadavgEnd.map((x) => x.toFixed(2)).join(" / ")} (other work shares this machine)`],
      ["suite duration", `${fmt(res.durationS)} s`],
      ["native addon", `**${build.type}** (${build.sizeMB == null ? "?" : fmt(build.sizeMB, 1)} MB, \`${build.file.replace(`${ROOT}/`, "")}\`), engine ${build.engineVersion}`],
      ["mode", res.full ? "full (N up to 10000)" : "quick (N up to 1000)"],
      ["peak RSS", res.cli ? (res.cli.rssAvailable ? "GNU time (`/usr/bin/time -f %M`)" : "unavailable (GNU time missing)") : "–"],
    ], { left: 2 }),
  );
  if (build.type === "debug build") {
    parts.push(`\n**These figures are for a debug build of the native addon**; a release build will be faster on the native side.\n`);
  }

  if (res.budgets.length) {
    parts.push(`\n## Budgets (issue 6)\n`);
    parts.push(mdTable(["budget", "measured", "result"], res.budgets.map((b) => [b.what, b.value, b.pass == null ? "n/a" : b.pass ? "PASS" : "**MISS**"]), { left: 3 }));
    parts.push(`\nReported, not asserted. Where the time goes and what to change: \`bench/README.md\`.\n`);
  }

  if (res.pernode) {
    const p = res.pernode;
    parts.push(`\n## 1. Per-node overhead (in-process, \`SmithersEngine.run\`, fresh temp DB each repetition)\n`);
    parts.push(
      `Wall time of \`engine.run(workflow)\`: render, createRun, every step, until the run is finished ` +
        `(opening and closing the engine are outside the timed interval). ` +
        `Repetitions: ${p.sizes.map((n) => `N=${n}: ${p.reps[n]}`).join(", ")}, after one warm-up run per shape. ` +
        `Peer figures: ${PEER_NAME} engine time per node (\`finished_at - started_at\`), reference figures measured earlier on this machine.\n`,
    );
    const rows = p.rows.map((r) => {
      const peer = r.kind === "compute" ? (r.shape === "sequence" ? PEER.seqComputeMsPerNode : PEER.parComputeMsPerNode)[r.n] : undefined;
      return [r.label, String(r.n), String(r.total.n), mmm(r.total), mmm(r.perNode), peer == null ? "–" : fmt(peer), ratio(r.perNode.median, peer)];
    });
    parts.push(mdTable(["workflow", "N", "reps", "total ms", "ms/node", "peer ms/node", "ours/peer"], rows));
    parts.push(`\nGrowth from N=100 to N=1000 (per-node median ratio; 1.0 = perfectly linear total time):\n`);
    parts.push(
      mdTable(
        ["workflow", "ms/node ratio 1000/100", "marginal ms per added node (100→1000)", "linear?", ...(res.full ? ["ms/node ratio 10000/1000"] : [])],
        p.growth.map((g) => [g.label, g.perNodeRatio.toFixed(2), fmt(g.marginalMs), g.linear ? "roughly linear" : "no", ...(res.full ? [g.ratio10k == null ? "–" : g.ratio10k.toFixed(2)] : [])]),
      ),
    );
    parts.push(`\nWhole process (\`node bench/one.js <kind> <shape> N\`: Node start-up, module load, one run, exit):\n`);
    parts.push(
      mdTable(
        ["workflow", "N", "reps", "process wall ms", "engine ms", "peak RSS MB", "peer process wall ms", "peer peak RSS MB", "ours/peer wall", "ours/peer RSS"],
        p.processes.map((r) => {
          const peerWall = r.n === 1000 && r.kind === "compute" ? (r.shape === "sequence" ? PEER.seqCompute1000ProcessMs : PEER.parCompute1000ProcessMs) : null;
          const peerRss = r.n === 1000 && r.kind === "compute" ? (r.shape === "sequence" ? PEER.seqCompute1000PeakRssMb : PEER.parCompute1000PeakRssMb) : null;
          return [r.label, String(r.n), String(r.wall.n), mmm(r.wall), mmm(r.engine), r.rss ? mmm(r.rss) : "n/a", peerWall ?? "–", peerRss ?? "–", ratio(r.wall.median, peerWall), ratio(r.rss?.median, peerRss)];
        }),
      ),
    );
  }

  if (res.approve) {
    const a = res.approve;
    parts.push(`\n## 2. In-process approve → downstream task (\`SmithersEngine.approve\`)\n`);
    parts.push(
      `Workflow: \`<Approval id="gate">\` then a compute task whose body records \`performance.now()\`. ` +
        `Each run is started and parks at the gate, then t0 is taken just before \`engine.approve(runId)\`. ` +
        `${a.n} runs (after 20 warm-up runs) on one database that grows as it goes.\n`,
    );
    const s = (x) => [String(x.n), fmt(x.min), fmt(x.p50), fmt(x.p90), fmt(x.p99), fmt(x.max)];
    parts.push(
      mdTable(["interval", "n", "min", "p50", "p90", "p99", "max", "peer p50", "ours/peer"], [
        ["approve → downstream body starts", ...s(a.toBody), "–", "–"],
        ["approve → run finished (`done` settles)", ...s(a.toDone), `${PEER.inProcessResumeMsP50} (resume → run end)`, ratio(a.toDone.p50, PEER.inProcessResumeMsP50)],
        ["breakdown: record decision only (`resume: false`)", ...s(a.record), "–", "–"],
        ["breakdown: `engine.resume` → downstream body starts", ...s(a.resumeToBody), "–", "–"],
        ["start → parked at the gate (per run)", ...s(a.park), `${PEER.startToApprovalMsPerRun}`, ratio(a.park.p50, PEER.startToApprovalMsPerRun)],
      ]),
    );
  }

  if (res.cli) {
    const c = res.cli;
    parts.push(`\n## 3. The CLI as whole processes, on a database of ${c.runs} runs waiting at an approval\n`);
    parts.push(
      `The ${c.runs} runs were created in-process with \`SmithersEngine.start\` in ${fmt(c.create.total)} ms ` +
        `(per run min/median/max ${mmm(c.create.perRun)} ms; peer: ${PEER.startToApprovalMsPerRun} ms p50); the DB (with WAL) was ${fmt(c.dbMB)} MB. ` +
        `Each command ran as \`node npm/smithers-rs/bin/smithers.js …\`${c.rssAvailable ? " under `/usr/bin/time -f %M`" : ""}, in interleaved rounds after one warm-up round; ` +
        `each approve names a different run. Wall time is measured by the parent around the whole process. ` +
        `After the rounds: ${c.after.waiting} runs waiting, ${c.after.finished} finished.\n`,
    );
    const peerOf = {
      version: [PEER.versionMs, PEER.versionRssMb],
      approveNoResume: [PEER.approve1000DbMs, PEER.approveRssMb],
      approveResume: [PEER.approveThenResumeCliMs, null],
      ps: [PEER.psDefault1000DbMs, PEER.psRssMb],
      psAll: [PEER.psList1000Ms, PEER.psList1000RssMb],
    };
    const floor = c.rows.find((r) => r.key === "nodeFloor");
    parts.push(
      mdTable(
        ["process", "n", "wall ms", "minus `node -e 0` (median)", "peak RSS MB", "peer wall ms", "peer RSS MB", "ours/peer wall", "ours/peer RSS"],
        c.rows.map((r) => {
          const [pw, pr] = peerOf[r.key] ?? [null, null];
          return [r.label, String(r.wall.n), mmm(r.wall), r.key === "nodeFloor" ? "–" : `+${fmt(r.wall.median - floor.wall.median)}`, r.rss ? mmm(r.rss) : "n/a", pw ?? "–", pr ?? "–", ratio(r.wall.median, pw), ratio(r.rss?.median, pr)];
        }),
      ),
    );
    parts.push(
      `\nPeer rows: \`smithers approve\` in a DB with 1000+ runs (records only; ${PEER.approveSmallDbMs} ms in a small DB); ` +
        `approve with resume is compared with the peer's two processes \`approve\` + \`up --resume\` to the downstream output persisted; ` +
        `\`ps\` with the default \`smithers ps\` in the peer's 1000-run DB; the list of 1000 with \`ps --status waiting-approval --limit 1000 --format json\`. ` +
        `The peer's runtime floor is \`bun -e 0\`: ${PEER.bunFloorMs} ms, ${PEER.bunFloorRssMb} MB.\n`,
    );
  }

  parts.push(`\n## Reference figures\n`);
  parts.push(
    `The peer columns are reference figures measured earlier on this machine for ${PEER_NAME}, quoted from ` +
      `\`${PEER_SOURCE}\` (medians; see that file for n and ranges). They come from a different session, not a live side-by-side run; ` +
      `ratios are ours/theirs (below 1 means smithers-rs is faster or smaller).\n`,
  );
  return parts.join("\n");
}

function consoleTable(res) {
  const lines = [];
  const rows = [];
  const add = (section, what, n, value, extra = "") => rows.push([section, what, String(n), value, extra]);
  if (res.pernode) {
    for (const r of res.pernode.rows) add("per-node", `${r.label} N=${r.n}`, r.total.n, `${mmm(r.perNode)} ms/node`, `total ${mmm(r.total)} ms`);
    for (const g of res.pernode.growth) {
      add("growth", `${g.label} 100→1000`, "", `ratio ${g.perNodeRatio.toFixed(2)}`, `${g.linear ? "roughly linear" : "not linear"}${g.ratio10k == null ? "" : `; 1000→10000 ratio ${g.ratio10k.toFixed(2)}`}`);
    }
    for (const r of res.pernode.processes) add("process", `${r.label} N=${r.n}`, r.wall.n, `${mmm(r.wall)} ms`, r.rss ? `RSS ${mmm(r.rss)} MB` : "RSS n/a");
  }
  if (res.approve) {
    const a = res.approve;
    add("approve", "approve → downstream body", a.toBody.n, `p50 ${fmt(a.toBody.p50)} p99 ${fmt(a.toBody.p99)} ms`, `min ${fmt(a.toBody.min)} max ${fmt(a.toBody.max)}`);
    add("approve", "approve → run finished", a.toDone.n, `p50 ${fmt(a.toDone.p50)} p99 ${fmt(a.toDone.p99)} ms`);
    add("approve", "record only / resume → body", a.record.n, `p50 ${fmt(a.record.p50)} / ${fmt(a.resumeToBody.p50)} ms`);
  }
  if (res.cli) {
    for (const r of res.cli.rows) add("cli", r.label.replace(/`/g, ""), r.wall.n, `${mmm(r.wall)} ms`, r.rss ? `RSS ${mmm(r.rss)} MB` : "RSS n/a");
  }
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => r[i].length), 4));
  lines.push(`smithers-rs benchmarks — ${res.date} — ${res.env.node} — ${res.build.type} — ${res.env.cpu}, ${res.env.cores} cores`);
  for (const r of rows) lines.push(r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd());
  lines.push("");
  lines.push("budgets (issue 6; reported, not asserted):");
  for (const b of res.budgets) lines.push(`  ${b.pass == null ? "n/a " : b.pass ? "PASS" : "MISS"}  ${b.what.replace(/`/g, "")}: ${b.value.replace(/`/g, "")}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------- main

async function main() {
  const env = machine();
  const build = buildInfo();
  log(`${build.type} (${fmt(build.sizeMB, 1)} MB ${build.file}); ${env.cpu}, ${env.cores} cores; node ${env.node}; ${FULL ? "full" : "quick"} mode`);
  const res = { date: new Date().toISOString(), full: FULL, env, build, loadavgStart: os.loadavg() };
  if (want("pernode")) res.pernode = await perNode();
  if (want("approve")) res.approve = await approveInProcess();
  if (want("cli")) res.cli = await cli();
  res.budgets = budgets(res);
  res.loadavgEnd = os.loadavg();
  res.durationS = (performance.now() - T_START) / 1000;

  console.log(consoleTable(res));
  const resultsDir = join(HERE, "results");
  mkdirSync(resultsDir, { recursive: true });
  const raw = join(resultsDir, `${res.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(raw, `${JSON.stringify(res, null, 2)}\n`);
  log(`raw results: ${raw}`);
  if (WRITE && ONLY === null) {
    writeFileSync(join(ROOT, "BENCHMARKS.md"), `${render(res)}\n`);
    log(`wrote BENCHMARKS.md`);
  } else if (WRITE) {
    log(`--only given: BENCHMARKS.md left as it is`);
  }
  log("done");
}

main().then(
  () => {
    process.exitCode = 0;
  },
  (e) => {
    // Budgets never fail the suite; a benchmark that cannot run does.
    process.stderr.write(`bench: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  },
);
