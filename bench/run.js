#!/usr/bin/env node
// smithers-rs benchmark suite (issue 6). `npm run bench` (quick: a few minutes) or
// `npm run bench -- --full` (adds N = 10,000 and the 100,000-run figures).
//
// Sections (bench/sections/):
//   pernode    per-node overhead: Sequence of N static / compute tasks, Parallel of N
//   approve    in-process approve -> downstream task started
//   crossproc  `smithers approve` in another process -> downstream task started
//   cli        the CLI as whole processes (wall, CPU time, peak RSS) on 1,000 waiting runs
//   waiting    1,000 / 10,000 (/ 100,000) runs waiting at an approval
//   timers     1,000 / 10,000 (/ 100,000) gates waiting with deadlines: first pages, firing all
//   postgres   PostgreSQL next to SQLite: per-node overhead (Sequence of 1,000 static / compute
//              tasks) and approve -> downstream started, on a throwaway server (scripts/pg-server.sh)
//   recovery   kill -9 during a 1,000-task run, then resume
//   agents     what an agent task costs over a compute task (an agent that answers at once)
//   peer       the same workflows on Smithers 0.32, installed into a scratch folder
//   peers      DBOS, LangGraph (PyPI) and Dagu (npm binary) on the same shapes; racing approvers
//   dagu       a 100-step Dagu DAG of command steps, ms per step, beside Dagu running it
//   workers    1,000 short runs over 1, 2 and 4 `smithers worker` processes (PostgreSQL, SQLite);
//              a decision in one process -> downstream task started in a worker, p50/p95
// It prints a table on stdout (progress on stderr), writes BENCHMARKS.md at the repo root and
// the raw figures to bench/results/ (ignored by git). Budgets are reported, not asserted: the
// exit code is 0 unless a benchmark cannot run at all.
//
// Options: --full, --no-write (leave BENCHMARKS.md alone), --only=a,b (those sections; then
// BENCHMARKS.md is left alone too), --no-peer (neither peer section), --render=bench/results/<file>.json
// (measure nothing: print the table and write BENCHMARKS.md again from a run's raw figures),
// --addon=release|debug|FILE (bench/addon.js: the release build by default, built if needed),
// --baseline=DIR (section cli: another checkout's CLI runs the .tsx rows in the same rounds,
// for before/after figures; DIR needs its node_modules and addon), --node=PATH (section cli:
// the processes run on that Node, e.g. one with module.registerHooks when this one lacks it),
// --rounds=N (section cli: interleaved rounds, default 30).
import { ADDON } from "./addon.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { HERE, ROOT, buildInfo, checkRss, count, elapsedS, fmt, log, machine, mmm, ratio, stats } from "./lib.js";

/** "+9.4" / "−1.1": a difference of medians. */
const signed = (v) => (v == null ? "–" : v < 0 ? `−${fmt(-v)}` : `+${fmt(v)}`);
/** Median over rounds of (this command's wall − the floor's wall in the same round). */
const overFloor = (row, floor) => stats(row.walls.map((w, i) => w - floor.walls[i])).median;
/** The same for CPU time (user + system), or null where it was not measured. */
const cpuOverFloor = (row, floor) => (row.cpus && floor.cpus ? stats(row.cpus.map((c, i) => c - floor.cpus[i])).median : null);
import { PEER_PACKAGE, PEER_VERSION } from "./peer-install.js";
import * as agentsSection from "./sections/agents.js";
import * as approveSection from "./sections/approve.js";
import * as cliSection from "./sections/cli.js";
import * as crossprocSection from "./sections/crossproc.js";
import * as daguSection from "./sections/dagu.js";
import * as peerSection from "./sections/peer.js";
import * as peersSection from "./sections/peers.js";
import * as pernodeSection from "./sections/pernode.js";
import * as postgresSection from "./sections/postgres.js";
import * as recoverySection from "./sections/recovery.js";
import * as waitingSection from "./sections/waiting.js";
import * as timersSection from "./sections/timers.js";
import * as workersSection from "./sections/workers.js";

const argv = process.argv.slice(2);
const FULL = argv.includes("--full");
const WRITE = !argv.includes("--no-write");
const onlyArg = argv.find((a) => a.startsWith("--only="));
const ONLY = onlyArg ? new Set(onlyArg.slice("--only=".length).split(",")) : null;
const NO_PEER = argv.includes("--no-peer");
const RENDER = argv.find((a) => a.startsWith("--render="))?.slice("--render=".length);
const BASELINE = argv.find((a) => a.startsWith("--baseline="))?.slice("--baseline=".length);
const CLI_NODE = argv.find((a) => a.startsWith("--node="))?.slice("--node=".length);
const ROUNDS_ARG = argv.find((a) => a.startsWith("--rounds="))?.slice("--rounds=".length);
const CLI_ROUNDS = ROUNDS_ARG === undefined ? undefined : Number(ROUNDS_ARG);
if (CLI_ROUNDS !== undefined && !(Number.isInteger(CLI_ROUNDS) && CLI_ROUNDS > 0)) throw new Error(`--rounds must be a whole number > 0 (got ${ROUNDS_ARG})`);
const want = (section) => (ONLY === null || ONLY.has(section)) && !((section === "peer" || section === "peers") && NO_PEER);

const SECTIONS = [
  ["pernode", pernodeSection],
  ["approve", approveSection],
  ["crossproc", crossprocSection],
  ["cli", cliSection],
  ["waiting", waitingSection],
  ["timers", timersSection],
  ["postgres", postgresSection],
  ["recovery", recoverySection],
  ["agents", agentsSection],
  ["peer", peerSection],
  ["peers", peersSection],
  ["dagu", daguSection],
  ["workers", workersSection],
];

// ---------------------------------------------------------------- budgets

