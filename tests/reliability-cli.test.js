// Operator mistakes at the CLI (issue 12): a mistyped --db, a database of a newer version,
// another workflow resuming a run, run ids of dots, hostile text printed to a terminal.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SmithersEngine, loadWorkflow } from "../npm/smithers-rs/src/index.js";
import { expectExit, hasSqlite3, inspectRun, runIdOf, sandbox, smithers } from "./helpers/cli.js";

function box(t) {
  const b = sandbox("smithers-rel-");
  t.after(() => b.cleanup());
  return b;
}

const BUILDER_URL = JSON.stringify(new URL("../npm/smithers-rs/src/index.js", import.meta.url).href);

/** A builder workflow file: `build` then a gate; its name and task value vary. */
function gateWorkflow(name, value = 1) {
  return `import { approval, fields, task, workflow } from ${BUILDER_URL};
const build = task("build", { output: fields({ v: "number" }), run: () => ({ v: ${value} }) });
const gate = approval("gate", { needs: { build }, request: { title: "Go?" } });
const after = task("after", { needs: { gate }, output: fields({ v: "number" }), run: () => ({ v: ${value} + 1 }) });
export default workflow({ name: ${JSON.stringify(name)}, steps: [build, gate, after] });
`;
}

/** The `schema_version` stamped in a database, or sets it (with the sqlite3 shell). */
function schemaVersion(db, set) {
  if (set !== undefined) execFileSync("sqlite3", [db, `UPDATE _smithers_meta SET value = '${set}' WHERE key = 'schema_version'`]);
  return execFileSync("sqlite3", ["-readonly", db, "SELECT value FROM _smithers_meta WHERE key = 'schema_version'"], { encoding: "utf8" }).trim();
}

