/** @jsxImportSource smithers-orchestrator */
// Deploy to staging, have a human review it, then deploy to production. The staging deploy
// runs first (a shell command, see scripts/deploy.sh); the run then waits with its output
// visible. Approve and production is deployed; reject and the run fails, production never
// deploys.
// Run:     npx smithers up examples/deploy-review.tsx --input '{"version":"1.4.2"}'
// Look:    npx smithers logs <runId> --node deploy-staging
// Approve: npx smithers approve <runId> --by alice
// Reject:  npx smithers reject <runId> --node deploy-staging --reason "staging is slow"
// Each time the run starts waiting, and when it fails, scripts/notify.sh appends a line to
// $NOTIFY_LOG (a stand-in for a chat message).
import { Sequence, Task, commandResultSchema, createSmithers } from "smithers-orchestrator";

const { Workflow, smithers, outputs } = createSmithers({
  deploy: commandResultSchema,
});

export default smithers((ctx) => {
  const version = String((ctx.input as { version?: string }).version ?? "dev");
  return (
    <Workflow name="deploy-review" onWait="./scripts/notify.sh waiting" onFailure="./scripts/notify.sh failed">
      <Sequence>
        <Task
          id="deploy-staging"
          output={outputs.deploy}
          command="./scripts/deploy.sh staging"
          env={{ VERSION: version }}
          timeoutMs={60_000}
          approval={{ prompt: `${version} is on staging. Check it, then approve the production deploy.` }}
        />
        <Task
          id="deploy-production"
          output={outputs.deploy}
          command="./scripts/deploy.sh production"
          env={{ VERSION: version }}
          timeoutMs={60_000}
        />
      </Sequence>
    </Workflow>
  );
});
