/** @jsxImportSource smithers-orchestrator */
// A short run for the worker throughput figures (section `workers`): two compute tasks.
import { Sequence, Task, createSmithers } from "smithers-orchestrator";

const { Workflow, smithers, outputs } = createSmithers({
  step: { type: "object", properties: { n: { type: "number" } }, required: ["n"] },
});

export default smithers((ctx) => (
  <Workflow name="worker-short">
    <Sequence>
      <Task id="a" output={outputs.step}>{() => ({ n: Number(ctx.input.n ?? 0) })}</Task>
      <Task id="b" output={outputs.step}>{() => ({ n: Number(ctx.input.n ?? 0) + 1 })}</Task>
    </Sequence>
  </Workflow>
));
