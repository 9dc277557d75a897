/** @jsxImportSource smithers-orchestrator */
// A release that two people must approve, and that security can stop on its own: a quorum
// gate. Each approve or deny is one person's vote; the gate is approved by the second
// distinct approver among the release managers and security, and denied at once by a denial
// from security (a veto). A manager's denial is recorded as a vote: the gate waits on, and is
// denied when too few of them are left to approve. Everything is in the decision log.
// Run:     npx smithers up examples/release-two-person.tsx --input '{"version":"2.4.0"}' --by carol
// Vote:    npx smithers approve <runId> --by alice      (1 of 2: the gate still waits)
//          npx smithers approve <runId> --by bob        (2 of 2: approved, the release ships)
// Veto:    npx smithers deny <runId> --by security --reason "CVE open"
// Check:   npx smithers audit verify
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  candidate: z.object({ version: z.string(), changes: z.number() }),
  releaseApproval: approvalDecisionSchema,
  shipped: z.object({ version: z.string(), tag: z.string(), approvedBy: z.string().nullable() }),
  halted: z.object({ version: z.string(), reason: z.string().nullable(), by: z.string().nullable() }),
});

export default smithers((ctx) => {
  const version = String((ctx.input as { version?: string }).version ?? "0.0.0");
  const candidate = ctx.outputMaybe(outputs.candidate, { nodeId: "candidate" });
  const decision = ctx.outputMaybe(outputs.releaseApproval, { nodeId: "release-approval" });
  return (
    <Workflow name="release-two-person">
      <Sequence>
        <Task id="candidate" output={outputs.candidate}>
          {async () => ({ version, changes: 12 })}
        </Task>
        <Approval
          id="release-approval"
          output={outputs.releaseApproval}
          request={{
            title: `Release ${candidate?.version ?? version}?`,
            summary: `${candidate?.changes ?? 0} changes. Two approvals from the release managers or security; security may veto.`,
          }}
          quorum={{ approvals: 2, from: ["alice", "bob", "dave"], veto: ["security"] }}
        />
        {decision?.approved === true ? (
          <Task id="ship" output={outputs.shipped}>
            {() => ({ version, tag: `v${version}`, approvedBy: decision.decidedBy })}
          </Task>
        ) : null}
        {decision?.approved === false ? (
          <Task id="halt" output={outputs.halted}>
            {() => ({ version, reason: decision.note, by: decision.decidedBy })}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