function budgets(res) {
  const out = [];
  if (res.pernode) {
    const r = res.pernode.rows.find((x) => x.kind === "static" && x.shape === "sequence" && x.n === 1000);
    out.push({ what: "static per-node overhead at N = 1,000 < 0.2 ms", value: `${fmt(r.perNode.median)} ms/node (median of ${r.perNode.n})`, pass: r.perNode.median < 0.2 });
    const reading = res.pernode.reading?.find((x) => x.n === 2000);
    if (reading) out.push({ what: "output-reading sequence at N = 2,000 < 2 s (issue 13)", value: `${fmt(reading.total.median)} ms${reading.cpu ? ` (CPU ${fmt(reading.cpu.median)} ms)` : ""}`, pass: reading.total.median < 2000 });
  }
  if (res.cli) {
    const get = (k) => res.cli.rows.find((r) => r.key === k);
    const floor = get("nodeFloor");
    const approve = get("approveNoResume");
    // Round by round (the two ran back to back), so that load that comes and goes cancels out.
    const paired = stats(approve.walls.map((w, i) => w - floor.walls[i]));
    out.push({
      what: "`smithers approve --no-resume` within 20 ms of `node -e 0` (median of the differences within each round)",
      value: `${signed(paired.median)} ms over ${paired.n} rounds (medians ${fmt(approve.wall.median)} vs ${fmt(floor.wall.median)} ms)`,
      pass: paired.median <= 20,
    });
    out.push(
      approve.rss
        ? { what: "`smithers approve --no-resume` peak RSS < 60 MB", value: `${fmt(approve.rss.median)} MB (\`node -e 0\`: ${fmt(floor.rss.median)} MB)`, pass: approve.rss.median < 60 }
        : { what: "`smithers approve --no-resume` peak RSS < 60 MB", value: "RSS unavailable (no GNU time)", pass: null },
    );
    // Issue 17: the CLI starts at Node's speed.
    const starts = [
      ["upTsx", "nodeFloor", "`smithers up` of a small .tsx", "`node -e 0`"],
      ["approveTsx", "nodeFloor", "`smithers approve` that resumes it", "`node -e 0`"],
      ["upTsxZod", "zodFloor", "`smithers up` of the .tsx with zod", "`node` + `import \"zod\"`"],
      ["approveTsxZod", "zodFloor", "`smithers approve` that resumes it", "`node` + `import \"zod\"`"],
    ];
    for (const [key, floorKey, what, floorWhat] of starts) {
      const row = get(key);
      const base = get(floorKey);
      if (!row || !base) continue;
      const over = stats(row.walls.map((w, i) => w - base.walls[i]));
      out.push({
        what: `${what} within 40 ms of ${floorWhat} (median of the differences within each round; compiled file cached)`,
        value: `${signed(over.median)} ms over ${over.n} rounds${res.cli.node ? ` on Node ${res.cli.node}` : ""} (medians ${fmt(row.wall.median)} vs ${fmt(base.wall.median)} ms)`,
        pass: over.median <= 40,
      });
      // CPU time: what the process itself spent, which other work on the cores stretches
      // much less than wall time (on a quiet machine a start-up is CPU-bound, so the two agree).
      const cpu = cpuOverFloor(row, base);
      if (cpu != null) {
        out.push({
          what: `${what} within 40 ms of ${floorWhat} in CPU time (user + system; median of the differences within each round)`,
          value: `${signed(cpu)} ms over ${row.cpus.length} rounds (medians ${fmt(row.cpu.median)} vs ${fmt(base.cpu.median)} ms)`,
          pass: cpu <= 40,
        });
      }
    }
  }
  if (res.agents) {
    const r = res.agents.rows.at(-1);
    out.push({
      what: "an agent task over a compute task (agent answering at once), per task < 0.5 ms",
      value: `${fmt(r.overhead.median)} ms at N = ${count(r.n)} (median of ${r.overhead.n} paired runs)`,
      pass: r.overhead.median < 0.5,
    });
  }
  if (res.approve) {
    out.push({ what: "in-process approve → downstream task started, p50 < 5 ms", value: `${fmt(res.approve.toBody.p50)} ms (p99 ${fmt(res.approve.toBody.p99)} ms)`, pass: res.approve.toBody.p50 < 5 });
  }
  if (res.waiting) {
    const rows = res.waiting.rows;
    const a = rows[0];
    const b = rows.at(-1);
    const grow = b.hold.after.rssMB / a.hold.after.rssMB;
    out.push({
      what: `engine memory flat with ${count(a.n)} → ${count(b.n)} waiting runs (RSS within 10 %)${b.n < 100_000 ? "; 100,000 needs --full" : ""}`,
      value: `${fmt(a.hold.after.rssMB)} → ${fmt(b.hold.after.rssMB)} MB (×${grow.toFixed(2)}; peak ${fmt(a.hold.peakRssMB)} → ${fmt(b.hold.peakRssMB)} MB)`,
      pass: grow <= 1.1,
    });
  }
  const pgWorkers = res.workers?.stores?.postgres;
  if (pgWorkers?.available) {
    out.push({
      what: "decision made in one process -> downstream task started in a worker process, PostgreSQL, p50 < 20 ms (issue 16)",
      value: `p50 ${fmt(pgWorkers.latency.p50)} ms, p95 ${fmt(pgWorkers.latency.p95)} ms (${pgWorkers.latency.reps} decisions)`,
      pass: pgWorkers.latency.p50 < 20,
    });
  }
  return out;
}

// ---------------------------------------------------------------- side by side

/** Rows [figure, ours, theirs, oursValue, theirsValue, note] for every figure both produce. */
function sideBySide(res) {
  const p = res.peer;
  if (!p?.available) return [];
  const rows = [];
  const add = (figure, ours, theirs, unit, note = "") => {
    if (ours == null || theirs == null) return;
    rows.push({ figure, ours, theirs, unit, note });
  };
  const shapeKey = (r) => `${r.kind}-${r.shape}`;
  if (res.pernode && p.pernode) {
    for (const pr of p.pernode) {
      const o = res.pernode.rows.find((r) => shapeKey(r) === pr.key && r.n === pr.n);
      add(`${pr.label}, N = ${count(pr.n)}: ms per node (in-process run)`, o?.perNode.median, pr.perNode.median, "ms");
    }
  }
  if (res.pernode && p.processes) {
    for (const pr of p.processes) {
      const o = res.pernode.processes.find((r) => shapeKey(r) === pr.key && r.n === pr.n);
      add(`${pr.label}, N = ${pr.n}: one run as a whole process, wall`, o?.wall.median, pr.wall.median, "ms", "`node bench/one.js` vs `smithers up`");
      add(`${pr.label}, N = ${pr.n}: one run as a whole process, peak RSS`, o?.rss?.median, pr.rss.median, "MB");
    }
  }
  if (res.approve && p.approve) {
    add("in-process approve → downstream task started, p50", res.approve.toBody.p50, p.approve.toBody.p50, "ms", "peer: `approveNode` then `runWorkflow({ resume: true })`");
    add("in-process approve → run finished, p50", res.approve.toDone.p50, p.approve.toDone.p50, "ms");
    add("in-process decision recorded (no resume), p50", res.approve.record.p50, p.approve.record.p50, "ms");
    add("in-process start → parked at the gate, p50", res.approve.park.p50, p.approve.park.p50, "ms");
  }
  if (res.crossproc && p.cli) {
    add("`smithers approve` in another process → downstream task started, p50", res.crossproc.withResume.toBody.p50, p.cli.approveResume.toBody.p50, "ms", "ours: one `approve` process; peer: `approve` then `up --resume`");
  }
  if (res.cli && p.cli) {
    const o = (k) => res.cli.rows.find((r) => r.key === k);
    const t = p.cli.rows;
    add("runtime floor (`node -e 0` / `bun -e 0`), wall", o("nodeFloor").wall.median, t.floor.wall.median, "ms");
    add("`smithers --version`, wall", o("version").wall.median, t.version.wall.median, "ms");
    add("`smithers --version`, peak RSS", o("version").rss?.median, t.version.rss.median, "MB");
    add("`smithers approve` (records only), wall", o("approveNoResume").wall.median, t.approve.wall.median, "ms", `ours on ${count(res.cli.runs)} waiting runs, peer on ${p.cli.parked}`);
    add("`smithers approve` (records only), peak RSS", o("approveNoResume").rss?.median, t.approve.rss.median, "MB");
    add("`smithers ps`, wall", o("ps").wall.median, t.ps.wall.median, "ms");
    add("`smithers ps`, peak RSS", o("ps").rss?.median, t.ps.rss.median, "MB");
    add("`smithers ps --status waiting-approval --limit 50` (JSON), wall", o("psWaiting50").wall.median, t.psWaiting50.wall.median, "ms");
  }
  if (p.cli) {
    const w1k = res.waiting?.rows[0] ?? null;
    const create = w1k?.create.perRun.p50 ?? res.cli?.create.perRun.p50;
    add("create a run that parks at its gate (in-process, per run, p50)", create, p.cli.park.perRun.p50, "ms");
    const big = res.waiting?.rows.at(-1);
    const kb = big && big !== w1k ? ((big.dbMB - w1k.dbMB) * 1024) / (big.n - w1k.n) : null;
    add("database growth per parked run", kb, p.cli.marginalKBPerRun, "KB", big ? `ours ${count(w1k.n)} → ${count(big.n)} runs, peer ${p.cli.parked} → ${p.cli.parked + p.cli.extra} (WAL checkpointed)` : "");
  }
  if (res.recovery && p.recovery) {
    add("after kill -9: resume process, time to the first resumed task", res.recovery.summary.cli.firstBody.median, p.recovery.firstBody.median, "ms", "ours: `smithers resume`; peer: `up --resume --force`");
    add("after kill -9: resume process, wall per remaining task", res.recovery.summary.cli.perRemaining.median, p.recovery.perRemaining.median, "ms", `ours N = ${count(res.recovery.n)}, peer N = ${p.recovery.n}`);
  }
  return rows;
}

// ---------------------------------------------------------------- every peer

const PEER_NAMES = { dbos: "DBOS", langgraph: "LangGraph", dagu: "Dagu" };

