/** @jsxImportSource smithers-orchestrator */
// The shape of gate.tsx and gate-zod.tsx (the CLI start-up figures, section 3): a task, a gate,
// and a task after it that reads both. `smithers up` parks a run at the gate; `smithers approve`
// loads the workflow file again to resume it.
import { Approval, Sequence, Task } from "smithers-orchestrator";

/** The workflow, given what createSmithers returned for its three outputs. */
export function gateWorkflow({ Workflow, smithers, outputs }: { Workflow: any; smithers: any; outputs: any }) {
  return smithers((ctx) => {
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
}
