/** @jsxImportSource smithers-orchestrator */
// A database migration that a human signs off before it runs. The plan step runs first
// (a multi-line script) and its output waits for review. The reviewer must say who
// approves (APPROVED_BY) and may give a MAINTENANCE_WINDOW; both reach the migrate step
// as environment variables, and the JS `record` step as ctx.approvalInputs.
// Run:     npx smithers up examples/migration-approval.tsx --input '{"database":"orders"}'
// Approve: npx smithers approve <runId> --input APPROVED_BY=alice --input MAINTENANCE_WINDOW=sat-02:00
//          (without APPROVED_BY the approval is refused: MISSING_REQUIRED_INPUTS)
import { Sequence, Task, commandResultSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  step: commandResultSchema,
  record: z.object({
    database: z.string(),
    approvedBy: z.string(),
    maintenanceWindow: z.string().nullable(),
  }),
});

export default smithers((ctx) => {
  const database = String((ctx.input as { database?: string }).database ?? "app");
  return (
    <Workflow name="migration-approval">
      <Sequence>
        <Task
          id="migration-plan"
          output={outputs.step}
          env={{ DATABASE: database }}
          script={`
            echo "migration plan for $DATABASE:"
            for m in 001_add_status_column 002_backfill_status 003_index_status; do
              echo "  apply $m"
            done
            echo "3 migrations, estimated lock time 40s"
          `}
          approval={{
            prompt: `Apply these 3 migrations to ${database}? Say who approves, and when.`,
            input: ["APPROVED_BY", "MAINTENANCE_WINDOW"],
            required: ["APPROVED_BY"],
          }}
        />
        <Task
          id="migrate"
          output={outputs.step}
          env={{ DATABASE: database }}
          command={'echo "migrating $DATABASE, approved by $APPROVED_BY, window ${MAINTENANCE_WINDOW:-now}"'}
        />
        <Task id="record" output={outputs.record}>
          {(c: { approvalInputs?: Record<string, string> }) => ({
            database,
            approvedBy: c.approvalInputs?.APPROVED_BY ?? "",
            maintenanceWindow: c.approvalInputs?.MAINTENANCE_WINDOW ?? null,
          })}
        </Task>
      </Sequence>
    </Workflow>
  );
});
