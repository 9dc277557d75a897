// Issue 4 in TOON: command/script steps run by the core, an approval: block reviews a step
// after it ran, approver inputs reach later commands, push-back, onWait.
import assert from "node:assert/strict";
import { readFileSync, existsSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { EXAMPLES, sandbox, smithers } from "./helpers/cli.js";
import { SmithersEngine, compileToon } from "../npm/smithers-rs/src/index.js";

test("a TOON script step is reviewed after it ran; push-back and approve with inputs reach the next command", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  const file = join(box.dir, "migration-review.toon");
  copyFileSync(join(EXAMPLES, "migration-review.toon"), file);
  const up = await smithers(["up", file, "--input", '{"table":"users"}', "--json"], { db: box.db });
  assert.equal(up.code, 3, up.stderr);
  const runId = up.json.runId;
  // onWait ran in the workflow's folder with the waiting nodes.
  assert.equal(readFileSync(join(box.dir, "waits.log"), "utf8"), `${runId} waits for plan\n`);
  const engine = new SmithersEngine({ dbPath: box.db });
  t.after(() => engine.close());
  const [gate] = engine.pendingApprovals({ runId });
  assert.deepEqual([gate.kind, gate.prompt, gate.required], ["review", "Apply this migration plan?", ["APPROVED_BY"]]);

  const missing = await smithers(["approve", runId, "--json"], { db: box.db });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stdout + missing.stderr, /MISSING_REQUIRED_INPUTS/);

  const back = await smithers(["push-back", runId, "--node", "plan", "--input", "FEEDBACK=add an index"], { db: box.db });
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /^run \S+: waiting-approval$/m);
  const plan = engine.inspect(runId).outputs.find((o) => o.nodeId === "plan");
  assert.match(plan.value.stdout, /-- revised: add an index/);
  assert.equal(readFileSync(join(box.dir, "waits.log"), "utf8").trim().split("\n").length, 2, "onWait ran again");

  const ok = await smithers(["approve", runId, "--input", "APPROVED_BY=alice", "--input", "MAINTENANCE_WINDOW=sat"], { db: box.db });
  assert.equal(ok.code, 0, ok.stderr);
  const migrate = engine.inspect(runId).outputs.find((o) => o.nodeId === "migrate");
  assert.equal(migrate.value.stdout, "migrating, approved by alice in window sat\n");
  assert.equal(migrate.value.exitCode, 0);
  const logs = engine.logs(runId, { nodeId: "plan" });
  assert.equal(logs.length, 2, "one log per attempt: the first round and the pushed-back one");
});

test("TOON command steps: bad keys are refused with file, line and code", async () => {
  await assert.rejects(
    compileToon("name: x\nsteps[1]:\n  - id: a\n    run: \"1\"\n    cwd: /tmp\n    output:\n      v: number\n", { file: "bad.toon" }),
    (e) => e.code === "TOON_INVALID_VALUE" && /cwd: applies to command/.test(e.message),
  );
  await assert.rejects(
    compileToon("name: x\nsteps[1]:\n  - id: a\n    command: \"true\"\n    approval:\n      input[1]: A\n      required[1]: B\n", { file: "bad.toon" }),
    (e) => e.code === "REQUIRED_NOT_IN_INPUT",
  );
  assert.ok(!existsSync("bad.toon"));
});
