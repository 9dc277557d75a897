// SMITHERS_LOG: structured logs from the Rust core (tracing) and the JS layer, one format, to
// stderr or SMITHERS_LOG_FILE; per-module filters; off by default. The lines asserted here are
// the ones README.md documents (a claim, a scheduling decision, a decision, a committed event).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startAnthropicStandIn } from "../scripts/lib/anthropic-stand-in.js";
import { BIN, EXAMPLES, hasSqlite3, sandbox, smithers } from "./helpers/cli.js";
import { daguBox } from "./helpers/dagu.js";
import { PKG_INDEX_URL, waitFor } from "./helpers/durability.js";
import { LINE, findLines, logLines } from "./helpers/log.js";

const EXAMPLE = join(EXAMPLES, "publish-approval.tsx");

/** A builder workflow: `build` (its body waits `ms`), then a gate; `v` is build's field type. */
function slowWorkflow(name, { ms = 0, v = "number" } = {}) {
  return `import { approval, fields, task, workflow } from ${JSON.stringify(PKG_INDEX_URL)};
const build = task("build", { output: fields({ v: ${JSON.stringify(v)} }), run: async () => { await new Promise((r) => setTimeout(r, ${ms})); return { v: ${v === "number" ? 1 : '"one"'} }; } });
const gate = approval("gate", { needs: { build }, request: { title: "Go?" } });
export default workflow({ name: ${JSON.stringify(name)}, steps: [build, gate] });
`;
}

const find = findLines;

