/** @jsxImportSource smithers-orchestrator */
// An agent proposes, a person decides, an agent acts. An investigator reads the incident's
// logs with smithers' tools (confined to this folder), an advisor proposes a rollback or a
// mitigation (an MDX prompt with props), a person approves or denies it, and an operator
// agent carries out the approved plan; a denied rollback leaves the service observed.
// Run (needs ANTHROPIC_API_KEY, or ANTHROPIC_BASE_URL pointing at a stand-in):
//   npx smithers up examples/agents/incident-rollback.tsx --input '{"service":"checkout"}'
// Look:    npx smithers inspect <runId>         (the agent calls, their tokens, tool calls)
//          npx smithers logs <runId> --both     (prompts and answers)
// Decide:  npx smithers approve <runId> --by alice    or    npx smithers deny <runId>
import { Approval, Branch, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { grep, read } from "smithers-orchestrator/tools";
import { anthropic } from "@ai-sdk/anthropic";
import { ToolLoopAgent } from "ai";
import { z } from "zod";
import AdvisePrompt from "./prompts/advise.mdx";

const { Workflow, smithers, outputs } = createSmithers({
  evidence: z.object({
    errorRate: z.number(),
    firstBadDeploy: z.string(),
    findings: z.array(z.string()),
  }),
  advice: z.object({
    shouldRollback: z.boolean(),
    reason: z.string(),
    steps: z.array(z.string()),
  }),
  rollbackApproval: approvalDecisionSchema,
  action: z.object({
    action: z.enum(["rollback", "mitigate", "observe"]),
    summary: z.string(),
  }),
});

const model = anthropic("claude-sonnet-4-20250514");
const investigator = new ToolLoopAgent({
  model,
  tools: { read, grep },
  instructions: "You investigate incidents. Read the logs under incident/ before you answer; quote what you found.",
});
const advisor = new ToolLoopAgent({
  model,
  instructions: "You advise on rollbacks. Be decisive; a rollback is only safe when no migration ran.",
});
const operator = new ToolLoopAgent({
  model,
  instructions: "You carry out an approved plan and report what was done.",
});

export default smithers((ctx) => {
  const service = String((ctx.input as { service?: string }).service ?? "checkout");
  const evidence = ctx.outputMaybe(outputs.evidence, { nodeId: "investigate" });
  const advice = ctx.outputMaybe(outputs.advice, { nodeId: "advise" });
  const decision = ctx.outputMaybe(outputs.rollbackApproval, { nodeId: "approve-rollback" });
  return (
    <Workflow name="incident-rollback">
      <Sequence>
        <Task id="investigate" output={outputs.evidence} agent={investigator} timeoutMs={120_000} retries={1}>
          {`The ${service} service is failing since the last deploy. The logs are in incident/ (start with incident/deploys.log and incident/errors.log). Find the error rate and the first bad deploy.`}
        </Task>
        <Task id="advise" output={outputs.advice} agent={advisor} timeoutMs={120_000}>
          <AdvisePrompt service={service} errorRate={evidence?.errorRate ?? 0} deploy={evidence?.firstBadDeploy ?? "unknown"} findings={evidence?.findings ?? []} />
        </Task>
        <Branch
          if={advice?.shouldRollback ?? false}
          then={
            <Approval
              id="approve-rollback"
              output={outputs.rollbackApproval}
              onDeny="continue"
              request={{ title: `Roll back ${service} to before ${evidence?.firstBadDeploy ?? "the last deploy"}?`, summary: advice?.reason ?? "" }}
            />
          }
        />
        {advice && (!advice.shouldRollback || decision) ? (
          decision?.approved || !advice.shouldRollback ? (
            <Task id="act" output={outputs.action} agent={operator} timeoutMs={120_000}>
              {`${decision?.approved ? `Roll back ${service} (approved by ${decision.decidedBy ?? "an operator"}).` : `Mitigate ${service} without a rollback.`} Plan:\n${advice.steps.map((s) => `- ${s}`).join("\n")}`}
            </Task>
          ) : (
            <Task id="act" output={outputs.action}>
              {{ action: "observe", summary: `Rollback of ${service} denied${decision?.note ? `: ${decision.note}` : ""}; watching the error rate.` }}
            </Task>
          )
        ) : null}
      </Sequence>
    </Workflow>
  );
});
