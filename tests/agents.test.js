// Agent tasks end to end: real `ai` ToolLoopAgents driven by the package's own test model
// (MockLanguageModelV3), smithers' tools, the follow-up JSON prompt, retries, timeouts,
// approvals and reviews around agent tasks, kill -9 in the middle of a call, and Smithers'
// CLI agents against stand-in CLIs on PATH.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ToolLoopAgent } from "ai";
import { z } from "zod";
import { installCliStandIns } from "../scripts/lib/cli-stand-in.js";
import { startAnthropicStandIn } from "../scripts/lib/anthropic-stand-in.js";
import {
  AnthropicAgent,
  ClaudeCodeAgent,
  CodexAgent,
  KimiAgent,
  OpenAIAgent,
  PiAgent,
  SmithersEngine,
  approvalDecisionSchema,
  createSmithers,
} from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
import { bash, edit, grep, read, write } from "../npm/smithers-rs/src/tools.js";
import { PKG_INDEX_URL, ROOT, cli, freshDir, killAll, removeDirs, spawnNode, waitFor } from "./helpers/durability.js";
import { hangingModel, json, lastPrompt, scriptedModel, text, toolCall, toolResults } from "./helpers/models.js";

after(() => {
  killAll();
  removeDirs();
});

const h = (type, props, ...children) =>
  jsx(type, children.length === 0 ? { ...props } : { ...props, children: children.length === 1 ? children[0] : children });

const { Workflow, Sequence, Task, Approval, smithers, outputs } = createSmithers({
  proposal: z.object({ action: z.enum(["rollback", "observe"]), reason: z.string() }),
  decision: approvalDecisionSchema,
  outcome: z.object({ done: z.string() }),
  note: z.object({ text: z.string() }),
});

function newEngine(t, dir = freshDir("smithers-agents-")) {
  const engine = new SmithersEngine({ dbPath: join(dir, "smithers.db") });
  t.after(() => engine.close());
  return { engine, dir };
}

/** One agent task (plus props) in a workflow whose tools root is `dir`. */
function oneTask(agent, props = {}, prompt = "Propose what to do with the api deployment.") {
  const wf = smithers(() => h(Workflow, { name: "one-agent" }, h(Task, { id: "propose", output: outputs.proposal, agent, ...props }, prompt)));
  return wf;
}

const attemptsOf = (engine, runId) => engine.inspect(runId).agentAttempts;

