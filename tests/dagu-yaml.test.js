// Dagu DAG files (.yaml / .yml): parsed with the `yaml` package, compiled to the same graph
// as JSX and TOON. What is refused (with its line and a stable code), how the keys map
// (graph and chain, params, env, output), and Dagu's variables in every workflow's steps
// and handlers (JSX and TOON too).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { compileDagu } from "../npm/smithers-rs/src/index.js";
import { daguBox, statesOf, valueOf } from "./helpers/dagu.js";

/** compileDagu(text) must throw `code` at `line` (1-based), naming `key`. */
function refuses(text, code, line, key) {
  assert.throws(
    () => compileDagu(text, { file: "/tmp/dag.yaml" }),
    (e) => {
      assert.equal(e.code, code, e.message);
      if (line !== undefined) assert.equal(e.details.line, line, e.message);
      if (key !== undefined) assert.equal(e.details.key, key, e.message);
      assert.match(e.message, /^\/tmp\/dag\.yaml(:\d+)?: /);
      return true;
    },
  );
}

describe("Dagu DAG files: what is refused, with its line and a stable code", () => {
  test("a key that is not supported is refused, never ignored", () => {
    refuses("name: x\nschedule: '0 * * * *'\nsteps:\n  - name: a\n    command: 'true'\n", "DAGU_UNKNOWN_KEY", 2, "schedule");
    refuses("steps:\n  - name: a\n    command: 'true'\n    preconditions: [x]\n", "DAGU_UNKNOWN_KEY", 4, "steps[0].preconditions");
    refuses("steps:\n  - name: a\n    command: 'true'\n    approval:\n      promt: typo\n", "DAGU_UNKNOWN_KEY", 5, "steps[0].approval.promt");
    refuses("handler_on:\n  cancel:\n    command: 'true'\nsteps: []\n", "DAGU_UNKNOWN_KEY", 2, "handler_on.cancel");
    refuses("steps:\n  - name: a\n    command: 'true'\n    retry_policy:\n      limit: 2\n      interval_sec: 5\n", "DAGU_UNKNOWN_KEY", 6);
  });

  test("YAML errors and duplicate keys", () => {
    refuses("steps:\n  - name: a\n    command: [unclosed\n", "DAGU_PARSE", 4);
    refuses("name: a\nname: b\nsteps: []\n", "DAGU_PARSE", 2);
    refuses("name: a\n---\nname: b\n", "DAGU_UNSUPPORTED", 2);
  });

  test("steps: bodies, names, references, cycles, chain", () => {
    refuses("steps:\n  - name: a\n", "DAGU_MISSING_KEY", 2);
    refuses("steps:\n  - command: 'true'\n", "DAGU_MISSING_KEY", 2);
    refuses("steps:\n  - name: a\n    command: 'true'\n    script: 'true'\n", "DAGU_CONFLICTING_KEYS", 4);
    refuses("steps:\n  - name: build image\n    command: 'true'\n", "DAGU_INVALID_VALUE", 2, "steps[0].name");
    refuses("steps:\n  - name: a\n    command: 'true'\n  - name: a\n    command: 'true'\n", "DAGU_DUPLICATE_STEP", 4);
    refuses("steps:\n  - name: a\n    command: 'true'\n  - name: b\n    depends: [a, biuld]\n    command: 'true'\n", "DAGU_UNKNOWN_STEP", 5, "steps[1].depends[1]");
    refuses(
      "steps:\n  - name: a\n    depends: b\n    command: 'true'\n  - name: b\n    depends: a\n    command: 'true'\n",
      "DAGU_DEPENDENCY_CYCLE",
    );
    refuses("type: chain\nsteps:\n  - name: a\n    command: 'true'\n  - name: b\n    depends: a\n    command: 'true'\n", "DAGU_DEPENDS_IN_CHAIN", 6);
    refuses("type: agent\nsteps: []\n", "DAGU_INVALID_VALUE", 1, "type");
    refuses("steps:\n  - name: a\n    call: sub\n    shell: bash\n", "DAGU_CONFLICTING_KEYS", 4);
  });

  test("approval: required within input, names that are not reserved, rewind_to upstream only", () => {
    refuses("steps:\n  - name: a\n    command: 'true'\n    approval:\n      input: [A]\n      required: [B]\n", "REQUIRED_NOT_IN_INPUT", 6);
    refuses("steps:\n  - name: a\n    command: 'true'\n    approval:\n      input: [HOME]\n", "INVALID_INPUT_NAME", 5);
    refuses("steps:\n  - name: a\n    command: 'true'\n    approval:\n      input: [DAG_RUN_ID]\n", "INVALID_INPUT_NAME", 5);
    refuses(
      "steps:\n  - name: side\n    command: 'true'\n  - name: review\n    command: 'true'\n    approval:\n      rewind_to: side\n",
      "DAGU_REWIND_TO_INVALID",
      7,
    );
    refuses("steps:\n  - name: a\n    command: 'true'\n    approval:\n      rewind_to: nowhere\n", "DAGU_UNKNOWN_STEP", 5);
  });

  test("params, env, calls and mail", () => {
    refuses("params: PATH=/x\nsteps: []\n", "DAGU_INVALID_VALUE", 1);
    refuses("params: just-positional\nsteps: []\n", "DAGU_UNSUPPORTED", 1);
    refuses("env:\n  - NOW: '`date`'\nsteps: []\n", "DAGU_UNSUPPORTED", 2);
    refuses("steps:\n  - name: a\n    call: not-there\n", "DAGU_CALL_NOT_FOUND", 3);
    refuses("mail_on:\n  wait: true\nsteps: []\n", "DAGU_MISSING_KEY", 2);
    const saved = process.env.SMITHERS_SMTP_HOST;
    delete process.env.SMITHERS_SMTP_HOST;
    try {
      refuses("mail_on:\n  wait: true\nwait_mail:\n  from: a@b.c\n  to: d@e.f\nsteps: []\n", "DAGU_MAIL_NO_SMTP", 1);
    } finally {
      if (saved !== undefined) process.env.SMITHERS_SMTP_HOST = saved;
    }
  });

  test("a DAG that calls itself, through another, is refused when it loads", async (t) => {
    const b = daguBox(t, { examples: false });
    b.write("one.yaml", "steps:\n  - name: x\n    call: two\n");
    b.write("two.yaml", "steps:\n  - name: y\n    call: one.yaml\n");
    const r = await b.expect(4, ["up", "one.yaml"]);
    assert.match(r.stderr, /^smithers: DAGU_CALL_CYCLE: .*two\.yaml:3: steps\[0\]\.call: one\.yaml -> two\.yaml -> one\.yaml: a DAG may not call itself$/m);
  });

  test("smithers up exits 4 with the file, line and key, and writes nothing", async (t) => {
    const b = daguBox(t, { examples: false });
    const dag = b.write("bad.yaml", "name: bad\nsteps:\n  - name: a\n    command: echo hi\n    signal_on_stop: SIGINT\n");
    const r = await b.expect(4, ["up", dag]);
    assert.equal(r.stderr.split("\n")[0], `smithers: DAGU_UNKNOWN_KEY: ${dag}:5: steps[0].signal_on_stop: signal_on_stop is not supported in a step (supported: name, id, description, command, script, shell, working_dir, dir, env, output, depends, call, params, approval, timeout_sec, retry_policy, continue_on)`);
    // Nothing written: not even a database file (ps finds none).
    assert.equal((await b.expect(4, ["ps", "--json"])).json.error.code, "DB_NOT_FOUND");
  });
});

