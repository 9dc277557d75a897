// The agent examples (examples/agents/, in the shape of Smithers' approval examples: an agent
// proposes, a person decides, an agent acts; MDX prompts; tools), run with the CLI against a
// scripted model behind Anthropic's API on loopback (ANTHROPIC_BASE_URL). Each runs in a
// copy of its folder, since its tools write there.
import assert from "node:assert/strict";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { startAnthropicStandIn } from "../scripts/lib/anthropic-stand-in.js";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { EXAMPLES, smithers } from "./helpers/cli.js";
import { freshDir, removeDirs } from "./helpers/durability.js";

after(() => removeDirs());

const textOf = (request) =>
  request.messages
    .flatMap((m) => (Array.isArray(m.content) ? m.content : [{ type: "text", text: m.content }]))
    .map((c) => (c.type === "text" ? c.text : c.type === "tool_result" ? JSON.stringify(c.content) : ""))
    .join("\n");

/** The examples in a fresh folder, a database there, and the scripted model. */
async function setUp(t, script) {
  const dir = freshDir("smithers-agent-examples-");
  cpSync(join(EXAMPLES, "agents"), dir, { recursive: true });
  const model = await startAnthropicStandIn(script);
  t.after(() => model.close());
  const db = join(dir, "smithers.db");
  const env = { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: "scripted", SMITHERS_CACHE_DIR: join(dir, ".cache") };
  const cli = (args) => smithers([...args, "--db", db], { cwd: dir, env });
  const inspect = (runId) => {
    const engine = new SmithersEngine({ dbPath: db });
    try {
      return engine.inspect(runId);
    } finally {
      engine.close();
    }
  };
  return { dir, model, cli, inspect };
}

const incidentScript = {
  readPath: "incident/errors.log",
  answer: ({ prompt }) => {
    if (/Find the error rate/.test(prompt)) {
      return { errorRate: 12.4, firstBadDeploy: "v2.14.1", findings: ["TypeError: cart.total is undefined", "no migration in v2.14.1"] };
    }
    if (/Should we roll back/.test(prompt)) {
      return { shouldRollback: true, reason: "12.4% of checkouts fail since v2.14.1, which ran no migration", steps: ["redeploy v2.14.0", "watch the error rate"] };
    }
    return { action: "rollback", summary: "redeployed v2.14.0; error rate back to 0.4%" };
  },
};

