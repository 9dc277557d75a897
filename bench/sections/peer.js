// 6. The peer, Smithers 0.32, measured in the same run on the same workflows (bench/peer/*.tsx,
// twins of bench/workflows.js), installed by bench/peer-install.js into a scratch folder.
// Its per-node cost is tens of milliseconds, so N stays small: 10 and 100 (--full adds 1,000).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dbSizeMB, epochMs, fmt, lastJson, log, measureProcess, sleep, startProcess, stats } from "../lib.js";
import { PEER_PACKAGE, PEER_VERSION, installPeer, peerEnv } from "../peer-install.js";

// `smithers up` side features that default to on and reach for agents or a browser.
const UP_FLAGS = ["--no-post-failure", "--no-report", "--no-monitor"];

function freshDir(app, name) {
  const dir = join(app, "run", name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** One peer step; a failure is recorded and the next step runs. */
async function step(errors, name, fn) {
  try {
    return await fn();
  } catch (e) {
    errors.push({ step: name, message: String(e?.message ?? e).slice(0, 600) });
    log(`peer: ${name} failed: ${String(e?.message ?? e).split("\n")[0].slice(0, 300)}`);
    return null;
  }
}

function bunJson(app, dir, args) {
  const p = measureProcess("bun", [join(app, "driver.ts"), ...args], { cwd: dir, env: peerEnv(app), timeoutMs: 30 * 60_000 });
  if (p.status !== 0) throw new Error(`bun driver.ts ${args.join(" ")} exited ${p.status}: ${p.stderr.slice(-800)}`);
  return { ...lastJson(p.stdout), peakRssMB: p.rssMB };
}

const SHAPES = [
  { key: "static-sequence", shape: "seq", kind: "static", label: "Sequence, static tasks", file: "seq.tsx" },
  { key: "compute-sequence", shape: "seq", kind: "compute", label: "Sequence, compute tasks", file: "seq.tsx" },
  { key: "compute-parallel", shape: "par", kind: "compute", label: "Parallel, compute tasks", file: "par.tsx" },
];

async function perNode(app, full) {
  const plan = [
    { n: 10, reps: 3 },
    { n: 100, reps: full ? 3 : 2 },
    ...(full ? [{ n: 1000, reps: 1 }] : []),
  ];
  const rows = [];
  for (const s of SHAPES) {
    for (const { n, reps } of plan) {
      const dir = freshDir(app, `pernode-${s.key}-${n}`);
      const r = bunJson(app, dir, ["pernode", s.shape, s.kind, String(n), String(reps)]);
      const wall = stats(r.runs.map((x) => x.wallMs));
      const row = {
        key: s.key,
        label: s.label,
        n,
        total: wall,
        perNode: stats(r.runs.map((x) => x.wallMs / n)),
        enginePerNode: stats(r.runs.map((x) => (x.engineMs == null ? null : x.engineMs / n))),
        dbMB: dbSizeMB(join(dir, "smithers.db")),
      };
      rows.push(row);
      log(`peer: per-node ${s.label} N=${n}: ${fmt(row.perNode.median)} ms/node (runWorkflow wall; engine ${fmt(row.enginePerNode.median)}), db ${fmt(row.dbMB)} MB`);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

/** `smithers up` of one run as a whole process (wall, peak RSS). */
async function processes(app, n, reps) {
  const rows = [];
  for (const s of SHAPES) {
    const dir = freshDir(app, `process-${s.key}-${n}`);
    const samples = [];
    for (let r = 0; r < reps; r++) {
      const args = ["up", join(app, s.file), "--run-id", `p${r}`, "--input", JSON.stringify({ n, kind: s.kind }), ...UP_FLAGS];
      if (s.shape === "par") args.push("--max-concurrency", String(n));
      const p = measureProcess("smithers", args, { cwd: dir, env: peerEnv(app) });
      if (p.status !== 0) throw new Error(`smithers up ${s.file} n=${n} exited ${p.status}: ${p.stderr.slice(-500)}`);
      samples.push(p);
    }
    rows.push({ key: s.key, label: s.label, n, wall: stats(samples.map((p) => p.wallMs)), rss: stats(samples.map((p) => p.rssMB)) });
    log(`peer: process ${s.label} N=${n}: wall ${fmt(rows.at(-1).wall.median)} ms, RSS ${fmt(rows.at(-1).rss.median)} MB`);
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function approveInProcess(app, full) {
  const dir = freshDir(app, "approve");
  const r = bunJson(app, dir, ["approve", full ? "20" : "12", "2"]);
  const pick = (k) => stats(r.samples.map((x) => x[k]));
  const out = { n: r.samples.length, toBody: pick("toBodyMs"), toDone: pick("toDoneMs"), record: pick("recordMs"), park: pick("parkMs") };
  log(`peer: in-process approve -> downstream body p50 ${fmt(out.toBody.p50)} ms, -> run finished p50 ${fmt(out.toDone.p50)} ms`);
  rmSync(dir, { recursive: true, force: true });
  return out;
}

/** A database of parked runs, then the CLI as whole processes, in interleaved rounds. */
async function cli(app, rounds) {
  const dir = freshDir(app, "cli");
  const PARKED = 2 * rounds + 10;
  const park = bunJson(app, dir, ["park", String(PARKED), "c"]);
  const dbMB = dbSizeMB(join(dir, "smithers.db"));
  // Ten more, for the database's growth per run (its fixed part left out).
  const EXTRA = 10;
  bunJson(app, dir, ["park", String(EXTRA), "d"]);
  const marginalKBPerRun = ((dbSizeMB(join(dir, "smithers.db")) - dbMB) * 1024) / EXTRA;
  log(`peer: ${PARKED} runs parked in ${fmt(park.totalMs)} ms (p50 ${fmt(stats(park.perRunMs).p50)} ms/run), db ${fmt(dbMB)} MB, ${fmt(marginalKBPerRun)} KB per further run`);
  let k = 0;
  const env = peerEnv(app);
  const list = [
    { key: "floor", cmd: "bun", args: () => ["-e", "0"] },
    { key: "version", cmd: "smithers", args: () => ["--version"] },
    { key: "approve", cmd: "smithers", args: () => ["approve", `c${k++}`, "--by", "bench"] },
    { key: "ps", cmd: "smithers", args: () => ["ps"] },
    { key: "psWaiting50", cmd: "smithers", args: () => ["ps", "--status", "waiting-approval", "--limit", "50", "--format", "json"] },
  ];
  const samples = Object.fromEntries(list.map((c) => [c.key, []]));
  for (let round = 0; round <= rounds; round++) {
    for (const c of list) {
      const p = measureProcess(c.cmd, c.args(), { cwd: dir, env });
      if (p.status !== 0) throw new Error(`peer ${c.cmd} ${c.key} exited ${p.status}: ${p.stderr.slice(-400)}`);
      if (round > 0) samples[c.key].push(p);
    }
  }
  const rows = Object.fromEntries(list.map((c) => [c.key, { wall: stats(samples[c.key].map((p) => p.wallMs)), rss: stats(samples[c.key].map((p) => p.rssMB)) }]));
  for (const [key, r] of Object.entries(rows)) log(`peer: cli ${key}: wall median ${fmt(r.wall.median)} ms, RSS ${fmt(r.rss.median)} MB`);
  // approve, then `up --resume` (two processes): the manual way to move a parked run.
  const resumed = [];
  const afterFile = join(dir, "after.txt");
  writeFileSync(afterFile, "");
  for (let i = 0; i < (rounds > 5 ? 8 : 6); i++) {
    const runId = `c${PARKED - 1 - i}`;
    const t0 = epochMs();
    const a = measureProcess("smithers", ["approve", runId, "--by", "bench"], { cwd: dir, env });
    const u = measureProcess("smithers", ["up", join(app, "gate.tsx"), "--resume", "--run-id", runId, ...UP_FLAGS], { cwd: dir, env: { ...env, BENCH_AFTER_FILE: afterFile } });
    if (a.status !== 0 || u.status !== 0) throw new Error(`peer approve/resume of ${runId}: exit ${a.status}/${u.status}: ${u.stderr.slice(-400)}`);
    const line = readFileSync(afterFile, "utf8").split("\n").find((l) => l.startsWith(`${runId} `));
    if (!line) throw new Error(`peer: the downstream task of ${runId} did not run`);
    if (i > 0) resumed.push({ toBody: Number(line.split(" ")[1]) - t0, approveWall: a.wallMs, resumeWall: u.wallMs });
  }
  const approveResume = { toBody: stats(resumed.map((x) => x.toBody)), approveWall: stats(resumed.map((x) => x.approveWall)), resumeWall: stats(resumed.map((x) => x.resumeWall)) };
  log(`peer: approve + up --resume -> downstream body p50 ${fmt(approveResume.toBody.p50)} ms`);
  rmSync(dir, { recursive: true, force: true });
  return { parked: PARKED, extra: EXTRA, park: { totalMs: park.totalMs, perRun: stats(park.perRunMs) }, dbMB, dbKBPerRun: (dbMB * 1024) / PARKED, marginalKBPerRun, rounds, rows, approveResume };
}

/** kill -9 part-way through a <Sequence> of n compute tasks, then resume (it needs --force). */
async function recovery(app, n, reps) {
  const out = [];
  const env = peerEnv(app);
  for (let r = 0; r < reps; r++) {
    const dir = freshDir(app, `recovery-${r}`);
    const side = join(dir, "side.txt");
    writeFileSync(side, "");
    const runId = `rec${r}`;
    const count = () => readFileSync(side, "utf8").split("\n").filter(Boolean).length;
    const up = startProcess("smithers", ["up", join(app, "side.tsx"), "--run-id", runId, "--input", JSON.stringify({ n, side }), ...UP_FLAGS], { cwd: dir, env, rss: false });
    while (count() < n / 2 && up.child.exitCode === null) await sleep(2);
    up.child.kill("SIGKILL");
    const killed = await up.done;
    if (killed.signal !== "SIGKILL") throw new Error(`peer recovery: the run ended before the kill (exit ${killed.status})`);
    const killedAfter = count();
    const plain = measureProcess("smithers", ["up", join(app, "side.tsx"), "--resume", "--run-id", runId, ...UP_FLAGS], { cwd: dir, env });
    const startedAt = epochMs();
    const forced = measureProcess("smithers", ["up", join(app, "side.tsx"), "--resume", "--force", "--run-id", runId, ...UP_FLAGS], { cwd: dir, env });
    if (forced.status !== 0) throw new Error(`peer resume --force exited ${forced.status}: ${forced.stderr.slice(-400)}`);
    const lines = readFileSync(side, "utf8").split("\n").filter(Boolean).map((l) => l.split(" "));
    const killPid = lines[0]?.[1];
    const after = lines.filter((l) => l[1] !== killPid);
    const times = new Map();
    for (const [id] of lines) times.set(id, (times.get(id) ?? 0) + 1);
    const vals = [...times.values()];
    out.push({
      killedAfter,
      plainResumeStatus: plain.status,
      plainResumeMs: plain.wallMs,
      resumeMs: forced.wallMs,
      rssMB: forced.rssMB,
      remaining: after.length,
      firstBodyMs: after.length ? Number(after[0][2]) - startedAt : null,
      once: vals.filter((v) => v === 1).length,
      twice: vals.filter((v) => v === 2).length,
      more: vals.filter((v) => v > 2).length,
      missing: n - times.size,
    });
    log(`peer: recovery: kill -9 at ${killedAfter}/${n}; plain resume exit ${plain.status}; --force resume ${fmt(forced.wallMs)} ms; ran twice ${out.at(-1).twice}, missing ${out.at(-1).missing}`);
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    n,
    reps: out,
    resume: stats(out.map((x) => x.resumeMs)),
    perRemaining: stats(out.map((x) => x.resumeMs / Math.max(1, x.remaining))),
    firstBody: stats(out.map((x) => x.firstBodyMs)),
    rss: stats(out.map((x) => x.rssMB)),
    plainResumeStatus: [...new Set(out.map((x) => x.plainResumeStatus))],
  };
}

export async function run({ full }) {
  log(`peer: ${PEER_PACKAGE}@${PEER_VERSION}`);
  const install = installPeer({ log });
  if (!install.ok) {
    log(`peer unavailable: ${install.reason}`);
    return { available: false, reason: install.reason, root: install.root };
  }
  const { app, env, ...shown } = install;
  log(`peer: ${install.cached ? "cached install" : "installed"} in ${app} (${fmt(install.installMs / 1000)} s): smithers ${install.versions.smithers}, bun ${install.versions.bun}`);
  const errors = [];
  const res = { available: true, install: shown, app, errors };
  res.pernode = await step(errors, "per-node", () => perNode(app, full));
  res.processes = await step(errors, "process", () => processes(app, 100, full ? 3 : 1));
  res.approve = await step(errors, "approve", () => approveInProcess(app, full));
  res.cli = await step(errors, "cli", () => cli(app, full ? 10 : 5));
  res.recovery = await step(errors, "recovery", () => recovery(app, 100, full ? 3 : 1));
  return res;
}
