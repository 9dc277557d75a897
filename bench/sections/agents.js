// 8. What an agent task costs over a compute task: a <Sequence> of N agent tasks whose agent
// answers at once (an AgentLike returning its JSON in a ```json fence, so the answer is
// parsed, checked by the core and recorded with its prompt), against the same Sequence of
// compute tasks, in-process, on a fresh database each repetition. The difference per task
// is the runtime's own cost: rendering the prompt, the output instructions, extracting and
// checking the JSON, and keeping the call on the attempt row. With `ai`'s ToolLoopAgent on
// its MockLanguageModelV3 as well, for what the `ai` package adds on top.
import { join } from "node:path";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { fmt, log, removeDir, stats, tempDir } from "../lib.js";
import { manyAgentTasks, manyTasks } from "../workflows.js";

const instant = { id: "instant", generate: async () => ({ text: '```json\n{"i":1}\n```', usage: { inputTokens: 1, outputTokens: 1 } }) };

async function toolLoopAgent() {
  try {
    const [{ ToolLoopAgent }, { MockLanguageModelV3 }] = await Promise.all([import("ai"), import("ai/test")]);
    const model = new MockLanguageModelV3({
      doGenerate: async () => ({
        content: [{ type: "text", text: '```json\n{"i":1}\n```' }],
        finishReason: { unified: "stop", raw: "stop" },
        usage: { inputTokens: { total: 1 }, outputTokens: { total: 1 } },
        warnings: [],
      }),
    });
    return new ToolLoopAgent({ model });
  } catch {
    return null; // `ai` not installed: that row is left out
  }
}

async function runOnce(workflow) {
  const dir = tempDir("agents");
  try {
    const engine = new SmithersEngine({ dbPath: join(dir, "bench.db") });
    const t0 = performance.now();
    const result = await engine.run(workflow);
    const ms = performance.now() - t0;
    engine.close();
    if (result.status !== "finished") throw new Error(`${workflow.name ?? "agents"}: run ended ${result.status} ${JSON.stringify(result.error ?? {})}`);
    return ms;
  } finally {
    removeDir(dir);
  }
}

export async function run({ full }) {
  const sizes = full ? [100, 1000] : [100, 500];
  const reps = full ? 7 : 5;
  const ai = await toolLoopAgent();
  const kinds = [
    ["compute", (n) => manyTasks("compute", "sequence", n)],
    ["agent", (n) => manyAgentTasks(n, instant)],
    ...(ai ? [["toolLoopAgent", (n) => manyAgentTasks(n, ai)]] : []),
  ];
  log("agents: warm-up");
  for (const [, make] of kinds) await runOnce(make(50));
  const rows = [];
  for (const n of sizes) {
    const perKind = {};
    // Interleaved, so that load that comes and goes touches every kind alike.
    const times = Object.fromEntries(kinds.map(([k]) => [k, []]));
    for (let i = 0; i < reps; i++) for (const [k, make] of kinds) times[k].push(await runOnce(make(n)));
    for (const [k] of kinds) perKind[k] = stats(times[k].map((t) => t / n));
    const overhead = stats(times.agent.map((t, i) => (t - times.compute[i]) / n));
    const aiOverhead = times.toolLoopAgent ? stats(times.toolLoopAgent.map((t, i) => (t - times.compute[i]) / n)) : null;
    rows.push({ n, reps, perKind, overhead, aiOverhead });
    log(
      `agents: N=${n}: compute ${fmt(perKind.compute.median)}, agent ${fmt(perKind.agent.median)} ms/task; ` +
        `agent over compute ${fmt(overhead.median)} ms/task${aiOverhead ? `; ToolLoopAgent over compute ${fmt(aiOverhead.median)} ms/task` : ""}`,
    );
  }
  return { sizes, reps, rows };
}