describe("Dagu DAG files: how the keys run", () => {
  test("type: graph (the default) starts the steps without depends together; chain runs them in order", async (t) => {
    const b = daguBox(t, { examples: false });
    // Each waits (at most 10 s) for the other to have started: only together can they end.
    const meet = (me, other) => `touch ${me}.started; for i in $(seq 200); do [ -e ${other}.started ] && exit 0; sleep 0.05; done; exit 1`;
    b.write("graph.yaml", `steps:\n  - name: a\n    command: "${meet("a", "b")}"\n  - name: b\n    command: "${meet("b", "a")}"\n  - name: c\n    depends: [a, b]\n    command: echo joined\n`);
    const graph = await b.up("graph.yaml", 0);
    assert.equal(graph.status, "finished");
    b.write("chain.yaml", "type: chain\nsteps:\n  - name: one\n    command: echo 1 >> order\n  - name: two\n    command: echo 2 >> order\n  - name: three\n    command: echo 3 >> order\n");
    assert.equal((await b.up("chain.yaml", 0)).status, "finished");
    assert.equal(b.read("order"), "1\n2\n3\n");
  });

  test("params (defaults, --input, -- NAME=value) reach commands and DAG_PARAMS_JSON; env expands ${VAR}; output: feeds later steps", async (t) => {
    const b = daguBox(t, { examples: false });
    b.write(
      "vars.yaml",
      `name: vars
params:
  - REGION: eu
  - TIER: gold
env:
  - BASE: \${HOME}/data
  - TARGET: "\${BASE}/\${REGION}"
steps:
  - name: probe
    command: echo "region=\${REGION} tier=\${TIER} target=\${TARGET}"
    output: PROBE
  - name: use
    depends: probe
    env:
      - LOCAL: "seen \${PROBE}"
    command: 'echo "LOCAL=$LOCAL"; echo "PARAMS=$DAG_PARAMS_JSON"; echo "NAME=$DAG_NAME STEP=$DAG_RUN_STEP_NAME"'
`,
    );
    const up = await b.up("vars.yaml", 0, "--input", '{"TIER":"silver"}', "--", "ZONE=b");
    const use = await b.stdout(up.runId, "use");
    assert.equal(valueOf(use, "LOCAL"), `seen region=eu tier=silver target=${process.env.HOME}/data/eu`);
    assert.deepEqual(JSON.parse(valueOf(use, "PARAMS")), { REGION: "eu", TIER: "silver", ZONE: "b" });
    assert.equal(valueOf(use, "NAME"), "vars STEP=use");
    // A reserved name cannot come in as a param either.
    const bad = await b.expect(1, ["up", "vars.yaml", "--json", "--input", '{"PATH":"/evil"}']);
    assert.equal(bad.json.error.code, "INVALID_INPUT");
  });

  test("a step's approval inputs reach its dependents; timeout_sec, retry_policy and continue_on apply", async (t) => {
    const b = daguBox(t, { examples: false });
    b.write(
      "opts.yaml",
      `steps:
  - name: flaky
    command: '[ -e tried ] || { touch tried; exit 3; }; echo ok'
    retry_policy:
      limit: 1
  - name: slow
    command: sleep 5
    timeout_sec: 1
    continue_on:
      failure: true
  - name: after
    depends: [flaky, slow]
    command: echo after
`,
    );
    const up = await b.up("opts.yaml", 0);
    const info = await b.inspect(up.runId);
    assert.deepEqual(statesOf(info), { flaky: "finished", slow: "failed", after: "finished" });
    assert.equal(info.nodes.find((n) => n.nodeId === "flaky").attempts, 2);
    assert.equal(info.nodes.find((n) => n.nodeId === "slow").error.code, "TASK_TIMEOUT");
  });
});

