// The fault suite (issue 12): kill -9 at random points of sequences, parallel sets and command
// tasks, then resume — every completed task ran exactly once, every extra run matches an
// abandoned attempt; 8 processes racing decisions on 100 gates — one winner each, every loser
// told who won. (Poisoned results and thrown values of every kind: tests/poison.test.js.)
//
// Bounded for CI: a few trials per shape, each a few seconds; the seed is printed, and
// SMITHERS_FAULT_SEED=<n> replays a run, SMITHERS_FAULT_TRIALS=<n> runs more trials per shape.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { PKG_INDEX_URL, freshDir, killAll, removeDirs, spawnNode, writeIn } from "./helpers/durability.js";

after(() => {
  killAll();
  removeDirs();
});

const SEED = Number(process.env.SMITHERS_FAULT_SEED ?? Date.now() % 1_000_000);
const TRIALS = Number(process.env.SMITHERS_FAULT_TRIALS ?? 3);
const KILLS_PER_TRIAL = 3;

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const totals = { trials: 0, kills: 0, tasks: 0, abandoned: 0, reruns: 0, decisions: 0, gates: 0, losersTold: 0 };

after(() => {
  console.log(
    `fault suite (seed ${SEED}): ${totals.trials} kill -9 trials, ${totals.kills} kills, ${totals.tasks} completed tasks each run once, ` +
      `${totals.abandoned} abandoned attempts, ${totals.reruns} re-runs (each of an abandoned attempt); ` +
      `${totals.decisions} racing decisions on ${totals.gates} gates, one winner each, ${totals.losersTold} losers told who won`,
  );
});

/**
 * The workflows, as builder files. Every body appends `<node> <attempt|-> <pid>` to $EFFECTS
 * before it returns: what ran, in which process. Compute bodies wait a random few ms so kills
 * land while they are in flight; command tasks say which attempt they are.
 */
const SHAPES = {
  sequence: (n) => `import { fields, sequence, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
import { appendFileSync } from "node:fs";
const mark = (id) => appendFileSync(process.env.EFFECTS, \`\${id} - \${process.pid}\\n\`);
const steps = Array.from({ length: ${n} }, (_, i) => task(\`s\${i}\`, { output: fields({ v: "number" }), table: "step",
  run: async () => { mark(\`s\${i}\`); await new Promise((r) => setTimeout(r, Math.random() * 4)); return { v: i }; } }));
export default workflow({ name: "fault-sequence", steps: [sequence(...steps)] });
`,
  parallel: (n) => `import { fields, parallel, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
import { appendFileSync } from "node:fs";
const mark = (id) => appendFileSync(process.env.EFFECTS, \`\${id} - \${process.pid}\\n\`);
const tasks = Array.from({ length: ${n} }, (_, i) => task(\`p\${i}\`, { output: fields({ v: "number" }), table: "step",
  run: async () => { mark(\`p\${i}\`); await new Promise((r) => setTimeout(r, 5 + Math.random() * 40)); return { v: i }; } }));
export default workflow({ name: "fault-parallel", steps: [parallel(tasks, { maxConcurrency: 16 })] });
`,
  command: (n) => `import { sequence, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
const steps = Array.from({ length: ${n} }, (_, i) => task(\`c\${i}\`, { table: "cmd",
  command: 'echo "$SMITHERS_NODE_ID $SMITHERS_ATTEMPT $PPID" >> "$EFFECTS"; sleep 0.0$(($$ % 5))' }));
export default workflow({ name: "fault-command", steps: [sequence(...steps)] });
`,
};
const SIZES = { sequence: 150, parallel: 120, command: 25 };

/** Starts the run, or resumes it after a kill: one driver process. */
const DRIVER = `import { SmithersEngine } from ${JSON.stringify(PKG_INDEX_URL)};
const [db, runId, file] = process.argv.slice(2);
const engine = new SmithersEngine({ dbPath: db });
let exists = true;
try { engine.getRun(runId); } catch { exists = false; }
const result = exists ? await engine.resume(runId) : await engine.run(file, { runId });
console.log("RESULT " + JSON.stringify(result));
engine.close();
`;

/** Items by key (Map.groupBy is Node 21+). */
function groupBy(items, key) {
  const out = new Map();
  for (const item of items) {
    const k = key(item);
    if (!out.has(k)) out.set(k, []);
    out.get(k).push(item);
  }
  return out;
}

