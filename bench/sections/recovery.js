// 5. Recovery: `smithers up` of a <Sequence> of 1,000 compute tasks, each appending its id to a
// side file; kill -9 part-way (at 30 %, 50 %, 70 % of the tasks, by the side file); then resume
// (`smithers resume` as a whole process, or engine.resume in a fresh process) and check that
// every task ran, and ran once: only the task in progress at the kill may run twice.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { CLI, HERE, fmt, log, measureProcess, removeDir, runJson, sleep, startProcess, stats, tempDir } from "../lib.js";

const WF = join(HERE, "wf/recovery.js");
const CHILD = join(HERE, "child.js");

function lines(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => {
    const [id, pid, at] = l.split(" ");
    return { id, pid: Number(pid), at: Number(at) };
  });
}

/** Starts the run with `smithers up`, kills it with SIGKILL once `killAt` tasks have run. */
async function startAndKill(db, side, n, runId, killAt) {
  const input = JSON.stringify({ n, side });
  const { child, done } = startProcess(process.execPath, [CLI, "up", WF, "--input", input, "--run-id", runId, "--db", db, "--json"], { rss: false });
  // Poll the side file; a task takes well under a millisecond, so poll tightly.
  for (;;) {
    if (lines(side).length >= killAt) break;
    if (child.exitCode !== null) break;
    await sleep(1);
  }
  child.kill("SIGKILL");
  const r = await done;
  if (r.signal !== "SIGKILL") throw new Error(`recovery: the run ended before the kill (exit ${r.status}): ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
  return lines(side).length;
}

function verify(db, runId, side, n) {
  const all = lines(side);
  const times = new Map();
  for (const l of all) times.set(l.id, (times.get(l.id) ?? 0) + 1);
  let once = 0;
  let twice = 0;
  let more = 0;
  for (const c of times.values()) {
    if (c === 1) once++;
    else if (c === 2) twice++;
    else more++;
  }
  const engine = new SmithersEngine({ dbPath: db });
  let info;
  try {
    info = engine.inspect(runId);
  } finally {
    engine.close();
  }
  const finishedNodes = info.nodes.filter((x) => x.state === "finished").length;
  const retried = info.nodes.filter((x) => x.attempts > 1).length;
  return { status: info.run.status, finishedNodes, bodies: all.length, once, twice, more, missing: n - times.size, retried };
}

export async function run({ full }) {
  const N = 1000;
  const plan = [
    { how: "cli", killAt: 0.3 },
    { how: "cli", killAt: 0.5 },
    { how: "cli", killAt: 0.7 },
    { how: "engine", killAt: 0.5 },
    { how: "engine", killAt: 0.5 },
  ];
  if (full) plan.push({ how: "cli", killAt: 0.5 }, { how: "cli", killAt: 0.9 }, { how: "engine", killAt: 0.3 });
  const reps = [];
  for (const [k, p] of plan.entries()) {
    const dir = tempDir("recovery");
    const db = join(dir, "smithers.db");
    const side = join(dir, "side.txt");
    writeFileSync(side, "");
    const runId = `rec${k}`;
    try {
      const killedAfter = await startAndKill(db, side, N, runId, Math.round(p.killAt * N));
      const killPid = lines(side)[0]?.pid;
      let resumeMs;
      let rssMB = null;
      let startedAt;
      if (p.how === "cli") {
        startedAt = performance.timeOrigin + performance.now();
        const r = measureProcess(process.execPath, [CLI, "resume", runId, "--db", db, "--json"]);
        if (r.status !== 0) throw new Error(`smithers resume exited ${r.status}: ${r.stderr}${r.stdout}`);
        resumeMs = r.wallMs;
        rssMB = r.rssMB;
      } else {
        const r = runJson(process.execPath, [CHILD, "resume", db, runId, WF]);
        if (r.json.status !== "finished") throw new Error(`engine.resume ended ${r.json.status}`);
        resumeMs = r.json.resumeMs;
        startedAt = r.json.startedAt;
      }
      const after = lines(side).filter((l) => l.pid !== killPid);
      const firstBodyMs = after.length > 0 ? after[0].at - startedAt : null;
      const check = verify(db, runId, side, N);
      const rep = { how: p.how, killAt: p.killAt, killedAfter, remaining: after.length, resumeMs, rssMB, firstBodyMs, ...check };
      rep.ok = check.status === "finished" && check.finishedNodes === N && check.missing === 0 && check.more === 0 && check.twice <= 1;
      reps.push(rep);
      log(
        `recovery: ${p.how} resume after kill -9 at ${killedAfter}/${N} bodies: ${fmt(resumeMs)} ms for ${after.length} bodies, ` +
          `first body after ${fmt(firstBodyMs)} ms; ran once ${check.once}, twice ${check.twice}, more ${check.more}, missing ${check.missing}: ${rep.ok ? "OK" : "FAILED"}`,
      );
    } finally {
      removeDir(dir);
    }
  }
  const of = (how) => reps.filter((r) => r.how === how);
  return {
    n: N,
    reps,
    summary: Object.fromEntries(
      ["cli", "engine"].map((how) => [
        how,
        {
          resume: stats(of(how).map((r) => r.resumeMs)),
          perRemaining: stats(of(how).map((r) => r.resumeMs / Math.max(1, r.remaining))),
          firstBody: stats(of(how).map((r) => r.firstBodyMs)),
          rss: stats(of(how).map((r) => r.rssMB)),
        },
      ]),
    ),
    allOk: reps.every((r) => r.ok),
    maxTwice: Math.max(...reps.map((r) => r.twice)),
  };
}
