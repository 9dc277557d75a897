/** @jsxImportSource smithers-orchestrator */
// Peer twin of bench/workflows.js manyTasks(kind, "sequence", n): a <Sequence> of n tasks, each a
// static value ({ i }) or a compute function returning { i }. Input: { n, kind }.
import { Sequence, Task, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ value: z.object({ i: z.number().int() }) });

export default smithers((ctx) => {
  const input = (ctx.input ?? {}) as { n?: number; kind?: string };
  const n = Number(input.n ?? 10);
  const compute = input.kind !== "static";
  const tasks = [];
  for (let i = 0; i < n; i++) {
    tasks.push(
      <Task key={`t${i}`} id={`t${i}`} output={outputs.value}>
        {compute ? () => ({ i }) : { i }}
      </Task>,
    );
  }
  return (
    <Workflow name={`sequence-${compute ? "compute" : "static"}-${n}`}>
      <Sequence>{tasks}</Sequence>
    </Workflow>
  );
});
