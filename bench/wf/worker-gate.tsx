/** @jsxImportSource smithers-orchestrator */
// The decision-latency figure of section `workers`: a gate, then a task whose body appends
// "<runId> <epoch ms>" to $BENCH_AFTER_FILE as it starts (in the worker process that drives it).
import { appendFileSync } from "node:fs";
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";

const { Workflow, smithers, outputs } = createSmithers({
  gate: approvalDecisionSchema,
  after: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
});

export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="worker-gate">
      <Sequence>
        <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} />
        {decision ? (
          <Task id="after" output={outputs.after}>
            {() => {
              appendFileSync(process.env.BENCH_AFTER_FILE as string, `${ctx.runId} ${performance.timeOrigin + performance.now()}\n`);
              return { ok: true };
            }}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
