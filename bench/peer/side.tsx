/** @jsxImportSource smithers-orchestrator */
// Peer twin of bench/workflows.js sideEffectSequence: a <Sequence> of input.n compute tasks; each
// body appends "t<i> <pid> <epoch ms>" to the file input.side before it returns.
import { appendFileSync } from "node:fs";
import { Sequence, Task, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ value: z.object({ i: z.number().int() }) });

export default smithers((ctx) => {
  const { n, side } = ctx.input as { n: number; side: string };
  const tasks = [];
  for (let i = 0; i < n; i++) {
    const id = `t${i}`;
    tasks.push(
      <Task key={id} id={id} output={outputs.value}>
        {() => {
          appendFileSync(side, `${id} ${process.pid} ${(performance.timeOrigin + performance.now()).toFixed(3)}\n`);
          return { i };
        }}
      </Task>,
    );
  }
  return (
    <Workflow name={`recovery-${n}`}>
      <Sequence>{tasks}</Sequence>
    </Workflow>
  );
});
