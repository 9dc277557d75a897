/** @jsxImportSource smithers-orchestrator */
// Peer twin of bench/workflows.js manyTasks("compute", "parallel", n): a <Parallel> of n compute
// tasks returning { i }. Input: { n }. Run it with maxConcurrency >= n.
import { Parallel, Task, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ value: z.object({ i: z.number().int() }) });

export default smithers((ctx) => {
  const n = Number(((ctx.input ?? {}) as { n?: number }).n ?? 10);
  const tasks = [];
  for (let i = 0; i < n; i++) {
    tasks.push(
      <Task key={`t${i}`} id={`t${i}`} output={outputs.value}>
        {() => ({ i })}
      </Task>,
    );
  }
  return (
    <Workflow name={`parallel-compute-${n}`}>
      <Parallel>{tasks}</Parallel>
    </Workflow>
  );
});