describe("operator mistakes at the CLI", { concurrency: 3 }, () => {
  test("a mistyped --db is DB_NOT_FOUND (exit 4) for every command but up, and creates no file", async (t) => {
    const { dir } = box(t);
    const typo = join(dir, "smithres.db");
    const commands = [
      ["ps"],
      ["ps", "--json"],
      ["inspect", "r1"],
      ["why", "r1"],
      ["logs", "r1"],
      ["approve", "r1", "--no-resume"],
      ["approve", "r1"],
      ["deny", "r1", "--no-resume"],
      ["cancel", "r1"],
      ["resume", "r1"],
      ["push-back", "r1"],
    ];
    for (const args of commands) {
      const r = await expectExit(assert, 4, [...args, "--db", typo]);
      assert.match(r.stdout + r.stderr, /DB_NOT_FOUND/, args.join(" "));
      assert.ok(!existsSync(typo), `smithers ${args.join(" ")} created ${typo}`);
    }
  });

  test("a database from a newer version: SCHEMA_TOO_NEW, and nothing stamps its version down", { skip: !hasSqlite3() && "needs the sqlite3 shell" }, async (t) => {
    const b = box(t);
    const wf = b.write("wf.js", gateWorkflow("deploy"));
    const up = await expectExit(assert, 3, ["up", wf], { db: b.db });
    const runId = runIdOf(up.stdout);
    schemaVersion(b.db, 99);
    for (const args of [["ps"], ["ps", "--json"], ["inspect", runId], ["why", runId], ["approve", runId, "--no-resume"], ["approve", runId], ["up", wf]]) {
      const r = await smithers(args, { db: b.db });
      assert.notEqual(r.code, 0, args.join(" "));
      assert.match(r.stdout + r.stderr, /SCHEMA_TOO_NEW/, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.equal(schemaVersion(b.db), "99", `smithers ${args.join(" ")} changed the version`);
    }
  });

  test("a database of an older version: read commands say SCHEMA_OUTDATED and write nothing", { skip: !hasSqlite3() && "needs the sqlite3 shell" }, async (t) => {
    const b = box(t);
    const wf = b.write("wf.js", gateWorkflow("deploy"));
    await expectExit(assert, 3, ["up", wf], { db: b.db });
    // Only the stamp says "older" here; that is all a read command looks at before reading.
    schemaVersion(b.db, 3);
    const r = await expectExit(assert, 1, ["ps"], { db: b.db });
    assert.match(r.stderr, /SCHEMA_OUTDATED.*smithers migrate/s);
    assert.equal(schemaVersion(b.db), "3");
  });

  test("up other.js --run-id X --resume: WORKFLOW_MISMATCH, the run untouched; --force takes it over", async (t) => {
    const b = box(t);
    const wf = b.write("deploy.js", gateWorkflow("deploy"));
    const other = b.write("other.js", gateWorkflow("other", 10));
    const up = await expectExit(assert, 3, ["up", wf], { db: b.db });
    const runId = runIdOf(up.stdout);
    const before = inspectRun(b.db, runId);
    const r = await expectExit(assert, 1, ["up", other, "--run-id", runId, "--resume"], { db: b.db });
    assert.match(r.stderr, /WORKFLOW_MISMATCH/);
    assert.match(r.stderr, /deploy\.js/);
    const after = inspectRun(b.db, runId);
    assert.equal(after.run.status, "waiting-approval");
    assert.equal(after.run.workflowName, "deploy");
    assert.equal(after.run.workflowPath, wf);
    assert.deepEqual(after.nodes, before.nodes);
    // The Node API refuses the same way: another workflow object (its name differs), another file.
    const engine = new SmithersEngine({ dbPath: b.db });
    try {
      const otherWorkflow = await loadWorkflow(other);
      await assert.rejects(engine.resume(runId, { workflow: otherWorkflow }), (e) => e.code === "WORKFLOW_MISMATCH");
      await assert.rejects(engine.resume(runId, { workflow: other }), (e) => e.code === "WORKFLOW_MISMATCH");
    } finally {
      engine.close();
    }
    assert.equal(inspectRun(b.db, runId).run.status, "waiting-approval");
    // The same workflow resumes as before; --force takes the run over for the other one.
    await expectExit(assert, 3, ["up", wf, "--run-id", runId, "--resume"], { db: b.db });
    await expectExit(assert, 3, ["up", other, "--run-id", runId, "--resume", "--force"], { db: b.db });
    const forced = inspectRun(b.db, runId);
    assert.equal(forced.run.workflowName, "other");
    assert.equal(forced.run.workflowPath, other);
  });

  test("a parked run reads its outputs through its own schema after another workflow gave the key another one", async (t) => {
    const b = box(t);
    // Workflow B: `result` has `extra`; it parks at a gate, then `check` reads result.extra.
    const wfB = b.write(
      "b.js",
      `import { approval, fields, task, workflow } from ${BUILDER_URL};
const result = task("produce", { table: "result", output: fields({ ok: "boolean", extra: "boolean" }), run: () => ({ ok: true, extra: true }) });
const gate = approval("gate", { needs: { result }, request: { title: "Go?" } });
const check = task("check", { needs: { result, gate }, output: fields({ extra: "boolean?" }), run: ({ result }) => ({ extra: result.extra ?? null }) });
export default workflow({ name: "b", steps: [result, gate, check] });
`,
    );
    // Workflow A: the same key, another schema; it runs to its end in between.
    const wfA = b.write(
      "a.js",
      `import { fields, task, workflow } from ${BUILDER_URL};
export default workflow({ name: "a", steps: [task("produce", { table: "result", output: fields({ ok: "boolean" }), run: () => ({ ok: false }) })] });
`,
    );
    const runB = runIdOf((await expectExit(assert, 3, ["up", wfB], { db: b.db })).stdout);
    await expectExit(assert, 0, ["up", wfA], { db: b.db });
    await expectExit(assert, 0, ["approve", runB], { db: b.db });
    const info = inspectRun(b.db, runB);
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "check").value, { extra: true });
    // Keys that would share a SQL table are refused before anything is written.
    const twins = b.write(
      "twins.js",
      `import { fields, task, workflow } from ${BUILDER_URL};
export default workflow({ name: "twins", steps: [task("one", { table: "fooBar", output: fields({ v: "number" }), run: () => ({ v: 1 }) }),
  task("two", { table: "foo_bar", output: fields({ v: "number" }), run: () => ({ v: 2 }) })] });
`,
    );
    const runs = (await smithers(["ps", "--json"], { db: b.db })).json.runs.length;
    const r = await smithers(["up", twins], { db: b.db });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TABLE_NAME_CONFLICT|OUTPUT_CONFLICT/);
    assert.equal((await smithers(["ps", "--json"], { db: b.db })).json.runs.length, runs);
  });

  test("run ids made of dots are refused: no logs are written outside <db>.logs/", async (t) => {
    const b = box(t);
    const wf = b.write("wf.js", gateWorkflow("deploy"));
    for (const id of [".", ".."]) {
      const r = await expectExit(assert, 4, ["up", wf, "--run-id", id], { db: b.db });
      assert.match(r.stderr, /INVALID_RUN_ID|USAGE/);
    }
    assert.deepEqual(readdirSync(b.dir).sort(), ["wf.js"]);
  });

  test("control characters in --by are refused (INVALID_DECISION), nothing is recorded", async (t) => {
    const b = box(t);
    const wf = b.write("wf.js", gateWorkflow("deploy"));
    const runId = runIdOf((await expectExit(assert, 3, ["up", wf], { db: b.db })).stdout);
    for (const args of [["--by", "eve\u001b[2J\u001b[H"], ["--by", "alice", "--note", "fine\u001b]0;owned\u0007"]]) {
      const r = await expectExit(assert, 1, ["approve", runId, ...args], { db: b.db });
      assert.match(r.stderr, /INVALID_DECISION/);
      assert.ok(!r.stderr.includes("\u001b"), "the refusal does not echo the escape sequence raw");
    }
    assert.equal(inspectRun(b.db, runId).approvals[0].status, "requested");
  });

  test("a TOON_PARSE error does not send raw escape sequences to the terminal", async (t) => {
    const b = box(t);
    // The decoder names the key it stopped at: here one with an escape sequence in it.
    const toon = b.write("bad.toon", 'name: x\nsteps[1]:\n  - id: a\n    ru\u001b[31mn: "1\n');
    const r = await expectExit(assert, 4, ["up", toon], { db: b.db });
    assert.match(r.stderr, /TOON_PARSE/);
    assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(r.stderr), `raw control characters in: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, /\\u001b|\\x1b/);
  });
});