/** "12.3 ms (0.01×)": a peer's figure with ours/theirs. */
const cell = (theirs, ours, unit = "ms") => (theirs == null ? "–" : `${fmt(theirs)} ${unit}${ours == null ? "" : ` (${ratio(ours, theirs)})`}`);

/** The shapes every peer ran, side by side, and what each peer is (versions, sizes). */
function everyPeer(res) {
  const p = res.peers;
  const sm = res.peer?.available ? res.peer : null;
  const names = Object.keys(PEER_NAMES);
  const peer = (n) => (p.peers[n]?.available ? p.peers[n] : null);
  const seq1000 = res.pernode?.rows.find((r) => r.kind === "compute" && r.shape === "sequence" && r.n === 1000);
  const smSeq = sm?.pernode?.filter((r) => r.key === "compute-sequence").at(-1);
  const waiting = res.waiting?.rows[0];
  const rec = res.recovery?.summary?.cli;
  const recTwice = res.recovery ? Math.max(...res.recovery.reps.map((x) => x.twice)) : null;
  const recMissing = res.recovery ? Math.max(...res.recovery.reps.map((x) => x.missing)) : null;
  const ours = {
    pernode: seq1000?.perNode.median,
    approve: res.approve?.toBody.p50,
    park: waiting?.create.perRun.p50,
    crash: rec?.firstBody.median,
  };
  const row = (label, oursText, smText, per) => [label, oursText, smText, ...names.map((n) => (peer(n) ? per(peer(n), n) : "–"))];
  const rows = [
    row(
      "per node, 1,000-step sequence of compute tasks (ms per step, in process)",
      ours.pernode == null ? "–" : `${fmt(ours.pernode)} ms`,
      smSeq ? `${cell(smSeq.perNode.median, ours.pernode)}${smSeq.n !== 1000 ? ` at N = ${count(smSeq.n)}` : ""}` : "–",
      (x) => (x.pernode ? `${cell(x.pernode.perNode.median, ours.pernode)}${x.pernode.n !== 1000 ? ` at N = ${count(x.pernode.n)}, CLI` : ""}` : "–"),
    ),
    row(
      "approve → downstream task started (p50 ms)",
      ours.approve == null ? "–" : `${fmt(ours.approve)} ms`,
      sm?.approve ? cell(sm.approve.toBody.p50, ours.approve) : "–",
      (x, n) => (x.approve ? `${cell(x.approve.toBody.p50, ours.approve)}${n === "dagu" ? ", REST" : ""}` : "–"),
    ),
    row(
      "start runs that each wait at a gate (p50 ms per run)",
      waiting ? `${fmt(ours.park)} ms (${count(waiting.n)} runs, ${fmt(waiting.create.totalMs / 1000)} s)` : "–",
      sm?.cli ? `${cell(sm.cli.park.perRun.p50, ours.park)} (${sm.cli.parked} runs)` : "–",
      (x) => (x.park ? `${cell(x.park.perRun.p50, ours.park)} (${count(x.park.n)} runs, ${fmt(x.park.totalMs / 1000)} s${x.park.stalledAfter == null ? "" : `; of ${count(x.park.asked)} asked, the next did not reach its gate within 30 s`})` : "–"),
    ),
    row(
      "kill -9 mid-sequence, then resume: first resumed task after (ms); ran twice / missing",
      rec ? `${fmt(ours.crash)} ms; ${recTwice} / ${recMissing} (N = ${count(res.recovery.n)})` : "–",
      sm?.recovery ? `${cell(sm.recovery.firstBody.median, ours.crash)}; ${Math.max(...sm.recovery.reps.map((x) => x.twice))} / ${Math.max(...sm.recovery.reps.map((x) => x.missing))} (N = ${sm.recovery.n}, \`--force\`)` : "–",
      (x, n) => {
        const c = x.crash;
        if (!c) return "–";
        if (n === "dagu" && c.resumeExit !== 0) return `\`dagu retry\` failed (exit ${c.resumeExit}: ${c.resumeStderr.split("\n").filter(Boolean).pop()?.replace(/\|/g, "/").slice(0, 140) ?? ""}); ${c.missing} of ${c.n} steps never ran`;
        return `${cell(c.firstBodyMs, ours.crash)}; ${c.twice + c.more} / ${c.missing} (N = ${count(c.n)})`;
      },
    ),
    row(
      "racing approvers: two approvals of one gate at once (runs whose downstream ran twice; what the second approver heard)",
      p.oursRace ? `${p.oursRace.ranTwice} of ${p.oursRace.k}; exit ${p.oursRace.approverExitCodes.join("/")} (${p.oursRace.loserCodes.join(", ") || "–"})` : "–",
      "–",
      (x, n) => (x.race ? `${x.race.ranTwice} of ${x.race.k}; ${n === "dagu" ? `HTTP ${x.race.approveStatuses.join("/")}` : `exit ${x.race.approverExitCodes.join("/")}`}` : "–"),
    ),
  ];
  const header = ["shape", "smithers-rs", `Smithers ${sm?.install?.versions?.smithers ?? PEER_VERSION}`, ...names.map((n) => `${PEER_NAMES[n]} ${peer(n)?.version ?? ""}`.trim())];
  const notes = [];
  for (const n of names) {
    const x = p.peers[n];
    if (!x?.available) notes.push(`**${PEER_NAMES[n]} unavailable**: ${x?.reason ?? "not run"}.`);
    else if (x.errors?.length) notes.push(`${PEER_NAMES[n]}: shapes that failed: ${x.errors.map((e) => `${e.shape} (${e.message.split("\n")[0].slice(0, 200)})`).join("; ")}.`);
  }
  const py = p.peers.dbos?.python ? ` on Python ${p.peers.dbos.python} (SQLite ${p.peers.dbos.sqlite})` : "";
  return [
    "\n## Against every peer (same run)\n",
    "Every figure in this table was measured in this run, on this machine. Medians unless said; (ours/theirs) below 1 means smithers-rs is faster. " +
      `DBOS and LangGraph${py} run from a venv the suite installs from PyPI (\`bench/peers-install.js\`), Dagu from the binary npm ships in \`@dagu-org/dagu-linux-x64\`; ` +
      "each shape is a driver process (`bench/peers/`). In process: DBOS `DBOS.send` to a workflow waiting in `recv` (its SQLite listener polls once a second), LangGraph `invoke(Command(resume))` of a StateGraph, " +
      "Dagu over its REST API (a process per run and per step). Sequences: DBOS steps in one workflow, LangGraph's functional API (`@task`s), Dagu a chain of `true` steps run by `dagu start`. " +
      "Racing approvers: two processes approve one waiting gate at the same moment, for each of the runs.\n",
    mdTable(header, rows),
    notes.length ? `\n${notes.join("\n\n")}\n` : "",
  ].join("\n");
}

// ---------------------------------------------------------------- markdown

function mdTable(header, rows, { left = 1 } = {}) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  const align = header.map((_, i) => (i < left ? "---" : "---:"));
  return [line(header), line(align), ...rows.map(line)].join("\n");
}

const s5 = (x) => [String(x.n), fmt(x.min), fmt(x.p50), fmt(x.p90), fmt(x.p99), fmt(x.max)];

