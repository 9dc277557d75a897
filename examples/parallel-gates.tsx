/** @jsxImportSource smithers-orchestrator */
// Two independent approval gates in parallel: legal and security review a release. Each
// branch runs its own follow-up task as soon as its gate is decided; the run finishes
// once both branches have.
// Run:     npx smithers up examples/parallel-gates.tsx --input '{"release":"v2.0"}'
// Approve: npx smithers approve <runId> --node legal-approval --by alice
//          npx smithers approve <runId> --node security-approval --by bob
// (`approve <runId>` without --node is refused while both gates wait: AMBIGUOUS_APPROVAL.)
// Deny:    npx smithers deny <runId> security-approval --by eve   (recorded: approved false;
//          that branch signs off "not approved" and the run goes on)
import { Approval, Parallel, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  // One schema object under two keys, as Smithers workflows write it: a table per key
  // (legal_review, security_review), and outputs.legalReview / outputs.securityReview apart.
  legalReview: approvalDecisionSchema,
  securityReview: approvalDecisionSchema,
  signoff: z.object({ area: z.string(), release: z.string(), approved: z.boolean(), by: z.string().nullable() }),
});

export default smithers((ctx) => {
  const release = String((ctx.input as { release?: string }).release ?? "next");
  const legal = ctx.outputMaybe(outputs.legalReview, { nodeId: "legal-approval" });
  const security = ctx.outputMaybe(outputs.securityReview, { nodeId: "security-approval" });
  return (
    <Workflow name="parallel-gates">
      <Parallel>
        <Sequence>
          <Approval
            id="legal-approval"
            output={outputs.legalReview}
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
            output={outputs.securityReview}
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
