// The CLI's short path (src/cli/fast.cjs: `approve`/`deny --no-resume`, `ps`) must print exactly
// what the full CLI prints, with the same exit code, and hand everything else to the full CLI.
// Each case runs once as is and once with SMITHERS_CLI_FULL=1 (the full CLI), on two runs
// parked in the same state, and compares the two.
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO, sandbox, smithers } from "./helpers/cli.js";
import { Approval, HumanTask, Parallel, Sequence, SmithersEngine, Task, approvalDecisionSchema, commandResultSchema, createSmithers } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";

const TRACE = join(REPO, "tests/helpers/trace-imports.js");
const MAIN = "/npm/smithers-rs/src/cli/main.js";
/** The full CLI from the bundle (bin/smithers.js uses it when it is up to date). */
const BUNDLE = "/npm/smithers-rs/dist/smithers.cjs";

const { Workflow, smithers: build, outputs } = createSmithers({
  gate: approvalDecisionSchema,
  value: { type: "object", properties: { i: { type: "integer" } }, required: ["i"] },
  cmd: commandResultSchema,
  answer: { type: "object", properties: { score: { type: "integer" }, ok: { type: "boolean" } }, required: ["score", "ok"], additionalProperties: false },
});

/** <Approval id="gate"> then a task; and two gates side by side (ambiguous without --node). */
const wf = {
  one: build(() =>
    jsx(Workflow, {
      name: "fast-one",
      children: jsx(Sequence, {
        children: [jsx(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" } }, "gate"), jsx(Task, { id: "after", output: outputs.value, children: { i: 1 } }, "after")],
      }),
    }),
  ),
  // A reviewed step (a command task with approval): it waits for review after it ran.
  review: build(() =>
    jsx(Workflow, {
      name: "fast-review",
      children: jsx(Task, { id: "step", output: outputs.cmd, command: "true", approval: { prompt: "Keep it?" } }, "step"),
    }),
  ),
  // A human task: its answer is its output, JSON valid for the schema.
  human: build(() =>
    jsx(Workflow, {
      name: "fast-human",
      children: jsx(HumanTask, { id: "ask", output: outputs.answer, prompt: "Score it", maxAttempts: 2 }, "ask"),
    }),
  ),
  two: build(() =>
    jsx(Workflow, {
      name: "fast-two",
      children: jsx(Parallel, {
        children: [jsx(Approval, { id: "left", output: outputs.gate, request: { title: "Left?" } }, "left"), jsx(Approval, { id: "right", output: outputs.gate, request: { title: "Right?" } }, "right")],
      }),
    }),
  ),
};

/** Runs the CLI, recording which ES modules it loaded. */
async function cli(args, { full = false, db, cwd } = {}) {
  const trace = join(box.dir, `trace-${Math.random().toString(36).slice(2)}`);
  const env = { NODE_OPTIONS: `--import=${TRACE}`, SMITHERS_TRACE_IMPORTS: trace, ...(full ? { SMITHERS_CLI_FULL: "1" } : { SMITHERS_CLI_FULL: "" }) };
  const r = await smithers(args, { db, cwd, env });
  const loaded = existsSync(trace) ? readFileSync(trace, "utf8") : "";
  rmSync(trace, { force: true });
  return { ...r, fullCli: loaded.includes(MAIN) || loaded.includes(BUNDLE) };
}

let box;
let serial = 0;

/** Parks a fresh run of `kind` and returns its id; `round2`: pushed back once, waiting again. */
async function park(kind = "one") {
  const engine = new SmithersEngine({ dbPath: box.db });
  try {
    const runId = `r${++serial}`;
    let r = await engine.run(wf[kind === "round2" ? "review" : kind], { runId });
    assert.equal(r.status, "waiting-approval");
    if (kind === "round2") {
      const pushed = await engine.pushBack(runId, { nodeId: "step", decidedBy: "eve" });
      r = await pushed.done;
      assert.equal(r.status, "waiting-approval");
    }
    return runId;
  } finally {
    engine.close();
  }
}

const swap = (text, from, to) => text.split(from).join(to);

/** Same exit code and output from both paths; for decisions each path gets its own run. */
async function same(args, { db = true, cwd, kind, jsonWithout = [], expectFast = true } = {}) {
  const a = kind ? await park(kind) : null;
  const b = kind ? await park(kind) : null;
  const fill = (id) => args.map((x) => (x === "RUN" ? id : x));
  const opts = { db: db ? box.db : undefined, cwd };
  const fast = await cli(fill(a), opts);
  const full = await cli(fill(b), { ...opts, full: true });
  assert.equal(full.fullCli, true, "SMITHERS_CLI_FULL=1 runs the full CLI");
  assert.equal(fast.fullCli, !expectFast, `${args.join(" ")}: ${expectFast ? "the short path" : "the full CLI"} was expected`);
  assert.equal(fast.code, full.code, `exit codes differ\nfast: ${fast.stdout}${fast.stderr}\nfull: ${full.stdout}${full.stderr}`);
  const norm = (r, id) => {
    if (r.json && jsonWithout.length) {
      const j = structuredClone(r.json);
      for (const k of jsonWithout) delete j[k];
      if (j.output?.value) delete j.output.value.decidedAt;
      return swap(JSON.stringify(j), id ?? "\0", "RUN");
    }
    return swap(r.stdout, id ?? "\0", "RUN");
  };
  assert.equal(norm(fast, a), norm(full, b));
  assert.equal(swap(fast.stderr, a ?? "\0", "RUN"), swap(full.stderr, b ?? "\0", "RUN"));
  return { fast, full };
}

describe("smithers CLI short path", { concurrency: 1 }, () => {
  before(async () => {
    box = sandbox("smithers-fast-");
  });
  after(() => box.cleanup());

  test("approve --no-resume: same text, exit 0, without the full CLI", async () => {
    const { fast } = await same(["approve", "RUN", "--no-resume", "--by", "alice", "--note", "ok"], { kind: "one" });
    assert.equal(fast.code, 0);
    assert.match(fast.stdout, /^approved gate in run r\d+ by alice\nrun r\d+: running\nnot resumed; run: npx smithers resume r\d+ --db \S+\n$/);
  });

  test("approve <runId> <nodeId> --no-resume (the node as a second word): same text, the short path", async () => {
    const { fast } = await same(["approve", "RUN", "left", "--no-resume", "--by", "carol"], { kind: "two" });
    assert.match(fast.stdout, /^approved left in run r\d+ by carol$/m);
    await same(["approve", "RUN", "left", "--node", "right", "--no-resume"], { kind: "two", expectFast: false });
  });

  test("a human task's answer: refused (exit 1, an attempt used) and accepted, the same on both paths", async () => {
    const bad = await same(["approve", "RUN", "ask", "--no-resume", "--note", '{"score":"high","ok":true}'], { kind: "human" });
    assert.equal(bad.fast.code, 1);
    assert.match(bad.fast.stderr, /HUMAN_TASK_VALIDATION_FAILED/);
    assert.match(bad.fast.stdout, /^answer 1 of 2 for ask refused; it waits for another answer \(1 left\)$/m);
    const json = await same(["approve", "RUN", "ask", "--no-resume", "--note", "not json", "--json"], { kind: "human", jsonWithout: ["decidedAt"] });
    assert.equal(json.fast.json.error.code, "HUMAN_TASK_INVALID_JSON");
    const good = await same(["approve", "RUN", "ask", "--no-resume", "--input", "score=7", "--input", "ok=true"], { kind: "human", expectFast: false });
    assert.equal(good.fast.code, 0);
    const note = await same(["approve", "RUN", "ask", "--no-resume", "--note", '{"score":7,"ok":true}', "--by", "kim"], { kind: "human" });
    assert.match(note.fast.stdout, /^approved ask in run r\d+ by kim$/m);
  });

  test("deny --no-resume --json: same JSON (but the decision time)", async () => {
    const { fast } = await same(["deny", "RUN", "--no-resume", "--reason", "no", "--by", "bob", "--json"], { kind: "one", jsonWithout: ["decidedAt"] });
    assert.equal(fast.json.status, "denied");
    assert.equal(fast.json.run, null);
  });

  test("approve --no-resume -n NODE --scope, with the database found from the working directory", async () => {
    const { fast } = await same(["approve", "RUN", "-n", "left", "--no-resume", "--scope", "ops", "--by", "carol"], { kind: "two", db: false, cwd: box.dir });
    assert.doesNotMatch(fast.stdout, /--db/, "the database is ./smithers.db: the printed command needs no --db");
  });

  test("reviewed steps: approve in round 2, reject with a reason; reject and push-back themselves are the full CLI's", async () => {
    const { fast } = await same(["approve", "RUN", "--no-resume", "--by", "fay"], { kind: "round2" });
    assert.match(fast.stdout, /^approved step \(round 2\) in run r\d+ by fay$/m);
    await same(["deny", "RUN", "--no-resume", "--reason", "wrong table", "--json"], { kind: "review", jsonWithout: ["decidedAt"] });
    await same(["reject", "RUN", "--no-resume", "--reason", "no"], { kind: "review", expectFast: false });
    await same(["push-back", "RUN", "--no-resume", "--node", "step"], { kind: "review", expectFast: false });
    await same(["approve", "RUN", "--no-resume", "--input", "X=1"], { kind: "review", expectFast: false });
  });

  test("errors go to the full CLI: ambiguous gate, unknown run, decided twice", async () => {
    await same(["approve", "RUN", "--no-resume"], { kind: "two", expectFast: false });
    await same(["approve", "nope", "--no-resume", "--json"], { expectFast: false });
    const id = await park("one");
    await cli(["approve", id, "--no-resume"], { db: box.db });
    const again = await cli(["approve", id, "--no-resume"], { db: box.db });
    const againFull = await cli(["approve", id, "--no-resume"], { db: box.db, full: true });
    assert.equal(again.fullCli, true);
    assert.equal(again.code, againFull.code);
    assert.equal(again.stderr, againFull.stderr);
  });

  test("flags and values the short path does not take go to the full CLI", async () => {
    await same(["approve", "RUN", "--no-resume", "--iteration", "x"], { kind: "one", expectFast: false });
    await same(["approve", "RUN", "--no-resume", "--decision", "{"], { kind: "one", expectFast: false });
    await same(["approve", "RUN", "--no-resume", "--input", "{}"], { kind: "one", expectFast: false });
    await same(["approve", "RUN", "--no-resume", "--help"], { kind: "one", expectFast: false });
    await same(["ps", "--status", "bogus"], { expectFast: false });
    await same(["ps", "--limit", "0"], { expectFast: false });
    await same(["ps", "extra"], { expectFast: false });
  });

  test("approve without --no-resume is the full CLI's", async () => {
    await same(["approve", "RUN", "--by", "dan"], { kind: "one", expectFast: false });
    await same(["deny", "RUN", "--json"], { kind: "one", expectFast: false, jsonWithout: ["decidedAt"] });
  });

  test("ps: table, --json, --status, --limit", async () => {
    await park("one");
    await same(["ps"]);
    await same(["ps", "--json"]);
    await same(["ps", "--status", "waiting-approval", "--limit", "2"]);
    await same(["ps", "--status", "cancelled"]);
    // Statuses are one list (cli/common.cjs): one the full CLI knows, the short path knows.
    await same(["ps", "--status", "rejected"]);
    const { fast } = await same(["ps"], { db: false, cwd: box.dir });
    assert.match(fast.stdout, /^RUN +WORKFLOW +STATUS +PENDING +CREATED$/m);
  });

  test("no database found goes to the full CLI", async () => {
    const empty = sandbox("smithers-fast-none-");
    try {
      const fast = await cli(["ps"], { cwd: empty.dir });
      const full = await cli(["ps"], { cwd: empty.dir, full: true });
      assert.equal(fast.fullCli, true);
      assert.equal(fast.code, 4);
      assert.equal(fast.stderr, full.stderr);
    } finally {
      empty.cleanup();
    }
  });
});
