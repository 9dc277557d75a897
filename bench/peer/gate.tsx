/** @jsxImportSource smithers-orchestrator */
// Peer twin of bench/workflows.js approvalThenTask: <Approval id="gate"> then a compute task
// "after". The body of "after" calls globalThis.__benchAfter(runId) when an in-process driver set
// it, and appends "<runId> <epoch ms>" to $BENCH_AFTER_FILE when that is set (other processes).
import { appendFileSync } from "node:fs";
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  value: z.object({ i: z.number().int() }),
  gate: approvalDecisionSchema,
});

export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="approval">
      <Sequence>
        <Approval id="gate" output={outputs.gate} request={{ title: "Go on?" }} onDeny="continue" />
        {decision ? (
          <Task id="after" output={outputs.value}>
            {() => {
              const at = Date.now();
              (globalThis as any).__benchAfter?.(ctx.runId);
              if (process.env.BENCH_AFTER_FILE) appendFileSync(process.env.BENCH_AFTER_FILE, `${ctx.runId} ${at}\n`);
              return { i: 1 };
            }}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