function effectsOf(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [node, attempt, pid] = line.split(" ");
      return { node, attempt: attempt === "-" ? null : Number(attempt), pid: Number(pid) };
    });
}

async function killTrial(shape, seed) {
  const random = rng(seed);
  const dir = freshDir(`smithers-fault-${shape}-`);
  const db = join(dir, "smithers.db");
  const effects = join(dir, "effects.txt");
  const wf = writeIn(dir, `${shape}.js`, SHAPES[shape](SIZES[shape]));
  const driver = writeIn(dir, "driver.mjs", DRIVER);
  const runId = `fault-${shape}-${seed}`;
  const env = { EFFECTS: effects };
  let kills = 0;
  for (let k = 0; k < KILLS_PER_TRIAL; k++) {
    const child = spawnNode([driver, db, runId, wf], { cwd: dir, env });
    // A random point of the run: once a random number more bodies have run (a few ms of
    // jitter after that), whatever is in flight then.
    const target = effectsOf(effects).length + 1 + Math.floor(random() * (SIZES[shape] / (KILLS_PER_TRIAL + 1)));
    const jitter = Math.floor(random() * 15);
    let ended = false;
    child.done.then(() => {
      ended = true;
    });
    while (!ended && effectsOf(effects).length < target) await new Promise((r) => setTimeout(r, 3));
    if (!ended) await new Promise((r) => setTimeout(r, jitter));
    if (ended) break; // it finished before the kill: nothing more to interrupt
    child.child.kill("SIGKILL");
    await child.done;
    kills += 1;
  }
  const last = await spawnNode([driver, db, runId, wf], { cwd: dir, env }).done;
  assert.equal(last.code, 0, `the final resume failed (seed ${seed}):\n${last.stdout}\n${last.stderr}`);
  const result = JSON.parse(last.stdout.split("\n").find((l) => l.startsWith("RESULT ")).slice(7));
  assert.equal(result.status, "finished", `seed ${seed}: ${JSON.stringify(result)}`);

  const engine = new SmithersEngine({ dbPath: db });
  let info;
  let events;
  try {
    info = engine.inspect(runId);
    events = engine.events(runId, { limit: 100_000 });
  } finally {
    engine.close();
  }
  const ran = effectsOf(effects);
  const byNode = groupBy(ran, (e) => e.node);
  const abandonedOf = groupBy(events.filter((e) => e.type === "NodeAbandoned"), (e) => e.nodeId);
  const finishedOf = groupBy(events.filter((e) => e.type === "NodeFinished"), (e) => e.nodeId);
  let abandoned = 0;
  let reruns = 0;
  for (const node of info.nodes) {
    const id = node.nodeId;
    const runs = byNode.get(id) ?? [];
    const gone = (abandonedOf.get(id) ?? []).map((e) => e.attempt);
    const finished = finishedOf.get(id) ?? [];
    assert.equal(node.state, "finished", `seed ${seed}: ${id} is ${node.state}`);
    assert.equal(finished.length, 1, `seed ${seed}: ${id} finished ${finished.length} times`);
    assert.ok(runs.length >= 1, `seed ${seed}: ${id} finished without running`);
    // Every run of a body beyond the one that finished is an attempt that was abandoned.
    assert.ok(runs.length <= 1 + gone.length, `seed ${seed}: ${id} ran ${runs.length} times with ${gone.length} abandoned attempts`);
    if (shape === "command") {
      // Commands say their attempt: each is the finished one (exactly once) or an abandoned one.
      const done = finished[0].attempt;
      assert.equal(runs.filter((r) => r.attempt === done).length, 1, `seed ${seed}: ${id} attempt ${done} ran ${runs.filter((r) => r.attempt === done).length} times`);
      for (const r of runs) assert.ok(r.attempt === done || gone.includes(r.attempt), `seed ${seed}: ${id} ran as attempt ${r.attempt}, neither finished nor abandoned`);
    } else {
      // No process ran a body twice: the repeats are across processes, one per abandonment.
      assert.equal(new Set(runs.map((r) => r.pid)).size, runs.length, `seed ${seed}: ${id} ran twice in one process`);
    }
    abandoned += gone.length;
    reruns += runs.length - 1;
  }
  assert.equal(info.nodes.length, SIZES[shape]);
  return { kills, tasks: info.nodes.length, abandoned, reruns };
}