function render(res) {
  const { env, build } = res;
  const parts = [];
  const peer = res.peer;
  parts.push("# smithers-rs benchmarks\n");
  parts.push(
    `Produced by \`npm run bench${res.full ? " -- --full" : ""}\` (bench/run.js) on ${res.date}. ` +
      "Times are milliseconds, shown as min / median / max over the repetitions given. " +
      "The machine is shared and noisy: read medians and ratios, not single figures.\n",
  );
  const peerLine = !peer
    ? "not run (`--no-peer` / `--only`)"
    : peer.available
      ? `${PEER_PACKAGE} ${peer.install.versions.smithers} on bun ${peer.install.versions.bun} (zod ${peer.install.versions.zod ?? "?"}), installed by the suite into \`${peer.install.root}\`${peer.install.cached ? " (cached from an earlier run)" : ` in ${fmt(peer.install.installMs / 1000)} s`}`
      : `**unavailable**: ${peer.reason}`;
  parts.push(
    mdTable(
      ["item", "value"],
      [
        ["date", res.date],
        ["machine", `${env.cpu}, ${env.cores} cores, ${fmt(env.memoryGiB, 1)} GiB, ${env.kernel}`],
        ["node", env.node],
        ["load average (1/5/15 min)", `at start ${res.loadavgStart.map((x) => x.toFixed(2)).join(" / ")}, at end ${res.loadavgEnd.map((x) => x.toFixed(2)).join(" / ")} (other work shares this machine)`],
        ["suite duration", `${fmt(res.durationS)} s`],
        ["native addon", `**${build.type}** (${build.sizeMB == null ? "?" : fmt(build.sizeMB, 1)} MB, \`${build.file.replace(`${ROOT}/`, "")}\`${build.builtNow ? ", built for this run" : ""}), engine ${build.engineVersion}; \`--addon=${build.asked ?? "?"}\``],
        ["mode", res.full ? "full (N up to 10,000; 100,000 waiting runs)" : "quick (N up to 1,000; 10,000 waiting runs); `--full` for the rest"],
        ["peak RSS", res.rssAvailable ? "GNU time (`/usr/bin/time -f %M`)" : "unavailable (GNU time missing)"],
        ["peer", peerLine],
      ],
      { left: 2 },
    ),
  );
  if (build.type === "debug build") parts.push("\n**These figures are for a debug build of the native addon** (dependencies optimised, our crates not); a release build is faster on the native side.\n");

  if (res.budgets.length) {
    parts.push("\n## Budgets (issue 6)\n");
    parts.push(mdTable(["budget", "measured", "result"], res.budgets.map((b) => [b.what, b.value, b.pass == null ? "n/a" : b.pass ? "met" : "**missed**"]), { left: 3 }));
    parts.push("\nReported, not asserted. Where the time goes and what was changed: `bench/README.md`.\n");
    const busy = Object.entries(res.load ?? {}).filter(([, l]) => Math.max(...l) > env.cores);
    if (busy.length) {
      parts.push(
        `The machine was busy during ${busy.map(([k, l]) => `${k} (1-min load ${l.map((x) => x.toFixed(1)).join(" → ")})`).join(", ")}, on ${env.cores} cores: ` +
          "other work shared the cores, which stretches start-up and whole-process figures (the CLI rows above all).\n",
      );
    }
  }

  const sbs = sideBySide(res);
  if (peer) {
    parts.push(`\n## Side by side with Smithers ${PEER_VERSION} (same run)\n`);
    if (!peer.available) {
      parts.push(`peer unavailable: ${peer.reason}. Our own figures follow.\n`);
    } else {
      parts.push(
        "Every peer figure below was measured in this run, on this machine, on the twin of our workflow (`bench/peer/`). " +
          "The peer costs tens of milliseconds per node, so its N stays at 10 and 100" +
          (res.full ? " (1,000 in --full)" : " in quick mode (1,000 with `--full`)") +
          ". Medians; ours/theirs below 1 means smithers-rs is faster or smaller.\n",
      );
      parts.push(mdTable(["figure", "smithers-rs", `Smithers ${PEER_VERSION}`, "ours/theirs", "note"], sbs.map((r) => [r.figure, `${fmt(r.ours)} ${r.unit}`, `${fmt(r.theirs)} ${r.unit}`, ratio(r.ours, r.theirs), r.note])));
      if (peer.recovery) {
        parts.push(
          `\nAfter kill -9 the peer refuses a plain \`up --resume\` (exit ${peer.recovery.plainResumeStatus.join("/")}, RUN_STILL_RUNNING until its heartbeat is 30 s old); the figures above use \`--force\`. ` +
            "`smithers resume` here needs no flag: the owner's pid is checked.\n",
        );
      }
      if (peer.errors?.length) parts.push(`\nPeer steps that failed: ${peer.errors.map((e) => `${e.step} (${e.message.split("\n")[0]})`).join("; ")}.\n`);
    }
  }

  if (res.peers) parts.push(everyPeer(res));

  if (res.pernode) {
    const p = res.pernode;
    parts.push("\n## 1. Per-node overhead\n");
    parts.push(
      "In-process: wall time of `engine.run(workflow)` (render, createRun, every step, until finished) on a fresh temp database each repetition; " +
        `repetitions ${p.sizes.map((n) => `N=${count(n)}: ${p.reps[n]}`).join(", ")}, after one warm-up run per shape. ` +
        "Peer: `runWorkflow` wall in one bun process, after a warm-up run.\n",
    );
    const peerRow = (r) => peer?.pernode?.find((x) => x.key === `${r.kind}-${r.shape}` && x.n === r.n);
    parts.push(
      mdTable(
        ["workflow", "N", "reps", "total ms", "ms/node", "peer ms/node", "ours/peer"],
        p.rows.map((r) => {
          const pr = peerRow(r);
          return [r.label, count(r.n), String(r.total.n), mmm(r.total), mmm(r.perNode), pr ? mmm(pr.perNode) : "–", ratio(r.perNode.median, pr?.perNode.median)];
        }),
      ),
    );
    parts.push("\nGrowth with N (per-node median at N over the one at N/10; up to 1.5 reads as linear, below 1 as fixed costs spreading out):\n");
    parts.push(
      mdTable(
        ["workflow", ...p.growth[0].steps.map((s) => `${count(s.from)} → ${count(s.to)}`), "marginal ms per added node (last step)", "linear?"],
        p.growth.map((g) => [g.label, ...g.steps.map((s) => s.perNodeRatio.toFixed(2)), fmt(g.steps.at(-1).marginalMs), g.steps.every((s) => s.linear) ? "yes (or better)" : "**no**"]),
      ),
    );
    if (p.reading) {
      parts.push(
        "\nRe-renders: a sequence whose render reads the previous task's output (`bench/workflows.js` `readingSequence`), " +
          "so the workflow is rendered after every task: N renders of N elements. Total wall of `engine.run`, the CPU time it took (the run is in-process); each size over the one before:\n",
      );
      parts.push(
        mdTable(
          ["workflow", "N", "reps", "total ms", "CPU ms", "ms/node", "total / total at the size before"],
          p.reading.map((r, i) => [r.label, count(r.n), String(r.total.n), mmm(r.total), r.cpu ? mmm(r.cpu) : "–", mmm(r.perNode), i ? ratio(r.total.median, p.reading[i - 1].total.median) : "–"]),
        ),
      );
    }
    parts.push(
      "\nWhole process (`node bench/one.js <kind> <shape> N`: Node start-up, module load, one run, exit)" +
        (peer?.processes ? `; peer: \`smithers up\` of the twin workflow, ${peer.processes[0].wall.n} run(s) each` : "") +
        ":\n",
    );
    const peerProc = (r) => peer?.processes?.find((x) => x.key === `${r.kind}-${r.shape}` && x.n === r.n);
    parts.push(
      mdTable(
        ["workflow", "N", "reps", "process wall ms", "engine ms", "peak RSS MB", "peer wall ms", "peer RSS MB", "ours/peer wall", "ours/peer RSS"],
        p.processes.map((r) => {
          const pp = peerProc(r);
          return [r.label, count(r.n), String(r.wall.n), mmm(r.wall), mmm(r.engine), r.rss ? mmm(r.rss) : "n/a", pp ? mmm(pp.wall) : "–", pp ? mmm(pp.rss) : "–", ratio(r.wall.median, pp?.wall.median), ratio(r.rss?.median, pp?.rss.median)];
        }),
      ),
    );
  }

  if (res.approve || res.crossproc) {
    parts.push("\n## 2. Decision latency: approve → downstream task started\n");
  }
  if (res.approve) {
    const a = res.approve;
    const pa = peer?.approve;
    parts.push(
      "In-process (`SmithersEngine.approve`): `<Approval id=\"gate\">` then a compute task whose body records `performance.now()`. " +
        `Each run is started and parks at the gate; t0 is taken just before \`engine.approve(runId)\`. ${a.n} runs after 20 warm-up runs, on one database that grows as it goes.` +
        (pa ? ` Peer: \`approveNode\`, then \`runWorkflow({ resume: true })\`, ${pa.n} runs.` : "") +
        "\n",
    );
    parts.push(
      mdTable(["interval", "n", "min", "p50", "p90", "p99", "max", "peer p50", "peer p99", "ours/peer p50"], [
        ["approve → downstream body starts", ...s5(a.toBody), fmt(pa?.toBody.p50), fmt(pa?.toBody.p99), ratio(a.toBody.p50, pa?.toBody.p50)],
        ["approve → run finished (`done` settles)", ...s5(a.toDone), fmt(pa?.toDone.p50), fmt(pa?.toDone.p99), ratio(a.toDone.p50, pa?.toDone.p50)],
        ["breakdown: record the decision only", ...s5(a.record), fmt(pa?.record.p50), fmt(pa?.record.p99), ratio(a.record.p50, pa?.record.p50)],
        ["breakdown: `engine.resume` → downstream body starts", ...s5(a.resumeToBody), "–", "–", "–"],
        ["start → parked at the gate (per run)", ...s5(a.park), fmt(pa?.park.p50), fmt(pa?.park.p99), ratio(a.park.p50, pa?.park.p50)],
      ]),
    );
  }
  if (res.crossproc) {
    const c = res.crossproc;
    const pc = peer?.cli?.approveResume;
    parts.push(
      "\nAcross processes: t0 is taken (epoch ms) just before the approving process is spawned; the downstream body appends its own epoch ms to a file. " +
        `${c.reps} runs each, after 2 warm-up runs.\n`,
    );
    parts.push(
      mdTable(["path", "n", "min", "p50", "p90", "p99", "max", "approving process wall, p50"], [
        ["a. `smithers approve <run>` (no engine running; the approving process resumes the run itself)", ...s5(c.withResume.toBody), fmt(c.withResume.wall.p50)],
        ["b. `smithers approve <run> --no-resume` while an engine process drives the run (a task runs beside the gate)", ...s5(c.liveEngine.toBody), fmt(c.liveEngine.wall.p50)],
        ["c. `smithers approve <run> --no-resume` while `smithers serve` runs on the database (the run is parked: nothing drives it)", ...s5(c.serve.toBody), fmt(c.serve.wall.p50)],
        ...(pc ? [["peer: `smithers approve`, then `smithers up --resume` (two processes)", ...s5(pc.toBody), `${fmt(pc.approveWall.p50)} + ${fmt(pc.resumeWall.p50)}`]] : []),
      ]),
    );
    parts.push(
      `\nPath b: the driver notices the commit through \`PRAGMA data_version\`, polled every 25 ms while bodies run; the approving process printed "${c.liveEngine.printed ?? "?"}". ` +
        "Path c: serve's watcher polls `PRAGMA data_version` on a connection of its own every 20 ms, finds the run `running` with no owner, loads its workflow file (once per file) and resumes it.\n",
    );
  }

  if (res.cli) {
    const c = res.cli;
    const pc = peer?.cli;
    parts.push(`\n## 3. The CLI as whole processes\n`);
    parts.push(
      `On a database of ${count(c.runs)} runs each waiting at one approval (created in-process in ${fmt(c.create.totalMs)} ms, p50 ${fmt(c.create.perRun.p50)} ms per run; ${fmt(c.dbMB)} MB with its WAL). ` +
        `Each command ran as \`node npm/smithers-rs/bin/smithers.js …\`${c.cpuAvailable ? " under `bench/rusage.py` (wall from spawn to exit; CPU time, user + system, and peak RSS from the process's rusage)" : c.rssAvailable ? " under `/usr/bin/time -f %M`" : ""}, in ${c.rounds} interleaved rounds after one warm-up round; ` +
        `each approve names a different run. After the rounds: ${c.after.waiting} runs waiting, ${c.after.finished} finished. ` +
        (c.node ? `Every process of this section ran on Node ${c.node}. ` : "") +
        "The .tsx rows run `bench/wf/gate.tsx` (a task, a gate, a task after it; JSON Schema outputs) and `gate-zod.tsx` (the same with zod, as Smithers workflows write it; its floor is Node importing zod): `up` parks a run at its gate, then `approve` of that run, in the same round, loads the file again and resumes it to its end. " +
        "Their compile cache is a folder of the suite's own, filled by the warm-up round; the empty-cache row gives every `up` a new one (a file's first run after an edit)." +
        (c.baseline ? ` Baseline rows: the CLI of \`${c.baseline}\` on the same database, in the same rounds.` : "") +
        (pc ? ` Peer: the same commands in a folder holding ${pc.parked} parked runs, ${pc.rounds} rounds; its floor is \`bun -e 0\`.` : "") +
        "\n",
    );
    const peerOf = { nodeFloor: "floor", version: "version", approveNoResume: "approve", ps: "ps", psWaiting50: "psWaiting50" };
    const floor = c.rows.find((r) => r.key === "nodeFloor");
    const zodFloor = c.rows.find((r) => r.key === "zodFloor");
    parts.push(
      mdTable(
        ["process", "n", "wall ms", "minus its floor in the same round (median): `node -e 0`, for zod rows Node importing zod", "CPU ms (user + sys), median", "CPU minus its floor (median)", "peak RSS MB", "peer wall ms", "peer RSS MB", "ours/peer wall", "ours/peer RSS"],
        c.rows.map((r) => {
          const t = pc?.rows[peerOf[r.key]];
          const own = /Zod/.test(r.key) ? (zodFloor ?? floor) : floor;
          const isFloor = r.key === "nodeFloor" || r.key === "zodFloor";
          return [
            r.label,
            String(r.wall.n),
            mmm(r.wall),
            r.key === "nodeFloor" ? "–" : signed(overFloor(r, own)),
            r.cpu ? fmt(r.cpu.median) : "n/a",
            r.cpu && !isFloor ? signed(cpuOverFloor(r, own)) : "–",
            r.rss ? mmm(r.rss) : "n/a",
            t ? mmm(t.wall) : "–",
            t ? mmm(t.rss) : "–",
            ratio(r.wall.median, t?.wall.median),
            ratio(r.rss?.median, t?.rss.median),
          ];
        }),
      ),
    );
    const big = res.waiting?.rows.filter((w) => w.cli) ?? [];
    if (big.length) {
      parts.push("\nOn the larger databases of section 4 (10 rounds each):\n");
      const rows = [];
      for (const w of big) {
        const fl = w.cli.find((r) => r.key === "nodeFloor");
        for (const r of w.cli) rows.push([count(w.n), r.label, String(r.wall.n), mmm(r.wall), r.key === "nodeFloor" ? "–" : signed(overFloor(r, fl)), r.rss ? mmm(r.rss) : "n/a"]);
      }
      parts.push(mdTable(["waiting runs", "process", "n", "wall ms", "minus `node -e 0` in the same round (median)", "peak RSS MB"], rows, { left: 2 }));
    }
  }

  if (res.waiting) {
    const w = res.waiting;
    parts.push("\n## 4. Many waiting runs\n");
    parts.push(
      "For each size, on a fresh database: one process starts the runs (`engine.start` of `bench/wf/approval.js`, awaiting each until it parks); " +
        "a second engine process opens the database with all of them pending and lists pages of 50 pending approvals (`engine.pendingApprovals({ limit: 50, offset })`, " +
        "the first page and the last, 30 calls each); a third approves every one (`engine.approve`, each resuming its run to the end). " +
        "Memory is the process's RSS after a forced GC (`--expose-gc`), and its peak RSS from GNU time.\n",
    );
    parts.push(
      mdTable(
        ["waiting runs", "create: total s", "create: ms/run p50 / p99", "DB MB (KB/run)", "creating process: RSS / JS heap used MB", "engine with all pending: RSS MB (peak)", "page of 50: first / last, ms p50", "`listRuns` page of 50, ms p50"],
        w.rows.map((r) => [
          count(r.n),
          fmt(r.create.totalMs / 1000),
          `${fmt(r.create.perRun.p50)} / ${fmt(r.create.perRun.p99)}`,
          `${fmt(r.dbMB)} (${fmt(r.dbKBPerRun)})`,
          `${fmt(r.create.after.rssMB)} / ${fmt(r.create.after.heapUsedMB)}`,
          `${fmt(r.hold.after.rssMB)} (${fmt(r.hold.peakRssMB)})`,
          `${fmt(r.hold.pageFirst.p50)} / ${fmt(r.hold.pageLast.p50)}`,
          fmt(r.hold.runsPage.p50),
        ]),
      ),
    );
    parts.push("\nApproving all of them, one process, one after another:\n");
    parts.push(
      mdTable(
        ["waiting runs", "approved", "list them all (pages of 10,000) ms", "total s", "record the decision, ms p50 / p99", "approve → run finished, ms p50 / p99", "process RSS / JS heap used MB after (peak RSS)", "DB MB after"],
        w.rows.map((r) => [
          count(r.n),
          count(r.approveAll.n),
          fmt(r.approveAll.listMs),
          fmt(r.approveAll.totalMs / 1000),
          `${fmt(r.approveAll.record.p50)} / ${fmt(r.approveAll.record.p99)}`,
          `${fmt(r.approveAll.done.p50)} / ${fmt(r.approveAll.done.p99)}`,
          `${fmt(r.approveAll.after.rssMB)} / ${fmt(r.approveAll.after.heapUsedMB)} (${fmt(r.approveAll.peakRssMB)})`,
          fmt(r.dbMBAfter),
        ]),
      ),
    );
    const a = w.rows[0];
    const b = w.rows.at(-1);
    const bytesPerRun = (samples) => (samples.length < 2 ? null : ((samples.at(-1).heapUsedMB - samples[0].heapUsedMB) * 2 ** 20) / (samples.at(-1).runs - samples[0].runs));
    const trace = (samples) => samples.map((x) => `${fmt(x.rssMB)}/${fmt(x.heapUsedMB)}`).join(", ");
    parts.push(
      `\nAn engine process over the pending runs holds nothing per run: RSS ${fmt(a.hold.after.rssMB)} MB with ${count(a.n)} pending, ${fmt(b.hold.after.rssMB)} MB with ${count(b.n)}. ` +
        `The processes that drove the runs settle at a higher, flat level (V8's committed heap, the loader thread that \`approve\` starts to load the workflow file). ` +
        `RSS/JS heap used (MB, after GC) at 20, 40, 60, 80, 100 % of the ${count(b.n)} runs: creating ${trace(b.create.samples)}; approving ${trace(b.approveAll.samples ?? [])}. ` +
        `The creating engine keeps each waiting run's workflow, so that an approve in that process resumes it without a file: ${count(b.create.trackedWorkflows)} entries after creating ${count(b.n)}, ` +
        `${fmt(bytesPerRun(b.create.samples))} bytes of JS heap a run (from 20 % to 100 %); the approving engine's heap: ${fmt(bytesPerRun(b.approveAll.samples ?? []))} bytes a run; ` +
        `the approving engine forgets a run's entry when the run ends (${count(b.approveAll.trackedWorkflows)} left).\n`,
    );
    parts.push(
      `\nPaging is \`LIMIT/OFFSET\` on the pending-approvals index: the first page costs the same at any size, a deep page grows with its offset ` +
        `(${fmt(b.hold.pageLast.p50)} ms at offset ${count(b.n - 50)} against ${fmt(b.hold.pageFirst.p50)} ms for the first). A keyset cursor (after the last row's requestedAt, runId, nodeId) would make every page cost the same; not done here.\n`,
    );
  }

  if (res.recovery) {
    const r = res.recovery;
    parts.push("\n## 5. Recovery after kill -9\n");
    parts.push(
      `\`smithers up bench/wf/recovery.js\`: a <Sequence> of ${count(r.n)} compute tasks, each appending its id to a side file. ` +
        "The process is killed with SIGKILL once a given share of the bodies has run; then the run is resumed, either by `smithers resume <run>` (a whole process, no `--force`) " +
        "or by `engine.resume` in a fresh process (the workflow file loaded beforehand). The side file then says how often each task ran; the run must be finished with every task finished.\n",
    );
    parts.push(
      mdTable(
        ["resume by", "killed after bodies", "resume ms", "remaining bodies", "first resumed body after ms", "ran once", "ran twice", "ran > twice", "missing", "peak RSS MB", "result"],
        r.reps.map((x) => [x.how === "cli" ? "`smithers resume`" : "`engine.resume`", count(x.killedAfter), fmt(x.resumeMs), count(x.remaining), fmt(x.firstBodyMs), count(x.once), String(x.twice), String(x.more), String(x.missing), fmt(x.rssMB), x.ok ? "ok" : "**FAILED**"]),
      ),
    );
    parts.push(
      `\n${r.allOk ? "Every completed task ran exactly once" : "**A check failed**"}; at most ${r.maxTwice} task per kill ran twice (the one in progress when the process died, whose result was never committed).\n`,
    );
    if (peer?.recovery) {
      const pr = peer.recovery;
      parts.push(
        `\nPeer (N = ${pr.n}, killed at half): plain \`up --resume\` exit ${pr.plainResumeStatus.join("/")}; \`up --resume --force\` ${mmm(pr.resume)} ms for the rest, first resumed body after ${mmm(pr.firstBody)} ms, ` +
          `ran twice ${pr.reps.map((x) => x.twice).join("/")}, missing ${pr.reps.map((x) => x.missing).join("/")}.\n`,
      );
    }
  }
  if (res.agents) {
    const a = res.agents;
    parts.push("\n## 6. Agent tasks over compute tasks\n");
    parts.push(
      `A <Sequence> of N agent tasks whose agent answers at once (its JSON in a fence: the answer is parsed, checked by the core and kept on the attempt with its prompt), ` +
        `against the same Sequence of compute tasks; in-process, a fresh database each run, ${a.reps} interleaved repetitions per N. ` +
        "\"over compute\" is the median of the paired differences per task. The ToolLoopAgent row is `ai`'s agent on its MockLanguageModelV3 (what the `ai` package adds on top).\n",
    );
    parts.push(
      mdTable(
        ["N", "compute ms/task", "agent ms/task", "agent over compute", "ToolLoopAgent ms/task", "ToolLoopAgent over compute"],
        a.rows.map((r) => [count(r.n), mmm(r.perKind.compute), mmm(r.perKind.agent), mmm(r.overhead), r.perKind.toolLoopAgent ? mmm(r.perKind.toolLoopAgent) : "–", r.aiOverhead ? mmm(r.aiOverhead) : "–"]),
      ),
    );
  }
  if (res.dagu) parts.push(renderDagu(res.dagu));
  if (res.postgres) parts.push(renderPostgres(res.postgres));
  if (res.workers) parts.push(workersSection.render(res.workers));
  return parts.join("\n");
}

