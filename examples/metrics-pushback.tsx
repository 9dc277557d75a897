/** @jsxImportSource smithers-orchestrator */
// A metrics query that a reviewer can send back with other parameters until the numbers
// answer the question. The query (scripts/metrics.sh) reads ${DAYS:-7}; a push-back with
// --input DAYS=30 runs it again over 30 days and asks for review again (round 2). Once
// approved, the report step runs with the parameters of the last push-back.
// Run:       npx smithers up examples/metrics-pushback.tsx
// Push back: npx smithers push-back <runId> --input DAYS=30 --note "a month, please"
// Approve:   npx smithers approve <runId>
import { Sequence, Task, commandResultSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  metrics: z.object({ days: z.number().int(), activeUsers: z.number().int(), round: z.number().int() }),
  report: commandResultSchema,
});

export default smithers(() => (
  <Workflow name="metrics-pushback">
    <Sequence>
      <Task
        id="metrics"
        output={outputs.metrics}
        command="./scripts/metrics.sh"
        parse="json"
        approval={{ prompt: "Do these numbers answer the question? Push back with DAYS=N for another window.", input: ["DAYS"] }}
      />
      <Task
        id="report"
        output={outputs.report}
        command={'echo "report: active users over the last ${DAYS:-7} days"'}
      />
    </Sequence>
  </Workflow>
));
