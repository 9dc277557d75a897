/** @jsxImportSource smithers-rs */
// Sub-workflow behind one gate: the build sub-run completes, then the calling task waits
// for review. A reviewer may push it back with another VERSION (a new sub-run is made).
//
//   npx smithers up examples/release-subworkflow.tsx --input '{"version":"1.4.0"}'
//   npx smithers push-back <runId> --node release --input VERSION=1.4.1
//   npx smithers approve <runId> --node release
import { Sequence, Task, commandResultSchema, createSmithers, subRunResultSchema } from "smithers-rs";

const { Workflow, smithers, outputs } = createSmithers({
  release: subRunResultSchema,
  announce: commandResultSchema,
});

export default smithers((ctx) => (
  <Workflow name="release">
    <Sequence>
      <Task
        id="release"
        output={outputs.release}
        workflow="./release/build.tsx"
        input={(task) => ({ version: task.approvalInputs?.VERSION ?? ctx.input.version })}
        approval={{ prompt: "Ship this build?", input: ["VERSION"] }}
      />
      <Task id="announce" output={outputs.announce} command={`echo "released ${ctx.input.version}"`} />
    </Sequence>
  </Workflow>
));
