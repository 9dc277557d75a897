// Smithers' composite components: plain function components over the built-ins, as in
// Smithers, so they render to the same graph as the JSX an author would write by hand.
import { tableKeyFor } from "./builder.js";
import { Approval, Branch, Sequence, Task, WaitForEvent, useCtx } from "./components.js";
import { SmithersError } from "./errors.js";
import { jsx } from "./jsx-runtime.js";
import { checkProps, implicitTable, outputJsonSchema } from "./render.js";
import { approvalDecisionSchema, toJsonSchema } from "./schema.js";

const APPROVAL_GATE_PROPS = new Set([
  "id", "output", "request", "when", "onDeny", "skipIf", "continueOnFail", "label", "meta", "dependsOn", "needs",
  "timeoutMs", "deadline", "onTimeout", "remind", "escalate",
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
    retries: "an approval has no body to run again",
  });
  if (props.skipIf) return null;
  if (typeof props.when !== "boolean") {
    throw new SmithersError("INVALID_PROP", `<ApprovalGate id="${props.id}"> when must be a boolean (true: a person decides)`, {
      id: props.id,
    });
  }
  // A deadline (timeoutMs, deadline, onTimeout) is the person's gate's: it goes with `approval`.
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

const ESCALATION_PROPS = new Set(["id", "levels", "humanFallback", "humanRequest", "escalationOutput", "skipIf", "children"]);
const LEVEL_KEYS = new Set(["agent", "output", "label", "escalateIf"]);
/** What an escalation check writes, and what the human fallback's decision writes. */
const CHECK_FIELDS = ["escalated", "fromLevel", "toLevel"];
const DECISION_FIELDS = ["approved", "note", "decidedBy", "decidedAt"];

/**
 * `<EscalationChain levels escalationOutput humanFallback humanRequest>{prompt}</EscalationChain>`:
 * level 0's agent answers the prompt; a check (`<id>-check-<i>`, a compute task writing
 * `{escalated, fromLevel, toLevel}` to `escalationOutput`) then decides, when it runs, whether
 * to escalate: the level failed (levels run with `continueOnFail`) or its `escalateIf(result)`
 * is true. Only then does the next level (`<id>-level-<i+1>`) run; after the last one, with
 * `humanFallback`, a person decides (`<Approval id="<id>-human-fallback">`, its decision in
 * `escalationOutput` too). So `escalationOutput`'s schema must fit both rows.
 * @param {Record<string, any>} props
 */