function renderDagu(d) {
  const out = ["\n## 7. A Dagu DAG: ms per command step\n"];
  out.push(
    "A chain of `true` steps in Dagu's YAML (`type: graph`, each step `depends` on the one before), the same file for both. " +
      `Per-step overhead = (median wall of the ${d.lengths[1]}-step chain − median of the ${d.lengths[0]}-step one) / ${d.lengths[1] - d.lengths[0]}, so process start-up cancels out; ` +
      `${d.reps} interleaved rounds after a warm-up. Ours: \`smithers up chain.yaml\` as a whole process (a fresh database each), and \`engine.run\` in-process. ` +
      (d.dagu.available ? `Dagu: \`dagu start chain.yaml\` (${d.dagu.version}, the binary npm serves in ${"`"}@dagu-org/dagu-linux-x64${"`"}), in the same rounds.` : `Dagu could not run here (${d.dagu.reason}); its figure is the one measured on this machine earlier: ${d.reference.source}.`) +
      "\n",
  );
  const rows = [
    ["`smithers up` (whole process)", mmm(d.cli.walls[d.lengths[0]]), mmm(d.cli.walls[d.lengths[1]]), fmt(d.cli.perStepMs)],
    ["`engine.run` (in-process)", mmm(d.inproc.walls[d.lengths[0]]), mmm(d.inproc.walls[d.lengths[1]]), fmt(d.inproc.perStepMs)],
    d.dagu.available
      ? [`\`dagu start\` (${d.dagu.version})`, mmm(d.dagu.walls[d.lengths[0]]), mmm(d.dagu.walls[d.lengths[1]]), fmt(d.dagu.perStepMs)]
      : ["`dagu start` (reference, not run)", "–", "–", d.reference.cliMsPerStep.join("–")],
  ];
  out.push(mdTable(["runner", `${d.lengths[0]} step, wall ms`, `${d.lengths[1]} steps, wall ms`, "ms per step"], rows));
  const theirs = d.dagu.available ? d.dagu.perStepMs : d.reference.cliMsPerStep[0];
  out.push(`\nours/Dagu per step (whole process): ${ratio(d.cli.perStepMs, theirs)}. Each step is a \`/bin/sh -c true\` process in both; the rest is the engine.\n`);
  return out.join("\n");
}

