/** @jsxImportSource smithers-orchestrator */
// A deploy gate that decides itself: its approvers are reminded every 15 minutes, and if
// nobody approves the deploy within an hour, it is denied (recorded as decided by
// system:timeout) and the run records that nothing shipped.
// The deadline is a row in the database, not a process: kill everything, and the next
// `smithers resume`, `approve`, `deny` (or a running `smithers serve`) fires it, once.
// Run:     npx smithers up examples/deploy-gate-timeout.tsx --input '{"version":"1.4.2"}'
// Approve: npx smithers approve <runId> deploy-approval --by alice   (within the hour)
// Later:   npx smithers resume <runId>   (after the hour: the gate was denied by system:timeout)
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const HOUR_MS = 60 * 60 * 1000;

const { Workflow, smithers, outputs } = createSmithers({
  build: z.object({ version: z.string(), artifact: z.string() }),
  deployApproval: approvalDecisionSchema,
  outcome: z.object({ shipped: z.boolean(), version: z.string(), why: z.string() }),
});

export default smithers((ctx) => {
  const version = String((ctx.input as { version?: string }).version ?? "0.0.0");
  const decision = ctx.outputMaybe(outputs.deployApproval, { nodeId: "deploy-approval" });
  return (
    <Workflow name="deploy-gate-timeout">
      <Sequence>
        <Task id="build" output={outputs.build}>
          {() => ({ version, artifact: `app-${version}.tar.gz` })}
        </Task>
        <Approval
          id="deploy-approval"
          output={outputs.deployApproval}
          request={{ title: `Deploy ${version} to production?`, summary: "Denied automatically if nobody decides within 1 h." }}
          timeoutMs={HOUR_MS}
          onTimeout="deny"
          remind={{ every: "15m", max: 3 }}
        />
        {decision ? (
          <Task id="outcome" output={outputs.outcome}>
            {() =>
              decision.approved
                ? { shipped: true, version, why: `approved by ${decision.decidedBy}` }
                : { shipped: false, version, why: decision.decidedBy === "system:timeout" ? "nobody decided within the hour" : `denied by ${decision.decidedBy}` }
            }
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