describe("examples/agents/incident-rollback.tsx", () => {
  test("approve: the investigator reads the logs with its tools, the advisor's MDX prompt has the evidence, the operator rolls back", async (t) => {
    const { model, cli, inspect } = await setUp(t, incidentScript);
    const up = await cli(["up", "incident-rollback.tsx", "--input", '{"service":"checkout"}', "--run-id", "inc", "--json"]);
    assert.equal(up.code, 3, up.stdout + up.stderr);
    const waiting = inspect("inc");
    const gate = waiting.approvals.find((a) => a.nodeId === "approve-rollback");
    assert.equal(gate.title, "Roll back checkout to before v2.14.1?");
    assert.match(gate.summary, /ran no migration/);
    // The investigator called `read` and the model got the log back.
    const investigation = model.requests.filter((r) => /Find the error rate/.test(textOf(r)));
    assert.equal(investigation.length, 2, "a tool turn, then the answer");
    assert.match(textOf(investigation[1]), /rate=12\.4% TypeError/);
    assert.equal(waiting.agentAttempts.find((a) => a.nodeId === "investigate").agent.toolCalls, 1);
    // The advisor's prompt is the MDX file rendered with the evidence.
    const advise = waiting.agentAttempts.find((a) => a.nodeId === "advise").prompt;
    assert.match(advise, /# Should we roll back checkout\?/);
    assert.match(advise, /error rate of \*\*12\.4%\*\*, starting with deploy v2\.14\.1\./);
    assert.match(advise, /- TypeError: cart\.total is undefined\n- no migration in v2\.14\.1/);

    const approve = await cli(["approve", "inc", "--node", "approve-rollback", "--by", "alice", "--json"]);
    assert.equal(approve.json.status, "approved", approve.stdout + approve.stderr);
    const done = inspect("inc");
    assert.equal(done.run.status, "finished");
    assert.deepEqual(done.outputs.find((o) => o.nodeId === "act").value, { action: "rollback", summary: "redeployed v2.14.0; error rate back to 0.4%" });
    const act = done.agentAttempts.find((a) => a.nodeId === "act");
    assert.match(act.prompt, /Roll back checkout \(approved by alice\)\. Plan:\n- redeploy v2\.14\.0/);
    assert.equal(done.agentAttempts.length, 3, "each agent called once, none again after the decision");
  });

  test("deny: the rollback is not carried out (no operator call) and the service is observed", async (t) => {
    const { model, cli, inspect } = await setUp(t, incidentScript);
    assert.equal((await cli(["up", "incident-rollback.tsx", "--run-id", "inc"])).code, 3);
    const calls = model.requests.length;
    const deny = await cli(["deny", "inc", "--node", "approve-rollback", "--reason", "freeze window", "--by", "bob", "--json"]);
    assert.equal(deny.json.status, "denied", deny.stdout + deny.stderr);
    const done = inspect("inc");
    assert.equal(done.run.status, "finished");
    assert.equal(done.outputs.find((o) => o.nodeId === "act").value.action, "observe");
    assert.equal(model.requests.length, calls, "no model call after the denial");
  });
});

describe("examples/agents/release-announcement.tsx", () => {
  test("a reviewer pushes the draft back with a note, approves the second; a person answers the schedule (a HumanTask); publishing waits for a person, then the publisher writes the file", async (t) => {
    const { dir, model, cli, inspect } = await setUp(t, {
      toolCall: ({ prompt, tools }) =>
        tools.includes("write") ? { name: "write", input: { path: "announcements/3.2.0.md", content: /# (.*)/.exec(prompt.split("announcements/3.2.0.md")[1])?.[0] ?? "" } } : { name: "read", input: { path: "CHANGELOG.md" } },
      answer: ({ prompt }) => {
        if (/Write this announcement/.test(prompt)) return { path: "announcements/3.2.0.md", words: 24 };
        if (/Reviewer's note: mention the migration guide/.test(prompt)) return { title: "Checkout 3.2.0: server totals", body: "Totals are computed on the server. See the migration guide." };
        return { title: "Checkout 3.2.0", body: "Totals are computed on the server." };
      },
    });
    assert.equal((await cli(["up", "release-announcement.tsx", "--run-id", "rel"])).code, 3);
    const draftPrompt = inspect("rel").agentAttempts[0].prompt;
    assert.match(draftPrompt, /Write the announcement of release \*\*3\.2\.0\*\*\./);
    assert.match(draftPrompt, /1\. give it a title/);
    const pushed = await cli(["push-back", "rel", "--node", "draft", "--note", "mention the migration guide", "--by", "editor", "--json"]);
    // A decision exits 0 once recorded; the resumed run's status is in the answer.
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    assert.equal(pushed.json.run.status, "waiting-approval");
    const round2 = inspect("rel").agentAttempts.filter((a) => a.nodeId === "draft");
    assert.equal(round2.length, 2);
    assert.match(round2[1].prompt, /Reviewer's note: mention the migration guide/);
    assert.match(round2[1].prompt, /"title": "Checkout 3\.2\.0"/, "the previous draft");
    const approved = await cli(["approve", "rel", "--node", "draft", "--by", "editor", "--json"]);
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    assert.equal(approved.json.run.status, "waiting-approval", "now the schedule waits for a person's answer");
    const wrong = await cli(["approve", "rel", "schedule", "--note", '{"date":"2026-12-10","channel":"radio"}', "--by", "pm", "--json"]);
    assert.equal(wrong.json.error.code, "HUMAN_TASK_VALIDATION_FAILED", wrong.stdout + wrong.stderr);
    const answered = await cli(["approve", "rel", "schedule", "--note", '{"date":"2026-12-10","channel":"newsletter"}', "--by", "pm", "--json"]);
    assert.equal(answered.json.run.status, "waiting-approval", "now publishing waits for its approval");
    const publishCalls = () => model.requests.filter((r) => /Write this announcement/.test(textOf(r))).length;
    assert.equal(publishCalls(), 0, "the publisher is not called before the approval");
    assert.equal(existsSync(join(dir, "announcements/3.2.0.md")), false);
    const publish = await cli(["approve", "rel", "--node", "publish", "--by", "alice", "--json"]);
    assert.equal(publish.code, 0, publish.stdout + publish.stderr);
    assert.equal(publish.json.run.status, "finished");
    assert.equal(readFileSync(join(dir, "announcements/3.2.0.md"), "utf8"), "# Checkout 3.2.0: server totals");
    const publishPrompt = inspect("rel").agentAttempts.find((a) => a.nodeId === "publish").prompt;
    assert.match(publishPrompt, /it goes out on the newsletter on 2026-12-10/);
    assert.deepEqual(inspect("rel").outputs.find((o) => o.nodeId === "publish").value, { path: "announcements/3.2.0.md", words: 24 });
    assert.equal(publishCalls(), 2, "a tool turn and the answer");
  });
});

describe("examples/agents/support-escalation.tsx", () => {
  const ticket = '{"customer":"Ada","body":"My invoice is in the wrong currency since I moved."}';
  const levelOf = (system) => (/first-line/.test(system) ? 1 : /second-line/.test(system) ? 2 : 0);

  test("a confident first line resolves the ticket: no second line, nobody asked", async (t) => {
    const { model, cli, inspect } = await setUp(t, {
      answer: ({ system }) => (levelOf(system) === 1 ? { resolution: "Reissue the invoice from Billing.", confidence: 0.9 } : undefined),
    });
    const up = await cli(["up", "support-escalation.tsx", "--input", ticket, "--run-id", "easy", "--json"]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const info = inspect("easy");
    assert.deepEqual(info.nodes.map((n) => n.nodeId), ["support-level-0", "support-check-0", "reply"]);
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "support-check-0").value, { escalated: false, fromLevel: 0, toLevel: 1 });
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "reply").value, { by: "first-line agent", text: "Reissue the invoice from Billing." });
    assert.equal(model.requests.filter((r) => levelOf(JSON.stringify(r.system ?? "")) === 2).length, 0);
    assert.match(info.agentAttempts[0].prompt, /# Support ticket from Ada\n\n> My invoice is in the wrong currency since I moved\./);
  });

  test("a first line with no answer and an unsure second line (after reading the known issues) hand the ticket to a person", async (t) => {
    const { model, cli, inspect } = await setUp(t, {
      readPath: "support/known-issues.md",
      answer: ({ system }) => {
        const level = levelOf(system);
        if (level === 1) return "I am not sure what to do here.";
        if (level === 2) return { resolution: "Maybe reissue the invoice?", confidence: 0.5 };
        return undefined;
      },
    });
    const up = await cli(["up", "support-escalation.tsx", "--input", ticket, "--run-id", "hard", "--json"]);
    assert.equal(up.code, 3, up.stdout + up.stderr);
    let info = inspect("hard");
    assert.equal(info.nodes.find((n) => n.nodeId === "support-level-0").state, "failed", "no JSON, also after the follow-up");
    const gate = info.approvals.find((a) => a.status === "requested");
    assert.deepEqual([gate.nodeId, gate.title], ["support-human-fallback", "Take over Ada's ticket?"]);
    // The second line read the known issues with its tool before answering.
    const second = model.requests.filter((r) => levelOf(JSON.stringify(r.system ?? "")) === 2);
    assert.equal(second.length, 2, "a tool turn, then the answer");
    assert.match(textOf(second[1]), /Invoices show the wrong currency/);

    const approve = await cli(["approve", "hard", "--note", "I reissued your invoice in EUR.", "--by", "bob", "--json"]);
    assert.equal(approve.code, 0, approve.stdout + approve.stderr);
    info = inspect("hard");
    assert.equal(info.run.status, "finished");
    assert.deepEqual(
      info.outputs.filter((o) => o.table === "escalation").map((o) => [o.nodeId, o.value.escalated ?? o.value.approved]),
      [["support-check-0", true], ["support-check-1", true], ["support-human-fallback", true]],
    );
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "reply").value, { by: "bob", text: "I reissued your invoice in EUR." });
  });
});