function renderPostgres(p) {
  const out = ["\n## 8. PostgreSQL next to SQLite\n"];
  out.push(
    `The same in-process measurements on a PostgreSQL server on loopback (${p.version}; ${p.server}) and on a SQLite file, ` +
      `interleaved repetition by repetition, a fresh database (schema or file) each. Per node: \`engine.run\` of a <Sequence> of ${count(p.n)} tasks, median of ${p.reps}. ` +
      `Approve: \`engine.approve\` → the downstream task's body starts, ${p.approveRuns} runs after 10 warm-up. ` +
      "Every transition is a transaction with its round trips to the server (ARCHITECTURE.md, \"The store\").\n",
  );
  const rows = [];
  for (const c of [...new Set(p.rows.map((r) => r.label))]) {
    const at = (store) => p.rows.find((r) => r.label === c && r.store === store);
    rows.push([`${c}, ms per node`, mmm(at("sqlite").perNode), mmm(at("postgres").perNode), ratio(at("postgres").perNode.median, at("sqlite").perNode.median)]);
  }
  rows.push(["approve → downstream started, p50 ms", fmt(p.approve.sqlite.toBody.p50), fmt(p.approve.postgres.toBody.p50), ratio(p.approve.postgres.toBody.p50, p.approve.sqlite.toBody.p50)]);
  rows.push(["approve → downstream started, p99 ms", fmt(p.approve.sqlite.toBody.p99), fmt(p.approve.postgres.toBody.p99), ratio(p.approve.postgres.toBody.p99, p.approve.sqlite.toBody.p99)]);
  rows.push(["approve → run finished, p50 ms", fmt(p.approve.sqlite.toDone.p50), fmt(p.approve.postgres.toDone.p50), ratio(p.approve.postgres.toDone.p50, p.approve.sqlite.toDone.p50)]);
  out.push(mdTable(["figure", "SQLite", "PostgreSQL", "PostgreSQL/SQLite"], rows));
  return out.join("\n");
}

