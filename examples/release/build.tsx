/** @jsxImportSource smithers-rs */
// A sub-workflow: builds and tests one version. Called by examples/release-subworkflow.tsx.
import { Sequence, Task, commandResultSchema, createSmithers } from "smithers-rs";

const { Workflow, smithers, outputs } = createSmithers({ step: commandResultSchema });

export default smithers((ctx) => (
  <Workflow name="build-release">
    <Sequence>
      <Task id="compile" output={outputs.step} command={`echo "compiled ${ctx.input.version}"`} />
      <Task id="test" output={outputs.step} command={`echo "tests passed for ${ctx.input.version}"`} />
    </Sequence>
  </Workflow>
));