describe("SMITHERS_LOG", () => {
  let box;
  before(() => {
    box = sandbox("smithers-log-");
  });
  after(() => box?.cleanup());

  test("debug: the core and the JS layer log claims, scheduling, decisions and events, in one format, to SMITHERS_LOG_FILE", async () => {
    const file = join(box.dir, "debug.log");
    const env = { SMITHERS_LOG: "debug", SMITHERS_LOG_FILE: file };
    const up = await smithers(["up", EXAMPLE, "--input", '{"title":"Logged"}', "--json"], { db: box.db, env });
    assert.equal(up.code, 3, up.stderr);
    assert.doesNotMatch(up.stderr, / DEBUG /, "with a log file, nothing goes to stderr");
    const runId = up.json.runId;
    const approve = await smithers(["approve", runId, "--by", "alice", "--note", "ok"], { db: box.db, env });
    assert.equal(approve.code, 0, approve.stderr);

    const lines = logLines(file);
    for (const l of lines) assert.match(l, LINE, `every line has the one format: ${l}`);

    // The run is created (and owned) by `up`, claimed again by the approving process.
    const created = find(lines, "smithers_core::engine", "run created and claimed", runId);
    assert.equal(created.length, 1, lines.join("\n"));
    assert.match(created[0], / DEBUG smithers_core::engine: run created and claimed run_id="[^"]+" owner="[^"]+:\d+:\d+:\d+" workflow="publish"$/);
    const claimed = find(lines, "smithers_core::engine", "run claimed", runId);
    assert.equal(claimed.length, 1, "approve claims the run to resume it");
    assert.match(claimed[0], / owner="[^"]+" previous_owner="" taken_over="" forced=false abandoned=0 status="running"$/);

    // Scheduling decisions: the first advance hands out the draft task, a later one parks.
    const scheduled = find(lines, "smithers_core::engine", "scheduled", runId);
    assert.ok(scheduled.some((l) => / tasks=\["draft"\] /.test(l)), scheduled.join("\n"));
    assert.ok(scheduled.some((l) => /status="waiting-approval" .*waiting=\["publish-approval"\]/.test(l)), scheduled.join("\n"));

    // The decision, at info.
    const decided = find(lines, "smithers_core::decision", "decision recorded", runId);
    assert.equal(decided.length, 1);
    assert.match(
      decided[0],
      / INFO smithers_core::decision: decision recorded run_id="[^"]+" node_id="publish-approval" iteration=0 status="approved" kind="gate" round=1 approval_iteration=0 reset="" decided_by="alice" run_status="running" owner="" needs_resume=true$/,
    );

    // Every committed transition, with its payload (the decision event says how long the gate waited).
    const granted = find(lines, "smithers_core::events", "committed", runId).filter((l) => l.includes('event="ApprovalGranted"'));
    assert.equal(granted.length, 1);
    assert.match(granted[0], /payload=\{.*"waitedMs":\d+/);

    // The JS driver, in the same format: tasks it ran, and where the run stopped.
    assert.ok(find(lines, "smithers_js::driver", "task started", runId).some((l) => / node_id="draft" iteration=0 attempt=1 kind="compute"$/.test(l)));
    assert.ok(find(lines, "smithers_js::driver", "task ended", runId).some((l) => / node_id="publish" .* ok=true duration_ms=\d+$/.test(l)));
    const stopped = find(lines, "smithers_js::driver", "run stopped", runId);
    assert.match(stopped[0], / INFO smithers_js::driver: run stopped run_id="[^"]+" status="waiting-approval" waiting="publish-approval" in_flight=0$/);
    assert.match(stopped.at(-1), /status="finished"/);
  });

  test("a per-module filter logs only that module; a refused decision is logged with its code", async () => {
    const up = await smithers(["up", EXAMPLE, "--json"], { db: box.db });
    assert.equal(up.code, 3);
    const runId = up.json.runId;
    const file = join(box.dir, "decision.log");
    const env = { SMITHERS_LOG: "smithers_core::decision=debug", SMITHERS_LOG_FILE: file };
    assert.equal((await smithers(["approve", runId, "--no-resume", "--by", "bob"], { db: box.db, env })).code, 0);
    const again = await smithers(["approve", runId, "--node", "publish-approval", "--no-resume", "--by", "carol"], { db: box.db, env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ALREADY_DECIDED/);
    const lines = logLines(file);
    assert.ok(lines.length >= 2, lines.join("\n"));
    for (const l of lines) assert.match(l, / smithers_core::decision: /, `only the decision module logs: ${l}`);
    assert.equal(find(lines, "smithers_core::decision", "decision recorded", runId).length, 1);
    const refused = find(lines, "smithers_core::decision", "decision refused", runId);
    assert.ok(refused.length >= 1, lines.join("\n"));
    assert.match(refused[0], / DEBUG smithers_core::decision: decision refused run_id="[^"]+" node_id="publish-approval" verdict="approve" code="ALREADY_DECIDED"$/);
  });

  test("off by default: no lines, no file", async () => {
    const file = join(box.dir, "never.log");
    const up = await smithers(["up", EXAMPLE, "--json"], { db: box.db, env: { SMITHERS_LOG: "", SMITHERS_LOG_FILE: file } });
    assert.equal(up.code, 3);
    assert.equal(up.stderr, "");
    assert.equal(existsSync(file), false);
  });

  test("SMITHERS_LOG_FORMAT=json: one JSON object a line from both layers; to stderr without a file", async () => {
    const up = await smithers(["up", EXAMPLE, "--json"], { db: box.db, env: { SMITHERS_LOG: "info", SMITHERS_LOG_FORMAT: "json" } });
    assert.equal(up.code, 3);
    const lines = up.stderr.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(lines.length > 0);
    for (const l of lines) {
      assert.deepEqual(Object.keys(l).sort(), ["fields", "level", "target", "timestamp"]);
      assert.match(l.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.ok(["INFO", "WARN", "ERROR"].includes(l.level), "info and above only");
      assert.equal(typeof l.fields.message, "string");
    }
    assert.ok(lines.some((l) => l.target === "smithers_js::driver" && l.fields.message === "run stopped" && l.fields.run_id === up.json.runId));
  });

  test("a malformed filter is reported and the command still works", async () => {
    const up = await smithers(["up", EXAMPLE, "--json"], { db: box.db, env: { SMITHERS_LOG: "smithers_core=loud" } });
    assert.equal(up.code, 3);
    assert.match(up.stderr, /^smithers: SMITHERS_LOG="smithers_core=loud" is not a log filter .*; logs of the native engine are off$/m);
  });

  test("a push-back's reset scope, a sub-run parking and waking its caller, a refused HumanTask answer", async (t) => {
    const b = daguBox(t);
    const file = join(b.dir, "paths.log");
    const env = { SMITHERS_LOG: "smithers_core::decision=info,smithers_core::engine=debug", SMITHERS_LOG_FILE: file };
    // rewind_to: a push-back of the review sends prepare and draft back too.
    const rewind = (await b.expect(3, ["up", "rewind-review.yaml", "--json"], { env })).json.runId;
    await b.expect(0, ["push-back", rewind, "--input", "FEEDBACK=shorter"], { env });
    // Sub-runs that wait: the caller's tasks park on them; one ending wakes the caller.
    const train = (await b.expect(3, ["up", "release-train.yaml", "--json"], { env })).json.runId;
    await b.expect(0, ["approve", `${train}.api.0`, "--input", "SIGNED_BY=alice"], { env });
    // A <HumanTask> answer that does not fit its schema.
    const triage = (await b.expect(3, ["up", join(EXAMPLES, "incident-triage.tsx"), "--input", '{"service":"api","errors":420}', "--json"], { env })).json.runId;
    await b.expect(1, ["approve", triage, "triage", "--note", '{"severity":"meh"}'], { env });

    const lines = logLines(file);
    const pushed = find(lines, "smithers_core::decision", "decision recorded", rewind);
    assert.equal(pushed.length, 1, lines.join("\n"));
    assert.match(pushed[0], / node_id="review" iteration=0 status="pushed-back" kind="review" round=1 approval_iteration=1 reset="(prepare,draft|draft,prepare)" /);

    const parked = find(lines, "smithers_core::engine", "task waits on its sub-run", train);
    assert.deepEqual(parked.map((l) => l.match(/ node_id="(\w+)"/)[1]).sort(), ["api", "web"], lines.join("\n"));
    for (const l of parked) assert.match(l, / sub_run="[^"]+\.(api|web)\.0" sub_run_status="waiting-approval" waits=true$/);
    const ended = find(lines, "smithers_core::engine", "run ended", `${train}.api.0`);
    assert.equal(ended.length, 1, lines.join("\n"));
    assert.match(ended[0], new RegExp(` DEBUG smithers_core::engine: run ended run_id="${train}\\.api\\.0" status="finished" cancelled_nodes=0 woke_caller="${train}"$`));

    const refused = find(lines, "smithers_core::decision", "human answer refused", triage);
    assert.equal(refused.length, 1, lines.join("\n"));
    assert.match(refused[0], / INFO smithers_core::decision: human answer refused run_id="[^"]+" node_id="triage" iteration=0 attempt=1 max_attempts=3 code="HUMAN_TASK_VALIDATION_FAILED" decided_by="[^"]+" run_status="waiting-approval"$/);
  });

  test("leases renewed, a run taken over once its lease expired, another workflow refused, schema versions and conflicts", { skip: !hasSqlite3() && "needs the sqlite3 shell" }, async () => {
    const file = join(box.dir, "leases.log");
    const db = join(box.dir, "leases.db");
    const env = { SMITHERS_LOG: "smithers_core=debug", SMITHERS_LOG_FILE: file, SMITHERS_LEASE_MS: "90" };
    const wf = box.write("slow.js", slowWorkflow("slow", { ms: 60_000 }));
    // `up` drives the run; its lease is renewed every 30 ms while build's body runs.
    const { SMITHERS_DB: _db, SMITHERS_USER: _u, ...parentEnv } = process.env;
    const up = spawn(process.execPath, [BIN, "up", wf, "--run-id", "leased", "--db", db, "--json"], { env: { ...parentEnv, ...env }, stdio: "ignore" });
    const exited = new Promise((r) => up.on("exit", r));
    const owner = await waitFor(() => logLines(file).find((l) => l.includes("run created and claimed") && l.includes('run_id="leased"'))?.match(/ owner="([^"]+)"/)[1], { timeoutMs: 30_000, what: "the run to be created" });
    const renewed = await waitFor(() => find(logLines(file), "smithers_core::owner", "leases renewed").find((l) => l.includes(`owner="${owner}"`)), { timeoutMs: 30_000, what: "a lease renewal" });
    assert.match(renewed, new RegExp(` DEBUG smithers_core::owner: leases renewed owner="${owner}" runs=1 lease_ms=90$`));
    const lines0 = logLines(file);
    assert.match(find(lines0, "smithers_core::engine", "lease keeper started").find((l) => l.includes(owner)), / lease_ms=90$/);
    assert.ok(find(lines0, "smithers_core::store", "database created").some((l) => / version=\d+$/.test(l)), lines0.join("\n"));
    assert.ok(find(lines0, "smithers_core::schemas", "output schema version registered", "leased").some((l) => / key="build" version=1 table="build"$/.test(l)), lines0.join("\n"));
    assert.ok(find(lines0, "smithers_core::schemas", "run bound to output schema versions", "leased").length >= 1, lines0.join("\n"));

    // The process dies mid-task; say it ran on another host, whose lease has not run out: refused.
    up.kill("SIGKILL");
    await exited;
    const setOwner = (expires) => execFileSync("sqlite3", [db, `UPDATE _smithers_runs SET owner = 'elsewhere:1:1:0', lease_expires_at_ms = ${expires} WHERE run_id = 'leased'`]);
    setOwner(Date.now() + 3_600_000);
    const refused = await smithers(["resume", "leased"], { db, env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /RUN_OWNED/);
    assert.match(find(logLines(file), "smithers_core::engine", "claim refused: another live process owns the run", "leased")[0], / owner="elsewhere:1:1:0" lease_expires_at_ms=\d+$/);
    // Once the lease ran out, another workflow is still refused.
    setOwner(1);
    const other = box.write("other.js", slowWorkflow("other"));
    const mismatch = await smithers(["up", other, "--run-id", "leased", "--resume"], { db, env });
    assert.equal(mismatch.code, 1, mismatch.stderr);
    assert.match(mismatch.stderr, /WORKFLOW_MISMATCH/);
    assert.match(find(logLines(file), "smithers_core::engine", "claim refused: the run is another workflow's (WORKFLOW_MISMATCH)", "leased")[0], / recorded="slow \([^)]*slow\.js\)" given="other \([^)]*other\.js\)"$/);
    // The lease ran out: the run is taken over, its abandoned attempt run again.
    const wfQuick = box.write("slow.js", slowWorkflow("slow"));
    assert.equal(wfQuick, wf);
    const resumed = await smithers(["resume", "leased"], { db, env });
    assert.equal(resumed.code, 3, resumed.stderr);
    const taken = find(logLines(file), "smithers_core::engine", "run claimed", "leased");
    assert.equal(taken.length, 1, logLines(file).join("\n"));
    assert.match(taken[0], / previous_owner="elsewhere:1:1:0" taken_over="lease expired" forced=false abandoned=1 status="running"$/);

    // A workflow whose `build` field needs another column type: refused before a run exists.
    const clash = box.write("clash.js", slowWorkflow("clash", { v: "string" }));
    const conflict = await smithers(["up", clash], { db, env });
    assert.notEqual(conflict.code, 0);
    assert.match(conflict.stderr, /SCHEMA_CONFLICT/);
    assert.match(find(logLines(file), "smithers_core::engine", "output schemas refused")[0], / code="SCHEMA_CONFLICT" error=".*build.*"$/);
  });

  test("database migrated: a database of the previous schema version, opened by a command that writes, is migrated and says from which version to which", { skip: !hasSqlite3() && "needs the sqlite3 shell" }, async () => {
    const file = join(box.dir, "migrated.log");
    const db = join(box.dir, "migrated.db");
    const env = { SMITHERS_LOG: "smithers_core::store=info", SMITHERS_LOG_FILE: file };
    const up = await smithers(["up", EXAMPLE, "--input", '{"title":"Old"}', "--json"], { db, env });
    assert.equal(up.code, 3, up.stderr);
    const sql = (q) => execFileSync("sqlite3", [db, q], { encoding: "utf8" }).trim();
    const version = Number(sql("SELECT value FROM _smithers_meta WHERE key = 'schema_version'"));
    assert.ok(find(logLines(file), "smithers_core::store", "database created").some((l) => l.endsWith(` version=${version}`)), logLines(file).join("\n"));
    // What v9 left: v10 replaced the approvals' status index by the listing's index.
    assert.equal(version, 10, "this test makes a v9 database by undoing v10: update it with the next schema version");
    sql(
      "DROP INDEX _smithers_approvals_listing; CREATE INDEX _smithers_approvals_by_status ON _smithers_approvals (status, requested_at_ms); UPDATE _smithers_meta SET value = '9' WHERE key = 'schema_version'",
    );
    // A command that writes migrates it (a read command says SCHEMA_OUTDATED, reliability-cli.test.js).
    const approve = await smithers(["approve", up.json.runId, "--by", "alice"], { db, env });
    assert.equal(approve.code, 0, approve.stderr);
    const migrated = find(logLines(file), "smithers_core::store", "database migrated");
    assert.equal(migrated.length, 1, logLines(file).join("\n"));
    assert.match(migrated[0], LINE);
    assert.ok(migrated[0].endsWith(` INFO smithers_core::store: database migrated db=${db} from=9 to=10`), migrated[0]);
    assert.equal(sql("SELECT value FROM _smithers_meta WHERE key = 'schema_version'"), "10");
    // The migration made v10's index again (and dropped the one it replaces); the decision was logged.
    assert.equal(sql("SELECT count(*) FROM sqlite_master WHERE name IN ('_smithers_approvals_listing', '_smithers_approvals_by_status')"), "1");
    assert.equal(sql("SELECT count(*) FROM sqlite_master WHERE name = '_smithers_approvals_listing'"), "1");
    assert.equal(sql("SELECT count(*) FROM _smithers_audit_log WHERE run_id = '" + up.json.runId + "'"), "1");
  });

  test("lease renewal failed: while another connection holds the database's write lock longer than the renewer waits (2 s), the renewal fails, is logged, and the next one renews", { skip: !hasSqlite3() && "needs the sqlite3 shell" }, async () => {
    const file = join(box.dir, "renewal.log");
    const db = join(box.dir, "renewal.db");
    const env = { SMITHERS_LOG: "smithers_core::owner=debug,smithers_core::engine=debug", SMITHERS_LOG_FILE: file, SMITHERS_LEASE_MS: "300" };
    const wf = box.write("renewed.js", slowWorkflow("renewed", { ms: 60_000 }));
    const { SMITHERS_DB: _db, SMITHERS_USER: _u, ...parentEnv } = process.env;
    const up = spawn(process.execPath, [BIN, "up", wf, "--run-id", "renewed", "--db", db, "--json"], { env: { ...parentEnv, ...env }, stdio: "ignore" });
    const exited = new Promise((r) => up.on("exit", r));
    try {
      const owner = await waitFor(() => logLines(file).find((l) => l.includes("run created and claimed") && l.includes('run_id="renewed"'))?.match(/ owner="([^"]+)"/)[1], { timeoutMs: 30_000, what: "the run to be created" });
      await waitFor(() => find(logLines(file), "smithers_core::owner", "leases renewed").find((l) => l.includes(`owner="${owner}"`)), { timeoutMs: 30_000, what: "a lease renewal" });
      // The sqlite3 shell takes the write lock and keeps it 3 s.
      execFileSync("sqlite3", [db], { input: "BEGIN IMMEDIATE;\n.shell sleep 3\nCOMMIT;\n" });
      const failed = await waitFor(() => find(logLines(file), "smithers_core::owner", "lease renewal failed").find((l) => l.includes(`owner="${owner}"`)), { timeoutMs: 30_000, what: "a failed renewal" });
      assert.match(failed, LINE);
      assert.match(failed, new RegExp(` WARN smithers_core::owner: lease renewal failed: trying again at the next renewal owner="${owner}" error="[^"]*locked[^"]*"$`));
      // Once the lock is gone, the next renewal succeeds.
      const at = logLines(file).indexOf(failed);
      await waitFor(() => logLines(file).slice(at + 1).find((l) => l.includes(" smithers_core::owner: leases renewed") && l.includes(`owner="${owner}"`)), { timeoutMs: 30_000, what: "a renewal after the failure" });
    } finally {
      up.kill("SIGKILL");
      await exited;
    }
  });

  test("a run taken over while its process lives: that process logs run lost; a dead process's run is taken over as owner process dead", { skip: !hasSqlite3() && "needs the sqlite3 shell" }, async () => {
    const file = join(box.dir, "owners.log");
    const db = join(box.dir, "owners.db");
    const env = { SMITHERS_LOG: "smithers_core::engine=debug,smithers_js::driver=debug", SMITHERS_LOG_FILE: file };
    const { SMITHERS_DB: _db, SMITHERS_USER: _u, ...parentEnv } = process.env;
    /** `up` of a run whose build body waits `ms`, in the background; resolves once build's body started. */
    const upInBackground = async (runId, ms) => {
      const wf = box.write(`${runId}.js`, slowWorkflow(runId, { ms }));
      const child = spawn(process.execPath, [BIN, "up", wf, "--run-id", runId, "--db", db], { env: { ...parentEnv, ...env }, stdio: "ignore" });
      const exited = new Promise((r) => child.on("exit", (code) => r(code)));
      const owner = await waitFor(() => find(logLines(file), "smithers_core::engine", "run created and claimed", runId)[0]?.match(/ owner="([^"]+)"/)[1], { timeoutMs: 30_000, what: `${runId} to be created` });
      await waitFor(() => find(logLines(file), "smithers_js::driver", "task started", runId).length > 0, { timeoutMs: 30_000, what: `${runId}'s build to start` });
      return { child, exited, owner, wf };
    };

    // Another engine takes the run over while build's body runs (as `--force` would): when
    // the body's result comes back, the first process finds it lost and writes nothing.
    const lost = await upInBackground("lost", 4000);
    execFileSync("sqlite3", ["-cmd", ".timeout 10000", db, `UPDATE _smithers_runs SET owner = 'elsewhere:1:1:0', lease_expires_at_ms = ${Date.now() + 3_600_000} WHERE run_id = 'lost'`]);
    assert.notEqual(await lost.exited, 0);
    const lines = logLines(file);
    const lostLine = find(lines, "smithers_core::engine", "run lost", "lost");
    assert.equal(lostLine.length, 1, lines.join("\n"));
    assert.equal(lostLine[0].split(" WARN smithers_core::engine: ")[1], `run lost: another engine took it over (this one's lease expired, or --force) run_id="lost" owner="${lost.owner}" new_owner="elsewhere:1:1:0"`);

    // The process driving a run is killed: the next claim sees its owner dead, not a lease to wait out.
    const dead = await upInBackground("dead", 60_000);
    dead.child.kill("SIGKILL");
    await dead.exited;
    box.write("dead.js", slowWorkflow("dead"));
    const resumed = await smithers(["resume", "dead"], { db, env });
    assert.equal(resumed.code, 3, resumed.stderr);
    const taken = find(logLines(file), "smithers_core::engine", "run claimed", "dead");
    assert.equal(taken.length, 1, logLines(file).join("\n"));
    assert.match(taken[0], new RegExp(` previous_owner="${dead.owner}" taken_over="owner process dead" forced=false abandoned=1 status="running"$`));
  });

  test("an agent attempt: the agent, its model, tool calls and tokens, once recorded", async (t) => {
    const dir = join(box.dir, "agents");
    cpSync(join(EXAMPLES, "agents"), dir, { recursive: true });
    const model = await startAnthropicStandIn();
    t.after(() => model.close());
    const file = join(box.dir, "agents.log");
    const env = {
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: "scripted",
      SMITHERS_CACHE_DIR: join(dir, ".cache"),
      SMITHERS_LOG: "smithers_core::engine=debug",
      SMITHERS_LOG_FILE: file,
    };
    const up = await smithers(["up", "incident-rollback.tsx", "--input", '{"service":"checkout"}', "--json"], { db: join(dir, "smithers.db"), cwd: dir, env });
    assert.equal(up.code, 3, up.stderr);
    const recorded = find(logLines(file), "smithers_core::engine", "agent attempt recorded", up.json.runId);
    assert.deepEqual(recorded.map((l) => l.match(/ node_id="([\w-]+)"/)[1]), ["investigate", "advise"]);
    assert.match(
      recorded[0],
      / DEBUG smithers_core::engine: agent attempt recorded run_id="[^"]+" node_id="investigate" iteration=0 attempt=1 ok=true agent="ToolLoopAgent" model="anthropic\.messages:claude-sonnet-4-20250514" follow_up=false tool_calls=1 input_tokens=\d+ output_tokens=\d+ answer_bytes=\d+$/,
    );
  });
});
