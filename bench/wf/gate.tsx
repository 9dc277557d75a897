/** @jsxImportSource smithers-orchestrator */
// A small workflow file for the CLI start-up figures (section 3): a task, a gate, and a task
// after it that reads both; outputs as JSON Schema. `smithers up` parks it at the gate;
// `smithers approve` loads this file again to resume it. gate-zod.tsx is the same with zod.
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";

const number = { type: "number" };
const { Workflow, smithers, outputs } = createSmithers({
  compute: { type: "object", properties: { value: number }, required: ["value"] },
  gate: approvalDecisionSchema,
  after: { type: "object", properties: { doubled: number, approved: { type: "boolean" } }, required: ["doubled", "approved"] },
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