// ---------------------------------------------------------------- console

function consoleTable(res) {
  const rows = [];
  const add = (section, what, n, value, extra = "") => rows.push([section, what, String(n), value, extra]);
  if (res.pernode) {
    for (const r of res.pernode.rows) add("per-node", `${r.label} N=${r.n}`, r.total.n, `${mmm(r.perNode)} ms/node`, `total ${mmm(r.total)} ms`);
    for (const g of res.pernode.growth) add("growth", g.label, "", g.steps.map((s) => `${s.from}->${s.to} ${s.perNodeRatio.toFixed(2)}`).join(", "), g.steps.every((s) => s.linear) ? "linear or better" : "GROWS");
    for (const r of res.pernode.reading ?? []) add("re-render", `${r.label} N=${r.n}`, r.total.n, `total ${mmm(r.total)} ms`, `${mmm(r.perNode)} ms/node`);
    for (const r of res.pernode.processes) add("process", `${r.label} N=${r.n}`, r.wall.n, `${mmm(r.wall)} ms`, r.rss ? `RSS ${mmm(r.rss)} MB` : "RSS n/a");
  }
  if (res.approve) {
    const a = res.approve;
    add("approve", "in-process approve -> downstream body", a.toBody.n, `p50 ${fmt(a.toBody.p50)} p99 ${fmt(a.toBody.p99)} ms`);
    add("approve", "in-process approve -> run finished", a.toDone.n, `p50 ${fmt(a.toDone.p50)} p99 ${fmt(a.toDone.p99)} ms`);
  }
  if (res.crossproc) {
    const c = res.crossproc;
    add("crossproc", "smithers approve (resumes) -> body", c.withResume.toBody.n, `p50 ${fmt(c.withResume.toBody.p50)} p99 ${fmt(c.withResume.toBody.p99)} ms`);
    add("crossproc", "approve --no-resume, live engine -> body", c.liveEngine.toBody.n, `p50 ${fmt(c.liveEngine.toBody.p50)} p99 ${fmt(c.liveEngine.toBody.p99)} ms`);
    add("crossproc", "approve --no-resume, smithers serve -> body", c.serve.toBody.n, `p50 ${fmt(c.serve.toBody.p50)} p99 ${fmt(c.serve.toBody.p99)} ms`);
  }
  if (res.cli) for (const r of res.cli.rows) add("cli 1k", r.label.replace(/`/g, ""), r.wall.n, `${mmm(r.wall)} ms`, `${r.cpu ? `CPU ${fmt(r.cpu.median)} ms  ` : ""}${r.rss ? `RSS ${mmm(r.rss)} MB` : "RSS n/a"}`);
  if (res.waiting) {
    for (const w of res.waiting.rows) {
      add("waiting", `${count(w.n)} runs: create`, "", `${fmt(w.create.totalMs / 1000)} s`, `p50 ${fmt(w.create.perRun.p50)} ms/run, DB ${fmt(w.dbMB)} MB`);
      add("waiting", `${count(w.n)} runs: engine RSS`, "", `${fmt(w.hold.after.rssMB)} MB`, `peak ${fmt(w.hold.peakRssMB)} MB`);
      add("waiting", `${count(w.n)} runs: page of 50`, w.hold.pageFirst.n, `first ${fmt(w.hold.pageFirst.p50)} ms`, `last ${fmt(w.hold.pageLast.p50)} ms`);
      add("waiting", `${count(w.n)} runs: approve all`, "", `${fmt(w.approveAll.totalMs / 1000)} s`, `to finished p50 ${fmt(w.approveAll.done.p50)} ms`);
      for (const r of w.cli ?? []) add(`cli ${count(w.n)}`, r.label.replace(/`/g, ""), r.wall.n, `${mmm(r.wall)} ms`, r.rss ? `RSS ${mmm(r.rss)} MB` : "");
    }
  }
  if (res.timers) {
    for (const t of res.timers.rows) {
      add("timers", `${count(t.n)} gates with deadlines: fire all`, t.fire.perTimer.n, `${fmt(t.fire.perTimer.p50)} ms/timer p50`, `p99 ${fmt(t.fire.perTimer.p99)}, RSS ${fmt(t.fire.before.rssMB)} -> ${fmt(t.fire.after.rssMB)} MB`);
      add("timers", `${count(t.n)} gates with deadlines: first pages`, t.hold.pageFirst.n, `approvals ${fmt(t.hold.pageFirst.p50)} ms`, `listRuns ${fmt(t.hold.runsPage.p50)} ms${t.hold.pageKeysetLast ? `, last approvals page by cursor ${fmt(t.hold.pageKeysetLast.p50)} ms, by offset ${fmt(t.hold.pageLast.p50)} ms` : ""}`);
    }
  }
  if (res.postgres) {
    const p = res.postgres;
    for (const r of p.rows) add("postgres", `${r.label} N=${r.n} on ${r.store}`, r.total.n, `${mmm(r.perNode)} ms/node`, `total ${mmm(r.total)} ms`);
    for (const [store, a] of Object.entries(p.approve)) add("postgres", `approve -> downstream body on ${store}`, a.toBody.n, `p50 ${fmt(a.toBody.p50)} p99 ${fmt(a.toBody.p99)} ms`, `-> finished p50 ${fmt(a.toDone.p50)} ms`);
  }
  if (res.agents) {
    for (const r of res.agents.rows) {
      add("agents", `N=${count(r.n)}: agent task over compute task`, r.overhead.n, `${fmt(r.overhead.median)} ms/task`, r.aiOverhead ? `ToolLoopAgent: ${fmt(r.aiOverhead.median)} ms/task` : "");
    }
  }
  if (res.recovery) {
    const r = res.recovery.summary;
    add("recovery", "smithers resume after kill -9", r.cli.resume.n, `${mmm(r.cli.resume)} ms`, `first body ${fmt(r.cli.firstBody.median)} ms`);
    add("recovery", "engine.resume after kill -9", r.engine.resume.n, `${mmm(r.engine.resume)} ms`, `first body ${fmt(r.engine.firstBody.median)} ms`);
    add("recovery", "ran exactly once / at most twice", "", res.recovery.allOk ? "ok" : "FAILED", `max ran twice per kill: ${res.recovery.maxTwice}`);
  }
  if (res.dagu) {
    const d = res.dagu;
    add("dagu", "100-step command DAG: smithers up", d.reps, `${fmt(d.cli.perStepMs)} ms/step`, `in-process ${fmt(d.inproc.perStepMs)} ms/step`);
    add("dagu", d.dagu.available ? `same DAG: dagu start (${d.dagu.version})` : "same DAG: dagu start (reference, not run)", d.dagu.available ? d.reps : "", `${d.dagu.available ? fmt(d.dagu.perStepMs) : d.reference.cliMsPerStep.join("-")} ms/step`, d.dagu.available ? "" : d.dagu.reason);
  }
  if (res.workers) {
    for (const [store, s] of Object.entries(res.workers.stores)) {
      if (!s.available) {
        add("workers", `${store}: unavailable`, "", s.reason ?? "");
        continue;
      }
      for (const r of s.throughput) add("workers", `${store}: ${count(r.runs)} short runs, ${r.workers} worker(s)`, "", `${fmt(r.runsPerS)} runs/s`, `wall ${fmt(r.wallMs / 1000)} s, taken ${r.perWorker.join("/")}`);
      add("workers", `${store}: decision -> downstream body in a worker`, s.latency.reps, `p50 ${fmt(s.latency.p50)} p95 ${fmt(s.latency.p95)} ms`);
    }
  }
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => r[i].length), 4));
  const lines = [`smithers-rs benchmarks — ${res.date} — ${res.env.node} — ${res.build.type} — ${res.env.cpu}, ${res.env.cores} cores — ${res.full ? "full" : "quick"}`];
  for (const r of rows) lines.push(r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd());
  if (res.peer) {
    lines.push("");
    if (!res.peer.available) {
      lines.push(`peer unavailable: ${res.peer.reason}`);
    } else {
      lines.push(`side by side with Smithers ${res.peer.install.versions.smithers} (same run; ours/theirs):`);
      const sbs = sideBySide(res);
      const w = Math.max(...sbs.map((r) => r.figure.length));
      for (const r of sbs) lines.push(`  ${r.figure.replace(/`/g, "").padEnd(w)}  ${`${fmt(r.ours)} ${r.unit}`.padStart(11)}  ${`${fmt(r.theirs)} ${r.unit}`.padStart(11)}  ${ratio(r.ours, r.theirs).padStart(8)}`);
      if (res.peer.errors?.length) lines.push(`  peer steps that failed: ${res.peer.errors.map((e) => e.step).join(", ")}`);
    }
  }
  if (res.peers) {
    lines.push("", "every peer (same run):");
    if (res.peers.oursRace) lines.push(`  smithers-rs: racing approvers ran downstream twice in ${res.peers.oursRace.ranTwice} of ${res.peers.oursRace.k}`);
    for (const [n, x] of Object.entries(res.peers.peers)) {
      lines.push(
        x.available
          ? `  ${n} ${x.version}: per node ${fmt(x.pernode?.perNode.median)} ms (N=${x.pernode?.n ?? "–"}), approve->body p50 ${fmt(x.approve?.toBody.p50)} ms, park p50 ${fmt(x.park?.perRun.p50)} ms/run, ` +
              `after kill -9 first body ${fmt(x.crash?.firstBodyMs)} ms, racing approvers twice ${x.race?.ranTwice ?? "–"}/${x.race?.k ?? "–"}${x.errors?.length ? `; failed: ${x.errors.map((e) => e.shape).join(", ")}` : ""}`
          : `  ${n} unavailable: ${x.reason}`,
      );
    }
  }
  lines.push("");
  lines.push("budgets (issue 6; reported, not asserted):");
  for (const b of res.budgets) lines.push(`  ${b.pass == null ? "n/a   " : b.pass ? "met   " : "MISSED"}  ${b.what.replace(/`/g, "")}: ${b.value.replace(/`/g, "")}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------- main

async function main() {
  if (RENDER) {
    const res = JSON.parse(readFileSync(RENDER, "utf8"));
    res.budgets = budgets(res);
    console.log(consoleTable(res));
    if (WRITE) {
      writeFileSync(join(ROOT, "BENCHMARKS.md"), `${render(res)}\n`);
      log(`wrote BENCHMARKS.md from ${RENDER}`);
    }
    return;
  }
  const env = machine();
  const build = { ...(await buildInfo()), asked: ADDON.asked, builtNow: ADDON.built };
  log(`${build.type} (${fmt(build.sizeMB, 1)} MB ${build.file}); ${env.cpu}, ${env.cores} cores; node ${env.node}; ${FULL ? "full" : "quick"} mode`);
  const res = { date: new Date().toISOString(), full: FULL, env, build, loadavgStart: os.loadavg(), rssAvailable: checkRss() };
  for (const [name, section] of SECTIONS) {
    if (!want(name)) continue;
    const t0 = elapsedS();
    const load0 = os.loadavg()[0];
    res[name] = await section.run({ full: FULL, baseline: BASELINE && resolve(BASELINE), node: CLI_NODE && resolve(CLI_NODE), rounds: CLI_ROUNDS });
    // The 1-minute load average as the section starts and ends: whole-process figures
    // (start-up, the CLI) stretch when other work takes the cores.
    res.load = { ...res.load, [name]: [load0, os.loadavg()[0]] };
    log(`${name}: done in ${fmt(elapsedS() - t0)} s (load ${load0.toFixed(1)} -> ${os.loadavg()[0].toFixed(1)})`);
  }
  res.budgets = budgets(res);
  res.loadavgEnd = os.loadavg();
  res.durationS = elapsedS();

  console.log(consoleTable(res));
  const resultsDir = join(HERE, "results");
  mkdirSync(resultsDir, { recursive: true });
  const raw = join(resultsDir, `${res.date.replace(/[:.]/g, "-")}${FULL ? "-full" : ""}.json`);
  writeFileSync(raw, `${JSON.stringify(res, null, 2)}\n`);
  log(`raw results: ${raw}`);
  if (WRITE && ONLY === null) {
    writeFileSync(join(ROOT, "BENCHMARKS.md"), `${render(res)}\n`);
    log("wrote BENCHMARKS.md");
  } else if (WRITE) {
    log("--only given: BENCHMARKS.md left as it is");
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
