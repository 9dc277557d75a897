/** @jsxImportSource smithers-orchestrator */
// Agent levels, then a person: a fast first-line agent answers a support ticket; when it is
// not confident enough (or fails), a second-line agent with the known-issues list tries;
// when that one is not confident either, a person takes the ticket (an approval: approve =
// "I take it", with a note for the customer). What the customer is told comes from whoever
// resolved it.
// Run (needs ANTHROPIC_API_KEY, or ANTHROPIC_BASE_URL pointing at a stand-in):
//   npx smithers up examples/agents/support-escalation.tsx --input '{"customer":"Ada","body":"My invoice is in the wrong currency."}'
// Look:    npx smithers inspect <runId>     (support-level-0, support-check-0, …)
// Decide:  npx smithers approve <runId> --note "I reissued the invoice in EUR." --by bob
import { EscalationChain, Sequence, Task, createSmithers } from "smithers-orchestrator";
import { read } from "smithers-orchestrator/tools";
import { anthropic } from "@ai-sdk/anthropic";
import { ToolLoopAgent } from "ai";
import { z } from "zod";
import TicketPrompt from "./prompts/ticket.mdx";

const answer = z.object({ resolution: z.string(), confidence: z.number().min(0).max(1) });
const { Workflow, smithers, outputs } = createSmithers({
  firstLine: answer,
  secondLine: answer,
  // Each check writes {escalated, fromLevel, toLevel}; the person's decision
  // {approved, note, decidedBy, decidedAt}: one table holds both, so every field is optional.
  escalation: z.object({
    escalated: z.boolean().optional(),
    fromLevel: z.number().optional(),
    toLevel: z.number().optional(),
    approved: z.boolean().optional(),
    note: z.string().nullable().optional(),
    decidedBy: z.string().nullable().optional(),
    decidedAt: z.string().nullable().optional(),
  }),
  reply: z.object({ by: z.string(), text: z.string() }),
});

const model = anthropic("claude-sonnet-4-20250514");
const firstLine = new ToolLoopAgent({ model, instructions: "You are first-line support. Answer briefly." });
const secondLine = new ToolLoopAgent({
  model,
  tools: { read },
  instructions: "You are second-line support. Check support/known-issues.md before you answer.",
});

export default smithers((ctx) => {
  const { customer = "a customer", body = "" } = ctx.input as { customer?: string; body?: string };
  const first = ctx.outputMaybe(outputs.firstLine, { nodeId: "support-level-0" });
  const second = ctx.outputMaybe(outputs.secondLine, { nodeId: "support-level-1" });
  const checks = [0, 1].map((i) => ctx.outputMaybe(outputs.escalation, { nodeId: `support-check-${i}` }));
  const human = ctx.outputMaybe(outputs.escalation, { nodeId: "support-human-fallback" });
  // Who resolved it: the first level whose check did not escalate, else the person.
  const resolved =
    checks[0]?.escalated === false ? { by: "first-line agent", text: first?.resolution }
    : checks[1]?.escalated === false ? { by: "second-line agent", text: second?.resolution }
    : human ? { by: human.approved ? (human.decidedBy ?? "support staff") : "nobody", text: human.approved ? human.note : "We could not resolve this yet; we will get back to you." }
    : null;
  return (
    <Workflow name="support-escalation">
      <Sequence>
        <EscalationChain
          id="support"
          escalationOutput={outputs.escalation}
          humanFallback
          humanRequest={{ title: `Take over ${customer}'s ticket?`, summary: `Both support levels are unsure. Ticket: ${body}` }}
          levels={[
            { agent: firstLine, output: outputs.firstLine, label: "First line", escalateIf: (r) => r.confidence < 0.7 },
            { agent: secondLine, output: outputs.secondLine, label: "Second line", escalateIf: (r) => r.confidence < 0.9 },
          ]}
        >
          <TicketPrompt customer={customer} body={body} />
        </EscalationChain>
        {resolved ? (
          <Task id="reply" output={outputs.reply}>
            {{ by: resolved.by, text: resolved.text ?? "" }}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
