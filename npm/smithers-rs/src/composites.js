// Smithers' composite components: plain function components over the built-ins, as in
// Smithers, so they render to the same graph as the JSX an author would write by hand.
import { tableKeyFor } from "./builder.js";
import { Approval, Branch, Sequence, Task, useCtx } from "./components.js";
import { SmithersError } from "./errors.js";
import { jsx } from "./jsx-runtime.js";
import { checkProps, implicitTable } from "./render.js";
import { approvalDecisionSchema, toJsonSchema } from "./schema.js";

const APPROVAL_GATE_PROPS = new Set([
  "id", "output", "request", "when", "onDeny", "skipIf", "continueOnFail", "label", "meta", "dependsOn", "needs",
]);

/**
 * `<ApprovalGate when>`: asks a person only when `when` is true; otherwise the gate
 * approves itself at once with a valid decision row (`{approved: true, note:
 * "auto-approved", decidedBy: null, decidedAt: null}`), so what follows reads one shape.
 * `onDeny` applies to the person's decision only.
 * @param {Record<string, any>} props
 */
export function ApprovalGate(props) {
  checkProps("ApprovalGate", props, APPROVAL_GATE_PROPS, {
    timeoutMs: "a deadline for the decision is not supported yet",
    retries: "an approval has no body to run again",
  });
  if (props.skipIf) return null;
  if (typeof props.when !== "boolean") {
    throw new SmithersError("INVALID_PROP", `<ApprovalGate id="${props.id}"> when must be a boolean (true: a person decides)`, {
      id: props.id,
    });
  }
  const { when, skipIf: _skip, ...approval } = props;
  const common = { id: props.id, output: props.output, dependsOn: props.dependsOn, needs: props.needs };
  return jsx(Branch, {
    if: when,
    then: jsx(Approval, approval),
    else: jsx(Task, {
      ...common,
      label: `${props.request?.title ?? props.id} (auto-approved)`,
      children: { approved: true, note: "auto-approved", decidedBy: null, decidedAt: null },
    }),
  });
}

const RUNBOOK_PROPS = new Set(["id", "steps", "defaultAgent", "stepOutput", "approvalRequest", "onDeny", "skipIf"]);
const RUNBOOK_STEP_KEYS = new Set(["id", "agent", "command", "risk", "label", "output"]);
const RISKS = ["safe", "risky", "critical"];
let decisionJsonSchema;

/**
 * `<Runbook steps>`: the steps in order; a `safe` step runs at once, a `risky` or
 * `critical` one waits for an approval first (critical ones carry `elevated: true` in the
 * request's metadata). A step runs its agent with `command` as the prompt, or, without an
 * agent, `command` as a shell command (its output `{exitCode, stdout, stderr}` must fit
 * `stepOutput`). Node ids are `<id>-<step.id>` and `<id>-<step.id>-approval`; each approval's
 * decision is stored in the table derived from `<id>-<step.id>-approval-decision`
 * (camelCase, as TOON derives tables from ids). `onDeny`: `"fail"` (default) fails the run
 * when a step is denied; `"skip"` skips that step and goes on.
 * @param {Record<string, any>} props
 */
export function Runbook(props) {
  checkProps("Runbook", props, RUNBOOK_PROPS);
  if (props.skipIf) return null;
  const prefix = props.id ?? "runbook";
  const onDeny = props.onDeny ?? "fail";
  if (onDeny !== "fail" && onDeny !== "skip") {
    throw new SmithersError("INVALID_PROP", `<Runbook id="${prefix}"> onDeny must be "fail" or "skip"`, { id: prefix });
  }
  if (!Array.isArray(props.steps) || props.steps.length === 0) {
    throw new SmithersError("INVALID_PROP", `<Runbook id="${prefix}"> needs steps: [{ id, risk, command | agent }]`, { id: prefix });
  }
  decisionJsonSchema ??= toJsonSchema(approvalDecisionSchema, "approval");
  const ctx = onDeny === "skip" ? useCtx() : null;
  const children = [];
  let previous;
  for (const step of props.steps) {
    const where = `<Runbook id="${prefix}"> step ${JSON.stringify(step?.id)}`;
    if (typeof step?.id !== "string" || step.id === "") {
      throw new SmithersError("INVALID_PROP", `<Runbook id="${prefix}">: every step needs an id`, { id: prefix });
    }
    for (const key of Object.keys(step)) {
      if (!RUNBOOK_STEP_KEYS.has(key) && step[key] !== undefined) {
        throw new SmithersError("UNSUPPORTED_PROP", `${where}: ${key} is not a key of a runbook step`, {
          component: "Runbook", prop: `steps[].${key}`, id: prefix,
        });
      }
    }
    if (!RISKS.includes(step.risk)) {
      throw new SmithersError("INVALID_PROP", `${where}: risk must be safe, risky or critical`, { id: prefix });
    }
    const stepId = `${prefix}-${step.id}`;
    const label = step.label ?? step.id;
    const agent = step.agent ?? props.defaultAgent;
    const output = step.output ?? props.stepOutput;
    const task = { id: stepId, output, label: `[${step.risk}] ${label}` };
    if (agent !== undefined) {
      Object.assign(task, { agent, children: step.command ?? `Execute step: ${label}` });
    } else if (typeof step.command === "string" && step.command.trim() !== "") {
      task.command = step.command;
    } else {
      throw new SmithersError("INVALID_PROP", `${where} needs an agent (or defaultAgent) or a command to run`, { id: prefix });
    }
    if (step.risk !== "safe") {
      const approvalId = `${stepId}-approval`;
      const critical = step.risk === "critical";
      const table = implicitTable(tableKeyFor(`${approvalId}-decision`), decisionJsonSchema);
      const what = step.command ?? label;
      children.push(
        jsx(Approval, {
          id: approvalId,
          output: table,
          request: {
            title: props.approvalRequest?.title ?? `Approve ${critical ? "CRITICAL" : "risky"} step: ${label}`,
            summary:
              props.approvalRequest?.summary ??
              (critical
                ? `CRITICAL step requires elevated approval. Command: ${what}`
                : `Risky step requires approval before execution. Command: ${what}`),
            metadata: { stepId: step.id, risk: step.risk, ...props.approvalRequest?.metadata, ...(critical ? { elevated: true } : {}) },
          },
          onDeny: onDeny === "skip" ? "continue" : "fail",
          dependsOn: previous ? [previous] : undefined,
          label: `Approve: ${label}`,
        }),
      );
      task.dependsOn = [approvalId];
      if (ctx) task.skipIf = ctx.outputMaybe(table, { nodeId: approvalId })?.approved === false;
    } else if (previous) {
      task.dependsOn = [previous];
    }
    children.push(jsx(Task, task));
    previous = stepId;
  }
  return jsx(Sequence, { children });
}