export function EscalationChain(props) {
  checkProps("EscalationChain", props, ESCALATION_PROPS);
  if (props.skipIf) return null;
  const prefix = props.id ?? "escalation";
  const where = `<EscalationChain id="${prefix}">`;
  const invalid = (message, prop) => new SmithersError("INVALID_PROP", `${where} ${message}`, { component: "EscalationChain", prop, id: prefix });
  if (typeof prefix !== "string" || prefix === "") throw invalid("id must be a non-empty string", "id");
  const { levels, escalationOutput } = props;
  if (!Array.isArray(levels) || levels.length === 0) throw invalid("needs levels: [{ agent, output, label?, escalateIf? }, …]", "levels");
  if (escalationOutput == null) throw invalid("needs escalationOutput: the table its checks (and the human fallback) write", "escalationOutput");
  if (props.humanFallback != null && typeof props.humanFallback !== "boolean") throw invalid("humanFallback must be a boolean", "humanFallback");
  levels.forEach((level, i) => {
    if (typeof level !== "object" || level === null) throw invalid(`levels[${i}] must be an object { agent, output }`, "levels");
    for (const key of Object.keys(level)) {
      if (!LEVEL_KEYS.has(key) && level[key] !== undefined) {
        throw new SmithersError("UNSUPPORTED_PROP", `${where} levels[${i}].${key} is not a key of an escalation level (agent, output, label, escalateIf)`, {
          component: "EscalationChain", prop: `levels[].${key}`, id: prefix,
        });
      }
    }
    if (level.escalateIf != null && typeof level.escalateIf !== "function") throw invalid(`levels[${i}].escalateIf must be a function of the level's result`, "levels");
  });
  const human = props.humanFallback === true;
  checkEscalationSchema(outputJsonSchema(escalationOutput, `${where} escalationOutput`), human, invalid);

  const ctx = useCtx();
  const escalatedAt = (i) => ctx.outputMaybe(escalationOutput, { nodeId: `${prefix}-check-${i}` })?.escalated === true;
  const children = [];
  for (let i = 0; i < levels.length; i++) {
    // Level i runs once the check after level i-1 said to escalate.
    if (i > 0 && !escalatedAt(i - 1)) break;
    const level = levels[i];
    const levelId = `${prefix}-level-${i}`;
    children.push(
      jsx(Task, { id: levelId, output: level.output, agent: level.agent, continueOnFail: true, label: level.label ?? `Escalation level ${i}`, children: props.children }),
    );
    const last = i === levels.length - 1;
    if (last && !human) break;
    children.push(
      jsx(Task, {
        id: `${prefix}-check-${i}`,
        output: escalationOutput,
        label: `Check escalation from level ${i}`,
        // At execution, as Smithers documents: a failed level (no output) escalates.
        children: (taskCtx) => {
          const result = taskCtx.outputMaybe(level.output, { nodeId: levelId });
          const escalated = result === undefined || (level.escalateIf ? Boolean(level.escalateIf(result)) : false);
          return { escalated, fromLevel: i, toLevel: i + 1 };
        },
      }),
    );
    if (last && escalatedAt(i)) {
      const request = props.humanRequest ?? {
        title: "Escalation requires human review",
        summary: `All ${levels.length} automated levels have been exhausted.`,
      };
      children.push(jsx(Approval, { id: `${prefix}-human-fallback`, output: escalationOutput, request, continueOnFail: true, label: request.title }));
    }
  }
  return jsx(Sequence, { children });
}

/** `escalationOutput` must take every row the chain writes there, or the chain would stop midway. */
function checkEscalationSchema(schema, human, invalid) {
  const required = Array.isArray(schema?.required) ? schema.required : [];
  const closed = schema?.additionalProperties === false;
  const properties = schema?.properties ?? {};
  for (const [what, fields] of [["each check's", CHECK_FIELDS], ...(human ? [["the human fallback's decision", DECISION_FIELDS]] : [])]) {
    const extra = required.filter((f) => !fields.includes(f));
    const absent = closed ? fields.filter((f) => !Object.hasOwn(properties, f)) : [];
    if (extra.length || absent.length) {
      throw invalid(
        `escalationOutput holds ${what} {${fields.join(", ")}}${human ? " (checks and the human fallback's decision share it, as in Smithers)" : ""}, ` +
          `but its schema ${extra.length ? `requires ${extra.join(", ")}` : `has no ${absent.join(", ")}`}: give it those fields${human ? ", all optional" : ""}`,
        "escalationOutput",
      );
    }
  }
}

const SIGNAL_PROPS = new Set([
  "id", "schema", "correlationId", "timeoutMs", "onTimeout", "async", "skipIf", "dependsOn", "needs", "label", "meta", "children",
]);

/**
 * Smithers' `<Signal id schema>`: a `<WaitForEvent>` whose event is its id and whose output is
 * `schema`; `children(data)`, when given, mounts once the payload has arrived.
 * @param {Record<string, any>} props
 */
export function Signal(props) {
  checkProps("Signal", props, SIGNAL_PROPS);
  if (props.skipIf) return null;
  const { schema, children, ...rest } = props;
  const wait = jsx(WaitForEvent, { ...rest, event: props.id, output: schema });
  if (typeof children !== "function") return wait;
  const data = useCtx().outputMaybe(schema, { nodeId: props.id });
  return jsx(Sequence, { children: [wait, data === undefined ? null : children(data)] });
}
