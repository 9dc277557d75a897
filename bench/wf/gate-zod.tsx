/** @jsxImportSource smithers-orchestrator */
// gate.tsx with zod schemas, as Smithers workflows write them (section 3 also measures what
// importing zod alone costs).
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  compute: z.object({ value: z.number() }),
  gate: approvalDecisionSchema,
  after: z.object({ doubled: z.number(), approved: z.boolean() }),
});

export default smithers((ctx) => {
  const computed = ctx.outputMaybe(outputs.compute, { nodeId: "compute" });
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="gate-tsx">
      <Sequence>
        <Task id="compute" output={outputs.compute}>
          {{ value: 21 }}
        </Task>
        <Approval id="gate" output={outputs.gate} request={{ title: "Continue?", summary: "bench gate" }} />
        {decision ? (
          <Task id="after" output={outputs.after}>
            {() => ({ doubled: (computed?.value ?? 0) * 2, approved: decision.approved })}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
