/** @jsxImportSource smithers-orchestrator */
// Two independent approval gates in parallel: legal and security review a release. Each
// branch runs its own follow-up task as soon as its gate is decided; the run finishes
// once both branches have.
// Run:     npx smithers up examples/parallel-gates.tsx --input '{"release":"v2.0"}'
// Approve: npx smithers approve <runId> --node legal-approval --by alice
//          npx smithers approve <runId> --node security-approval --by bob
// (`approve <runId>` without --node is refused while both gates wait: AMBIGUOUS_APPROVAL.)
import { Approval, Parallel, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  // One table for both gates' decisions (rows are keyed by node id). Registering the same
  // schema object under two keys would make `outputs.x` ambiguous.
  review: approvalDecisionSchema,
  signoff: z.object({ area: z.string(), release: z.string(), approved: z.boolean(), by: z.string().nullable() }),
});

export default smithers((ctx) => {
  const release = String((ctx.input as { release?: string }).release ?? "next");
  const legal = ctx.outputMaybe(outputs.review, { nodeId: "legal-approval" });
  const security = ctx.outputMaybe(outputs.review, { nodeId: "security-approval" });
  return (
    <Workflow name="parallel-gates">
      <Parallel>
        <Sequence>
          <Approval
            id="legal-approval"
            output={outputs.review}
            request={{ title: `Legal review of ${release}`, summary: "Licences and notices checked?" }}
          />
          {legal ? (
            <Task id="legal-signoff" output={outputs.signoff}>
              {() => ({ area: "legal", release, approved: legal.approved, by: legal.decidedBy })}
            </Task>
          ) : null}
        </Sequence>
        <Sequence>
          <Approval
            id="security-approval"
            output={outputs.review}
            request={{ title: `Security review of ${release}`, summary: "Dependencies audited?" }}
          />
          {security ? (
            <Task id="security-signoff" output={outputs.signoff}>
              {() => ({ area: "security", release, approved: security.approved, by: security.decidedBy })}
            </Task>
          ) : null}
        </Sequence>
      </Parallel>
    </Workflow>
  );
});
