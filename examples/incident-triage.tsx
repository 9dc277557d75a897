/** @jsxImportSource smithers-orchestrator */
// An alert comes in; the person on call triages it: a <HumanTask>, whose answer (JSON valid
// for the triage schema) is its output. Low severity is only recorded. Otherwise the team is
// paged; waking everyone for a critical incident needs an approval first (<ApprovalGate
// when>), a high one is approved at once. A denied page is recorded, and the run goes on.
// Run:     npx smithers up examples/incident-triage.tsx --input '{"service":"api","errors":420}'
// Answer:  npx smithers approve <runId> triage --note '{"severity":"critical","owner":"dana","notes":null}'
//          (or --input severity=critical --input owner=dana; a wrong answer is refused, 3 tries)
// Then:    npx smithers approve <runId> page-everyone     (or deny: nobody is paged)
import { ApprovalGate, HumanTask, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  input: z.object({ service: z.string(), errors: z.number() }).partial(),
  alert: z.object({ service: z.string(), errors: z.number() }),
  triage: z.object({ severity: z.enum(["low", "high", "critical"]), owner: z.string(), notes: z.string().nullable().optional() }),
  pageDecision: approvalDecisionSchema,
  outcome: z.object({ paged: z.boolean(), severity: z.string(), owner: z.string(), decidedBy: z.string().nullable() }),
});

export default smithers((ctx) => {
  const alert = ctx.outputMaybe(outputs.alert, { nodeId: "alert" });
  const triage = ctx.outputMaybe(outputs.triage, { nodeId: "triage" });
  const page = ctx.outputMaybe(outputs.pageDecision, { nodeId: "page-everyone" });
  return (
    <Workflow name="incident-triage">
      <Sequence>
        <Task id="alert" output={outputs.alert}>
          {() => ({ service: ctx.input.service ?? "api", errors: ctx.input.errors ?? 1 })}
        </Task>
        <HumanTask
          id="triage"
          output={outputs.triage}
          maxAttempts={3}
          prompt={`${alert?.service ?? "a service"} logged ${alert?.errors ?? "?"} errors. Answer severity (low, high or critical), owner, and notes.`}
        />
        {triage && triage.severity !== "low" ? (
          <ApprovalGate
            id="page-everyone"
            output={outputs.pageDecision}
            when={triage.severity === "critical"}
            request={{ title: `Page the whole team for ${alert?.service}?`, summary: `Critical, owned by ${triage.owner}.` }}
          />
        ) : null}
        {triage && (triage.severity === "low" || page) ? (
          <Task id="outcome" output={outputs.outcome}>
            {() => ({ paged: page?.approved ?? false, severity: triage.severity, owner: triage.owner, decidedBy: page?.decidedBy ?? null })}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