describe("agent tasks", () => {
  test("a ToolLoopAgent answers with JSON: the output; the attempt keeps prompt, answer and usage (inspect, logs, events)", async (t) => {
    const { engine } = newEngine(t);
    const model = scriptedModel(() => json({ action: "rollback", reason: "error rate 12%" }, [40, 9]));
    const agent = new ToolLoopAgent({ model, instructions: "You are careful." });
    const Prompt = ({ service }) => h("p", null, "Deployment of ", h("strong", null, service), " failed.");
    const wf = smithers(() => h(Workflow, { name: "advise" }, h(Task, { id: "propose", output: outputs.proposal, agent }, h(Prompt, { service: "api" }))));
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "finished");
    const info = engine.inspect(runId);
    assert.deepEqual(info.outputs[0].value, { action: "rollback", reason: "error rate 12%" });
    const [a] = info.agentAttempts;
    assert.equal(a.state, "finished");
    assert.match(a.prompt, /Deployment of \*\*api\*\* failed\./);
    assert.match(a.prompt, /REQUIRED OUTPUT/);
    assert.match(a.prompt, /"action"/, "the schema is in the prompt");
    assert.match(a.responseText, /"error rate 12%"/);
    assert.deepEqual([a.usage.inputTokens, a.usage.outputTokens, a.usage.totalTokens], [40, 9, 49]);
    assert.equal(a.agent.agent, "ToolLoopAgent");
    assert.equal(a.agent.model, "mock-provider:mock-model-id");
    // The model got smithers' prompt, the agent's instructions as the system message.
    const call = model.doGenerateCalls[0];
    assert.equal(call.prompt[0].role, "system");
    assert.match(lastPrompt(call), /Deployment of \*\*api\*\* failed\./);
    const logs = engine.logs(runId);
    assert.equal(logs.length, 1);
    assert.equal(logs[0].responseText, a.responseText);
    const usage = engine.events(runId).find((e) => e.type === "TokenUsageReported");
    assert.equal(usage.inputTokens, 40);
    assert.equal(usage.nodeId, "propose");
  });

  test("tools: read, write, edit, grep, bash work inside the task's root; .., absolute paths and symlinks out are refused; output is capped; each call is an event", async (t) => {
    const { engine, dir } = newEngine(t);
    const root = join(dir, "work");
    mkdirSync(root);
    writeFileSync(join(root, "notes.txt"), "alpha\nbeta\n");
    writeFileSync(join(root, "big.txt"), "x".repeat(300_000));
    writeFileSync(join(dir, "secret.txt"), "outside");
    symlinkSync(join(dir, "secret.txt"), join(root, "link.txt"));
    const calls = [
      ["write", { path: "out/report.md", content: "draft\n" }],
      ["edit", { path: "out/report.md", patch: "--- a\n+++ b\n@@ -1 +1 @@\n-draft\n+final\n" }],
      ["read", { path: "out/report.md" }],
      ["grep", { pattern: "bet+a", path: "." }],
      ["bash", { cmd: "ls", args: ["out"] }],
      ["read", { path: "../secret.txt" }],
      ["read", { path: join(dir, "secret.txt") }],
      ["read", { path: "link.txt" }],
      ["bash", { cmd: "curl", args: ["https://example.com"] }],
      ["read", { path: "big.txt" }],
    ];
    const model = scriptedModel((_options, n) =>
      n <= calls.length ? toolCall(calls[n - 1][0], calls[n - 1][1], `c${n}`) : json({ action: "observe", reason: "looked around" }),
    );
    const agent = new ToolLoopAgent({ model, tools: { read, write, edit, grep, bash } });
    const wf = oneTask(agent);
    const { runId, done } = await engine.start(wf, { workflowPath: join(root, "wf.tsx") });
    assert.equal((await done).status, "finished");
    assert.equal(readFileSync(join(root, "out/report.md"), "utf8"), "final\n");
    // What the model saw as each tool's result, in order.
    const results = toolResults(model.doGenerateCalls.at(-1));
    const outputOf = (id) => results.find((r) => r.toolCallId === id)?.output;
    assert.equal(outputOf("c3").value, "final\n");
    assert.match(outputOf("c4").value, /notes\.txt:2:beta/);
    assert.match(outputOf("c5").value, /report\.md/);
    for (const id of ["c6", "c7", "c8"]) {
      assert.equal(outputOf(id).type, "error-text", `${id} must be refused`);
      assert.match(outputOf(id).value, /outside the task's directory|through a symlink/);
    }
    assert.match(outputOf("c9").value, /network access is disabled/);
    assert.ok(outputOf("c10").value.length < 201_000, "read output is capped");
    assert.match(outputOf("c10").value, /more bytes not shown/);
    const events = engine.events(runId);
    const started = events.filter((e) => e.type === "ToolCallStarted");
    const finished = events.filter((e) => e.type === "ToolCallFinished");
    assert.equal(started.length, calls.length);
    assert.deepEqual(started.map((e) => e.tool), calls.map(([tool]) => tool));
    assert.deepEqual(started[0].args, calls[0][1]);
    assert.equal(finished.filter((e) => e.ok).length, 6);
    assert.equal(finished.find((e) => e.call === 6).error.code, "TOOL_PATH_ESCAPE");
    assert.equal(attemptsOf(engine, runId)[0].agent.toolCalls, calls.length);
  });

  test("an answer without JSON gets one follow-up naming the schema's fields; a second bad answer fails the attempt, and retries apply", async (t) => {
    const { engine } = newEngine(t);
    let attempt = 0;
    const model = scriptedModel((options) => {
      const prompt = lastPrompt(options);
      if (/REQUIRED OUTPUT/.test(prompt)) {
        attempt += 1;
        return text("I think we should roll back, the error rate is too high.");
      }
      assert.match(prompt, /- action: "rollback" \| "observe"\n- reason: string/);
      assert.match(prompt, /roll back, the error rate is too high/, "the follow-up quotes the answer");
      // First attempt: still wrong (a value outside the enum); second attempt: right.
      return attempt === 1 ? json({ action: "revert", reason: "x" }) : json({ action: "rollback", reason: "error rate" });
    });
    const wf = oneTask(new ToolLoopAgent({ model }), { retries: 1 });
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "finished");
    const [first, second] = attemptsOf(engine, runId);
    assert.equal(first.state, "failed");
    assert.equal(first.error.code, "INVALID_OUTPUT");
    assert.match(first.agent.followUp.reason, /contains no JSON object/);
    assert.match(first.agent.followUp.text, /revert/);
    assert.equal(second.state, "finished");
    assert.match(second.agent.followUp.reason, /contains no JSON object/);
    assert.equal(model.doGenerateCalls.length, 4);
    assert.deepEqual(engine.inspect(runId).outputs[0].value, { action: "rollback", reason: "error rate" });
    assert.deepEqual([first.usage.inputTokens, first.usage.outputTokens], [20, 10], "usage adds up the follow-up");
  });

  test("an agent that throws fails the attempt with its error; retries run it again, with the next agent of a list", async (t) => {
    const { engine } = newEngine(t);
    const seen = [];
    const flaky = { id: "flaky", generate: async ({ prompt }) => { seen.push(["flaky", prompt.length > 0]); throw Object.assign(new Error("rate limited"), { code: "RATE_LIMITED" }); } };
    const steady = { id: "steady", generate: async () => { seen.push(["steady", true]); return { output: { action: "observe", reason: "calm" } }; } };
    const wf = oneTask([flaky, steady], { retries: 2 });
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "finished");
    assert.deepEqual(seen, [["flaky", true], ["steady", true]]);
    const [first, second] = attemptsOf(engine, runId);
    assert.equal(first.error.code, "RATE_LIMITED");
    assert.equal(first.responseText, null);
    assert.equal(first.agent.agent, "flaky");
    assert.equal(second.agent.agent, "steady");
  });

  test("timeoutMs aborts the call (the model sees the abort) and fails the attempt with TASK_TIMEOUT; a retry runs again", async (t) => {
    const { engine } = newEngine(t);
    const aborted = [];
    let calls = 0;
    const hanging = hangingModel((options) => {
      calls += 1;
      options.abortSignal?.addEventListener("abort", () => aborted.push(calls));
    });
    const answering = scriptedModel(() => json({ action: "observe", reason: "second try" }));
    const agents = [new ToolLoopAgent({ model: hanging }), new ToolLoopAgent({ model: answering })];
    const wf = oneTask(agents, { timeoutMs: 300, retries: 1 });
    const started = Date.now();
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "finished");
    assert.ok(Date.now() - started < 10_000);
    assert.deepEqual(aborted, [1]);
    const [first, second] = attemptsOf(engine, runId);
    assert.equal(first.error.code, "TASK_TIMEOUT");
    assert.equal(second.state, "finished");
    // Without a retry the run fails with the timeout.
    const wf2 = oneTask(new ToolLoopAgent({ model: hangingModel() }), { timeoutMs: 200 });
    const r2 = await engine.run(wf2, {});
    assert.equal(r2.status, "failed");
    assert.equal(r2.error.code, "TASK_TIMEOUT");
  });

  test("skipIf skips an agent task without calling it; continueOnFail lets the run go on after it fails", async (t) => {
    const { engine } = newEngine(t);
    let calls = 0;
    const broken = { generate: async () => { calls += 1; return { text: "no json here" }; } };
    const wf = smithers(() =>
      h(Workflow, { name: "skip-continue" }, h(Sequence, {},
        h(Task, { id: "skipped", output: outputs.proposal, agent: broken, skipIf: true }, "never asked"),
        h(Task, { id: "tolerated", output: outputs.proposal, agent: broken, continueOnFail: true }, "asked, fails"),
        h(Task, { id: "after", output: outputs.outcome }, () => ({ done: "yes" })))),
    );
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "finished");
    assert.equal(calls, 2, "one call and its follow-up, for the tolerated task only");
    const nodes = Object.fromEntries(engine.inspect(runId).nodes.map((n) => [n.nodeId, n.state]));
    assert.deepEqual(nodes, { skipped: "skipped", tolerated: "failed", after: "finished" });
  });

  test("an approval between two agent tasks: approve runs the second with the first's proposal; deny does not run it; neither calls the first again", async (t) => {
    const { engine } = newEngine(t);
    const proposer = scriptedModel(() => json({ action: "rollback", reason: "p99 latency doubled" }));
    const actor = scriptedModel((options) => json({ done: `did: ${/Proposed action: (\w+)/.exec(lastPrompt(options))?.[1]}` }));
    const propose = new ToolLoopAgent({ model: proposer });
    const act = new ToolLoopAgent({ model: actor });
    const wf = smithers((ctx) => {
      const proposal = ctx.outputMaybe(outputs.proposal, { nodeId: "propose" });
      const decision = ctx.outputMaybe(outputs.decision, { nodeId: "approve" });
      return h(Workflow, { name: "propose-decide-act" }, h(Sequence, {},
        h(Task, { id: "propose", output: outputs.proposal, agent: propose }, "What should we do?"),
        h(Approval, { id: "approve", output: outputs.decision, onDeny: "continue", request: { title: `Apply ${proposal?.action}?`, summary: proposal?.reason } }),
        decision?.approved
          ? h(Task, { id: "act", output: outputs.outcome, agent: act }, `Proposed action: ${proposal.action}. Reason: ${proposal.reason}. Carry it out.`)
          : decision
            ? h(Task, { id: "hold", output: outputs.outcome }, { done: "held" })
            : null,
      ));
    });
    const a = await engine.start(wf, {});
    assert.equal((await a.done).status, "waiting-approval");
    assert.equal(engine.pendingApprovals()[0].title, "Apply rollback?");
    const approved = await engine.approve(a.runId, { nodeId: "approve", decidedBy: "alice" });
    assert.equal((await approved.done).status, "finished");
    assert.deepEqual(engine.inspect(a.runId).outputs.find((o) => o.nodeId === "act").value, { done: "did: rollback" });

    const d = await engine.start(wf, {});
    assert.equal((await d.done).status, "waiting-approval");
    const denied = await engine.deny(d.runId, { nodeId: "approve", decidedBy: "bob" });
    assert.equal((await denied.done).status, "finished");
    assert.deepEqual(engine.inspect(d.runId).outputs.find((o) => o.nodeId === "hold").value, { done: "held" });
    assert.equal(proposer.doGenerateCalls.length, 2, "one proposal per run, never asked again after the decision");
    assert.equal(actor.doGenerateCalls.length, 1, "the act agent ran only after the approval");
  });

  test("needsApproval on an agent task: nothing is asked before the approval", async (t) => {
    const { engine } = newEngine(t);
    const model = scriptedModel(() => json({ text: "posted" }));
    const wf = smithers(() => h(Workflow, { name: "gated-agent" }, h(Task, { id: "post", output: outputs.note, agent: new ToolLoopAgent({ model }), needsApproval: true }, "Post the note.")));
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "waiting-approval");
    assert.equal(model.doGenerateCalls.length, 0);
    const decision = await engine.approve(runId, { decidedBy: "alice" });
    assert.equal((await decision.done).status, "finished");
    assert.equal(model.doGenerateCalls.length, 1);
  });

  test("a reviewed agent task: push-back runs the agent again with the reviewer's note and its previous answer in the prompt", async (t) => {
    const { engine } = newEngine(t);
    const model = scriptedModel((options, n) => {
      const prompt = lastPrompt(options);
      if (n === 2) {
        assert.match(prompt, /A reviewer sent your previous answer back \(review round 2\)/);
        assert.match(prompt, /Reviewer's note: mention the dashboard/);
        assert.match(prompt, /"text": "first draft"/);
        return json({ text: "second draft, see the dashboard" });
      }
      return json({ text: "first draft" });
    });
    const wf = smithers(() =>
      h(Workflow, { name: "reviewed-agent" }, h(Task, { id: "draft", output: outputs.note, agent: new ToolLoopAgent({ model }), approval: { prompt: "Good enough?" } }, "Draft the status note.")),
    );
    const { runId, done } = await engine.start(wf, {});
    assert.equal((await done).status, "waiting-approval");
    const pushed = await engine.pushBack(runId, { nodeId: "draft", note: "mention the dashboard", decidedBy: "rev" });
    assert.equal((await pushed.done).status, "waiting-approval");
    const approved = await engine.approve(runId, { nodeId: "draft", decidedBy: "rev" });
    assert.equal((await approved.done).status, "finished");
    assert.equal(model.doGenerateCalls.length, 2);
    assert.equal(engine.inspect(runId).outputs[0].value.text, "second draft, see the dashboard");
  });
});