describe("Dagu's variables in every workflow, JSX and TOON too", () => {
  test("a JSX command task and its onWait handler see DAG_NAME, DAG_RUN_ID, DAG_RUN_STEP_NAME, DAG_WAITING_STEPS, …", async (t) => {
    const b = daguBox(t, { examples: false });
    const file = b.write(
      "env.tsx",
      `/** @jsxImportSource smithers-rs */
import { Sequence, Task, commandResultSchema, createSmithers } from "smithers-rs";
const { Workflow, smithers, outputs } = createSmithers({ cmd: commandResultSchema });
export default smithers(() => (
  <Workflow name="jsx-env" onWait={'echo "wait $DAG_NAME $DAG_RUN_ID $DAG_WAITING_STEPS $DAG_RUN_STATUS $DAG_RUN_STEP_NAME" > wait.txt'}>
    <Sequence>
      <Task id="show" output={outputs.cmd} command={'echo "$DAG_NAME|$DAG_RUN_ID|$DAG_RUN_STEP_NAME|$DAG_PARAMS_JSON|$DAG_RUN_STEP_STDOUT_FILE|$DAG_RUN_LOG_FILE"'}
        approval={{ prompt: "ok?" }} />
    </Sequence>
  </Workflow>
));`,
    );
    const up = await b.up(file, 3, "--run-id", "jsx1", "--input", '{"x":1}');
    const [name, run, step, params, out, log] = (await b.stdout(up.runId, "show")).trim().split("|");
    assert.deepEqual([name, run, step, JSON.parse(params)], ["jsx-env", "jsx1", "show", { x: 1 }]);
    assert.equal(out, join(b.dir, "smithers.logs/jsx1/show.0.1.stdout.log"));
    assert.equal(log, join(b.dir, "smithers.logs/jsx1/run.log"));
    assert.equal(b.read("wait.txt"), "wait jsx-env jsx1 show waiting onWait\n");
    assert.match(b.read("smithers.logs/jsx1/run.log"), /started show attempt 1\n.*ended show attempt 1: exit 0\n.*started onWait\n/s);
  });

  test("a TOON command step sees them too", async (t) => {
    const b = daguBox(t, { examples: false });
    writeFileSync(
      join(b.dir, "env.toon"),
      'name: toon-env\nsteps[1]:\n  - id: show\n    command: "echo $DAG_NAME $DAG_RUN_STEP_NAME $DAG_RUN_ID"\n',
    );
    const up = await b.up("env.toon", 0, "--run-id", "t1");
    assert.equal(await b.stdout(up.runId, "show"), "toon-env show t1\n");
  });
});

test("a step that prints ~60 KB per round is pushed back again and again (no Argument list too long)", async (t) => {
  const b = daguBox(t, { examples: false });
  b.write(
    "big.yaml",
    `steps:
  - name: big
    script: |
      head -c 61440 /dev/zero | tr '\\0' x
      echo
      echo "ROUND=\${DAG_PUSHBACK_ITERATION:-0}"
    approval:
      input: [NOTE]
`,
  );
  const { runId } = await b.up("big.yaml");
  for (let round = 1; round <= 4; round++) {
    const r = await b.expect(0, ["push-back", runId, "--input", `NOTE=round ${round}`, "--json"]);
    assert.equal(r.json.approvalIteration, round);
    assert.equal(valueOf(await b.stdout(runId, "big"), "ROUND"), String(round));
  }
  await b.expect(0, ["approve", runId]);
});
