/** @jsxImportSource smithers-orchestrator */
// A database maintenance runbook: safe steps run at once, the risky and the critical step
// wait for an approval first (the critical one marked elevated). Without an agent a step's
// command runs as a shell command; its output is {exitCode, stdout, stderr}.
// Run:     npx smithers up examples/db-runbook.tsx --input '{"db":"orders"}'
// Approve: npx smithers approve <runId>     (once for backup, once for migrate)
// Deny:    the run fails (onDeny "fail", the default); with onDeny="skip" the step is skipped.
import { Runbook, commandResultSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  input: z.object({ db: z.string() }).partial(),
  step: commandResultSchema,
});

export default smithers((ctx) => {
  const db = ctx.input.db ?? "orders";
  return (
    <Workflow name="db-runbook">
      <Runbook
        id="maint"
        stepOutput={outputs.step}
        steps={[
          { id: "health-check", risk: "safe", command: `echo "${db}: healthy"` },
          { id: "backup", risk: "risky", command: `echo "dumped ${db}"` },
          { id: "migrate", risk: "critical", label: "Apply migrations", command: `echo "migrated ${db}"` },
          { id: "smoke-test", risk: "safe", command: `echo "smoke ok"` },
        ]}
      />
    </Workflow>
  );
});