describe("Smithers' SDK agents", () => {
  test("AnthropicAgent on a model name talks to Anthropic's API (here a loopback stand-in); OpenAIAgent takes a model object", async (t) => {
    const standIn = await startAnthropicStandIn({ answer: () => ({ action: "observe", reason: "from the stand-in" }) });
    t.after(() => standIn.close());
    // Read by @ai-sdk/anthropic when AnthropicAgent loads it, on its first call.
    process.env.ANTHROPIC_BASE_URL = standIn.url;
    process.env.ANTHROPIC_API_KEY ??= "scripted";
    const { engine } = newEngine(t);
    const viaName = await engine.run(oneTask(new AnthropicAgent({ model: "claude-sonnet-4-20250514", instructions: "Be careful." })));
    assert.equal(viaName.status, "finished", JSON.stringify(viaName));
    assert.equal(standIn.requests[0].model, "claude-sonnet-4-20250514");
    assert.match(JSON.stringify(standIn.requests[0].system), /Be careful\./);
    const model = scriptedModel(() => json({ action: "rollback", reason: "mock" }));
    const viaObject = await engine.run(oneTask(new OpenAIAgent({ model })));
    assert.equal(viaObject.status, "finished");
    assert.equal(model.doGenerateCalls.length, 1);
    assert.throws(() => new AnthropicAgent({}), { code: "INVALID_ARGUMENT" });
  });
});