describe("kill -9 at random points, then resume", { concurrency: 3, timeout: 600_000 }, () => {
  for (const shape of Object.keys(SHAPES)) {
    for (let trial = 0; trial < TRIALS; trial++) {
      const seed = SEED + trial * 7919 + shape.length * 104_729;
      test(`${shape} of ${SIZES[shape]} (seed ${seed}): completed tasks ran once, re-runs are abandoned attempts`, async (t) => {
        const r = await killTrial(shape, seed);
        t.diagnostic(`${r.kills} kills, ${r.abandoned} abandoned attempts, ${r.reruns} re-runs`);
        totals.trials += 1;
        totals.kills += r.kills;
        totals.tasks += r.tasks;
        totals.abandoned += r.abandoned;
        totals.reruns += r.reruns;
      });
    }
  }
});

describe("8 processes racing decisions on 100 gates", { timeout: 300_000 }, () => {
  test("one winner per gate; every loser is told who won; nothing is overwritten", async () => {
    const GATES = 100;
    const RACERS = 8;
    const dir = freshDir("smithers-fault-race-");
    const db = join(dir, "smithers.db");
    const wf = writeIn(
      dir,
      "gates.js",
      `import { approval, parallel, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
export default workflow({ name: "race", steps: [parallel(Array.from({ length: ${GATES} }, (_, i) => approval(\`g\${i}\`, { table: "gate", request: { title: \`gate \${i}\` } })))] });
`,
    );
    const engine = new SmithersEngine({ dbPath: db });
    const { runId, done } = await engine.start(wf);
    assert.equal((await done).status, "waiting-approval");
    engine.close();

    const racer = writeIn(
      dir,
      "racer.mjs",
      `import { SmithersEngine } from ${JSON.stringify(PKG_INDEX_URL)};
const [db, runId, me, seed] = process.argv.slice(2);
let s = Number(seed);
const random = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
const order = Array.from({ length: ${GATES} }, (_, i) => i).sort(() => random() - 0.5);
const engine = new SmithersEngine({ dbPath: db });
// All racers start together: each waits for the go file.
const { existsSync } = await import("node:fs");
while (!existsSync(process.env.GO)) await new Promise((r) => setTimeout(r, 5));
const out = {};
for (const i of order) {
  try {
    const r = await engine.approve(runId, { nodeId: \`g\${i}\`, decidedBy: me, resume: false });
    out[\`g\${i}\`] = { won: true, decidedBy: r.decidedBy };
  } catch (e) {
    out[\`g\${i}\`] = { won: false, code: e.code, decidedBy: e.details?.decidedBy ?? null };
  }
}
console.log("RESULT " + JSON.stringify(out));
engine.close();
`,
    );
    const go = join(dir, "go");
    const children = Array.from({ length: RACERS }, (_, i) => spawnNode([racer, db, runId, `racer-${i}`, String(SEED + i)], { cwd: dir, env: { GO: go } }));
    await new Promise((r) => setTimeout(r, 500));
    writeIn(dir, "go", "");
    const outs = [];
    for (const c of children) {
      const r = await c.done;
      assert.equal(r.code, 0, r.stderr);
      outs.push(JSON.parse(r.stdout.split("\n").find((l) => l.startsWith("RESULT ")).slice(7)));
    }
    const check = new SmithersEngine({ dbPath: db });
    let info;
    try {
      info = check.inspect(runId);
    } finally {
      check.close();
    }
    let losers = 0;
    for (let g = 0; g < GATES; g++) {
      const id = `g${g}`;
      const winners = outs.map((o, i) => ({ o: o[id], who: `racer-${i}` })).filter((x) => x.o.won);
      assert.equal(winners.length, 1, `${id} has ${winners.length} winners`);
      const winner = winners[0].who;
      const row = info.approvals.find((a) => a.nodeId === id);
      assert.equal(row.status, "approved");
      assert.equal(row.decidedBy, winner, `${id}: the stored decider is the winner`);
      for (const o of outs) {
        if (o[id].won) continue;
        assert.equal(o[id].code, "ALREADY_DECIDED", `${id}: a loser got ${o[id].code}`);
        assert.equal(o[id].decidedBy, winner, `${id}: a loser was told ${o[id].decidedBy}, not ${winner}`);
        losers += 1;
      }
    }
    assert.equal(losers, GATES * (RACERS - 1));
    totals.decisions += GATES * RACERS;
    totals.gates += GATES;
    totals.losersTold += losers;
    // The run then goes on once, to its end.
    const resume = new SmithersEngine({ dbPath: db });
    try {
      assert.equal((await resume.resume(runId)).status, "finished");
    } finally {
      resume.close();
    }
  });
});