describe("agent tasks are durable", () => {
  test("kill -9 during the second call: on resume the finished call is not repeated, the cut-off one is", async (t) => {
    const dir = freshDir("smithers-agents-kill-");
    const calls = join(dir, "calls.log");
    const wfFile = join(dir, "wf.mjs");
    writeFileSync(
      wfFile,
      `import { appendFileSync, writeFileSync } from "node:fs";
import { ToolLoopAgent } from "ai";
import { createSmithers } from ${JSON.stringify(PKG_INDEX_URL)};
import { jsx } from ${JSON.stringify(new URL("../npm/smithers-rs/src/jsx-runtime.js", import.meta.url).href)};
import { hangingModel, json, scriptedModel } from ${JSON.stringify(new URL("./helpers/models.js", import.meta.url).href)};
const h = (type, props, ...c) => jsx(type, c.length === 0 ? { ...props } : { ...props, children: c.length === 1 ? c[0] : c });
const log = (name) => appendFileSync(${JSON.stringify(calls)}, name + "\\n");
const { Workflow, Sequence, Task, smithers, outputs } = createSmithers({ note: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } });
const first = new ToolLoopAgent({ model: scriptedModel(() => { log("first"); return json({ text: "one" }); }) });
const second = new ToolLoopAgent({ model: process.env.HANG_SECOND
  ? hangingModel(() => { log("second"); writeFileSync(${JSON.stringify(join(dir, "second-started"))}, "x"); })
  : scriptedModel(() => { log("second"); return json({ text: "two" }); }) });
export default smithers(() => h(Workflow, { name: "kill-mid-call" }, h(Sequence, {},
  h(Task, { id: "first", output: outputs.note, agent: first }, "one"),
  h(Task, { id: "second", output: outputs.note, agent: second }, "two"))));
`,
    );
    const db = join(dir, "smithers.db");
    const up = spawnNode([join(ROOT, "npm/smithers-rs/bin/smithers.js"), "up", wfFile, "--db", db, "--run-id", "km"], { env: { HANG_SECOND: "1" } });
    await waitFor(() => existsSync(join(dir, "second-started")), { timeoutMs: 20_000, what: "the second call" });
    up.child.kill("SIGKILL");
    await up.done;
    assert.deepEqual(readFileSync(calls, "utf8").trim().split("\n"), ["first", "second"]);
    const resumed = await cli(["resume", "km", "--db", db]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.deepEqual(readFileSync(calls, "utf8").trim().split("\n"), ["first", "second", "second"]);
    const engine = new SmithersEngine({ dbPath: db });
    t.after(() => engine.close());
    const attempts = engine.inspect("km").agentAttempts.map((a) => [a.nodeId, a.attempt, a.state]);
    assert.deepEqual(attempts, [["first", 1, "finished"], ["second", 2, "finished"]]);
    const second = engine.inspect("km").nodes.find((n) => n.nodeId === "second");
    assert.equal(second.attempts, 2, "the cut-off attempt counts");
  });
});

describe("Smithers' CLI agents", () => {
  const bin = installCliStandIns(join(freshDir("smithers-standins-"), "bin"));
  const env = (extra = {}) => ({ PATH: `${bin}:${process.env.PATH}`, ...extra });

  async function runCli(t, agent, props = {}) {
    const { engine, dir } = newEngine(t);
    const wf = oneTask(agent, props);
    const { runId, done } = await engine.start(wf, { workflowPath: join(dir, "wf.tsx") });
    return { engine, dir, runId, result: await done };
  }

  test("ClaudeCodeAgent runs `claude --print … <prompt>` through the core's runner; its stream-json answer, usage and logs are kept", async (t) => {
    const log = join(freshDir("smithers-standin-log-"), "calls.jsonl");
    const agent = new ClaudeCodeAgent({ model: "claude-sonnet-4", allowedTools: ["Read", "Grep"], env: env({ STANDIN_LOG: log }), systemPrompt: "Be brief." });
    const { engine, dir, runId, result } = await runCli(t, agent);
    assert.equal(result.status, "finished", JSON.stringify(result));
    const [call] = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(call.cli, "claude");
    assert.equal(call.cwd, dir, "runs in the workflow's directory");
    assert.equal(call.args[0], "--print");
    for (const [flag, value] of [["--model", "claude-sonnet-4"], ["--output-format", "stream-json"], ["--permission-mode", "bypassPermissions"], ["--system-prompt", "Be brief."]]) {
      assert.equal(call.args[call.args.indexOf(flag) + 1], value, flag);
    }
    assert.deepEqual(call.args.slice(call.args.indexOf("--allowed-tools") + 1, call.args.indexOf("--allowed-tools") + 3), ["Read", "Grep"]);
    assert.ok(call.args.includes("--dangerously-skip-permissions") && call.args.includes("--verbose"));
    assert.match(call.args.at(-1), /Propose what to do with the api deployment\.[\s\S]*REQUIRED OUTPUT/);
    const [a] = engine.inspect(runId).agentAttempts;
    assert.equal(a.agent.agent, agent.id);
    assert.ok(a.usage.inputTokens > 0 && a.usage.outputTokens > 0);
    assert.match(a.stdoutPath, /propose\.0\.1\.claude-code\.stdout\.log$/);
    assert.match(readFileSync(a.stdoutPath, "utf8"), /"type":"result"/);
    const logs = engine.logs(runId);
    assert.match(logs[0].stdout, /"type":"result"/);
  });

  test("CodexAgent passes the prompt on stdin, the task's schema as --output-schema, and reads --output-last-message", async (t) => {
    const log = join(freshDir("smithers-standin-log-"), "calls.jsonl");
    const agent = new CodexAgent({ model: "gpt-5", sandbox: "workspace-write", env: env({ STANDIN_LOG: log }) });
    const { result } = await runCli(t, agent);
    assert.equal(result.status, "finished", JSON.stringify(result));
    const [call] = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(call.args.slice(0, 1), ["exec"]);
    assert.equal(call.args.at(-1), "-");
    assert.match(call.stdin, /Propose what to do with the api deployment/);
    for (const flag of ["--output-schema", "--output-last-message", "--json", "--dangerously-bypass-approvals-and-sandbox"]) assert.ok(call.args.includes(flag), flag);
    assert.equal(call.args[call.args.indexOf("--sandbox") + 1], "workspace-write");
  });

  test("PiAgent and KimiAgent build their CLI's arguments as Smithers does", async (t) => {
    const log = join(freshDir("smithers-standin-log-"), "calls.jsonl");
    const pi = new PiAgent({ provider: "openai-codex", model: "gpt-5.4", mode: "json", env: env({ STANDIN_LOG: log }) });
    assert.equal((await runCli(t, pi)).result.status, "finished");
    const kimi = new KimiAgent({ model: "kimi-latest", thinking: false, env: env({ STANDIN_LOG: log }) });
    assert.equal((await runCli(t, kimi)).result.status, "finished");
    const [piCall, kimiCall] = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(piCall.args.slice(0, 6), ["--mode", "json", "--provider", "openai-codex", "--model", "gpt-5.4"]);
    assert.ok(piCall.args.includes("--no-session"));
    assert.deepEqual(kimiCall.args.slice(0, 4), ["--print", "--output-format", "text", "--final-message-only"]);
    assert.ok(kimiCall.args.includes("--no-thinking"));
    assert.match(kimiCall.args[kimiCall.args.indexOf("--prompt") + 1], /REMINDER: Your response MUST end with a ```json code fence/);
  });

  test("PiAgent in RPC mode speaks pi's protocol: a prompt command on stdin kept open, the last assistant message at agent_end, pi stopped after it", async (t) => {
    const log = join(freshDir("smithers-standin-log-"), "calls.jsonl");
    const calls = () => readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const pi = new PiAgent({ provider: "openai-codex", model: "gpt-5.4", mode: "rpc", tools: ["read", "bash"], env: env({ STANDIN_LOG: log }) });
    // The stand-in, like pi, runs on after its answer: the task ends because pi is stopped.
    const { engine, runId, result } = await runCli(t, pi);
    assert.equal(result.status, "finished", JSON.stringify(result));
    const [started, prompt] = calls();
    assert.deepEqual(started.args.slice(0, 6), ["--mode", "rpc", "--provider", "openai-codex", "--model", "gpt-5.4"]);
    assert.equal(started.args[started.args.indexOf("--tools") + 1], "read,bash");
    assert.equal(prompt.rpc.type, "prompt");
    assert.match(prompt.rpc.message, /Propose what to do with the api deployment\.[\s\S]*REQUIRED OUTPUT/);
    const info = engine.inspect(runId);
    assert.equal(info.outputs[0].value.action, "rollback", "the answer turn, not the first turn's 'Let me look first.'");
    const [a] = info.agentAttempts;
    assert.equal(a.usage.inputTokens, 40, "both assistant messages' usage");
    assert.match(readFileSync(a.stdoutPath, "utf8"), /"type":"agent_end"/);

    // An extension's UI request that waits for an answer: cancelled, or what the handler says.
    const ask = new PiAgent({ mode: "rpc", env: env({ STANDIN_LOG: log, STANDIN_UI_REQUEST: "confirm" }) });
    assert.equal((await runCli(t, ask)).result.status, "finished");
    assert.deepEqual(calls().at(-1).uiResponse, { type: "extension_ui_response", id: "ui-1", cancelled: true });
    const seen = [];
    const answering = new PiAgent({
      mode: "rpc",
      env: env({ STANDIN_LOG: log, STANDIN_UI_REQUEST: "confirm" }),
      onExtensionUiRequest: (request) => {
        seen.push(request.title);
        return { confirmed: true };
      },
    });
    assert.equal((await runCli(t, answering)).result.status, "finished");
    assert.deepEqual(seen, ["Proceed?"]);
    assert.deepEqual(calls().at(-1).uiResponse, { type: "extension_ui_response", id: "ui-1", confirmed: true });

    const refused = await runCli(t, new PiAgent({ mode: "rpc", env: env({ STANDIN_RPC_FAIL: "no such model" }) }));
    assert.equal(refused.result.error.code, "AGENT_CLI_ERROR");
    assert.match(refused.result.error.message, /pi: no such model/);
    const slow = await runCli(t, new PiAgent({ mode: "rpc", env: env({ STANDIN_SLEEP_MS: "30000" }) }), { timeoutMs: 400 });
    assert.equal(slow.result.error.code, "TASK_TIMEOUT");
    const files = await runCli(t, new PiAgent({ mode: "rpc", files: ["a.txt"], env: env() }));
    assert.equal(files.result.error.code, "AGENT_RPC_FILE_ARGS");
  });

  test("a CLI agent's timeout stops its process group (TASK_TIMEOUT); a failing CLI is AGENT_CLI_ERROR with its stderr; a missing one AGENT_CLI_NOT_STARTED", async (t) => {
    const slow = new ClaudeCodeAgent({ env: env({ STANDIN_SLEEP_MS: "30000" }) });
    const started = Date.now();
    const timedOut = await runCli(t, slow, { timeoutMs: 400 });
    assert.equal(timedOut.result.error.code, "TASK_TIMEOUT");
    assert.ok(Date.now() - started < 10_000);
    const failing = await runCli(t, new ClaudeCodeAgent({ env: env({ STANDIN_EXIT: "7" }) }));
    assert.equal(failing.result.error.code, "AGENT_CLI_ERROR");
    assert.match(failing.result.error.message, /claude exited with code 7: claude: scripted failure/);
    const missing = await runCli(t, new ClaudeCodeAgent({ env: { PATH: "/nonexistent" } }));
    assert.equal(missing.result.error.code, "AGENT_CLI_NOT_STARTED");
  });
});
