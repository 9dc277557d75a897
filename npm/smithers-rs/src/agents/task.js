// An agent task's attempt, run by the driver: render the prompt, call `agent.generate` the
// way Smithers does, take the structured value from the answer, have the core check it
// against the output schema, ask once more when it does not fit, and report the value with
// what was asked and answered (the core keeps that on the attempt).
import { SmithersError } from "../errors.js";
import { describeThrown } from "../values.js";
import { runWithToolContext } from "./context.js";
import { addUsage, resultText, structuredValue, usageOf } from "./extract.js";
import { followUpPrompt, promptWithSchema, renderPromptText, schemaExample } from "./prompt.js";

/** What tools may return to the model, unless the task says otherwise (as Smithers). */
export const DEFAULT_MAX_OUTPUT_BYTES = 200_000;
/** How long one tool call may run, unless the task's timeout is shorter. */
export const DEFAULT_TOOL_TIMEOUT_MS = 60_000;

/**
 * @typedef {{ agents: any[], prompt: unknown, outputKey: string, outputSchema?: unknown,
 *   rootDir: string, allowNetwork?: boolean, maxOutputBytes?: number }} AgentTaskSpec
 */

/**
 * Runs one attempt of an agent task and returns the TaskResult to report.
 * @param {{ native: import("../native.js").NativeEngine, runId: string, task: any,
 *   spec: AgentTaskSpec, jsonSchema: object, logDir: string | null }} args
 */
export async function runAgentTask({ native, runId, task, spec, jsonSchema, logDir }) {
  const base = { nodeId: task.nodeId, iteration: task.iteration, attempt: task.attempt };
  const agent = spec.agents[Math.min(task.attempt - 1, spec.agents.length - 1)];
  const call = { agent: agentLabel(agent), model: modelLabel(agent), prompt: "", text: null, usage: null };
  const deadline = task.timeoutMs != null ? Date.now() + task.timeoutMs : null;
  const controller = new AbortController();
  let timer = null;
  const timedOut = new Promise((_, reject) => {
    if (deadline === null) return;
    timer = setTimeout(() => {
      const err = new SmithersError("TASK_TIMEOUT", `${task.nodeId} timed out after ${task.timeoutMs} ms`);
      controller.abort(err);
      reject(err);
    }, task.timeoutMs);
  });
  timedOut.catch(() => {});
  const toolCtx = {
    runId,
    nodeId: task.nodeId,
    iteration: task.iteration,
    attempt: task.attempt,
    rootDir: spec.rootDir,
    allowNetwork: spec.allowNetwork ?? false,
    maxOutputBytes: spec.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    timeoutMs: Math.min(DEFAULT_TOOL_TIMEOUT_MS, task.timeoutMs ?? Infinity),
    seq: 0,
    logDir,
    signal: controller.signal,
    logs: null,
    emitEvent: (event) => {
      const { type, ...payload } = event;
      try {
        native.recordDriverEvent(runId, type, JSON.stringify(payload));
      } catch {
        // The engine was closed meanwhile: nothing to record into.
      }
    },
  };
  const generate = (args) =>
    Promise.race([
      runWithToolContext(toolCtx, () =>
        agent.generate({
          options: undefined,
          abortSignal: controller.signal,
          ...args,
          rootDir: spec.rootDir,
          maxOutputBytes: toolCtx.maxOutputBytes,
          timeout: deadline !== null ? { totalMs: Math.max(1, deadline - Date.now()) } : undefined,
          onStdout: () => {},
          onStderr: () => {},
        }),
      ),
      timedOut,
    ]);

  const finish = (outcome) => {
    clearTimeout(timer);
    if (toolCtx.seq) call.toolCalls = toolCtx.seq;
    if (toolCtx.logs) Object.assign(call, toolCtx.logs);
    return { ...base, ...outcome, agent: call };
  };

  try {
    if (!agent || typeof agent.generate !== "function") {
      throw new SmithersError("INVALID_AGENT", `${task.nodeId}: the agent has no generate() method`);
    }
    call.prompt = promptWithSchema(taskPrompt(spec, jsonSchema, task), jsonSchema);
    const result = await generate({ prompt: call.prompt, outputSchema: spec.outputSchema });
    call.text = resultText(result);
    call.usage = usageOf(result);
    let answer = accept(native, runId, task.nodeId, structuredValue(result), jsonSchema);
    if (!answer.ok) {
      // One follow-up naming the fields, before the attempt counts as failed.
      const prompt = followUpPrompt({ schema: jsonSchema, previousText: call.text ?? "", problem: answer.problem });
      const again = await generate({ prompt });
      const text = resultText(again);
      call.usage = addUsage(call.usage, usageOf(again));
      call.followUp = { reason: answer.problem, prompt, text };
      answer = accept(native, runId, task.nodeId, structuredValue(again), jsonSchema);
    }
    if (!answer.ok) {
      return finish({
        ok: false,
        error: { code: "INVALID_OUTPUT", message: `${task.nodeId}: the agent's answer ${answer.problem} (also after a follow-up)` },
      });
    }
    return finish({ ok: true, value: answer.value });
  } catch (e) {
    // The agent may be told of the deadline too (`timeout.totalMs`: the ai package sets its own
    // timer for it) and give up a moment before ours fires: past the deadline it is a timeout.
    const timeout =
      (controller.signal.aborted && controller.signal.reason?.code === "TASK_TIMEOUT") ||
      (deadline !== null && deadline - Date.now() <= 5);
    // Whatever the agent threw, described without throwing again.
    const thrown = describeThrown(e);
    const error = timeout
      ? { code: "TASK_TIMEOUT", message: `${task.nodeId} timed out after ${task.timeoutMs} ms` }
      : { ...thrown, code: thrown.code ?? "AGENT_FAILED" };
    controller.abort(new SmithersError("TASK_ABORTED", "the attempt ended"));
    return finish({ ok: false, error });
  }
}

/** The prompt text: the children rendered, plus what a reviewer or an approver said. */
function taskPrompt(spec, jsonSchema, task) {
  let children = spec.prompt;
  // Smithers gives a prompt component an example of the output (`schema` prop).
  if (children && typeof children === "object" && "$$typeof" in children && children.props?.schema === undefined) {
    children = { ...children, props: { ...children.props, schema: JSON.stringify(schemaExample(jsonSchema), null, 2) } };
  }
  const parts = [renderPromptText(children)];
  if (task.pushBack) parts.push(pushBackNote(task.pushBack));
  const inputs = Object.entries(task.inputs ?? {});
  if (inputs.length && !task.pushBack) {
    parts.push(`Inputs given by the approver:\n${inputs.map(([k, v]) => `- ${k}: ${v}`).join("\n")}`);
  }
  return parts.join("\n\n");
}

/** A reviewer sent the previous answer back: say so, with their note, inputs and that answer. */
function pushBackNote(pushBack) {
  const lines = [`A reviewer sent your previous answer back (review round ${pushBack.iteration ?? "?"}). Revise it.`];
  if (pushBack.note) lines.push(`Reviewer's note: ${pushBack.note}`);
  for (const [k, v] of Object.entries(pushBack.inputs ?? {})) lines.push(`${k}: ${v}`);
  const previous = [...(pushBack.history ?? [])].reverse().find((h) => h?.output !== undefined && h?.output !== null);
  if (previous) lines.push(`Your previous answer:\n${JSON.stringify(previous.output, null, 2)}`);
  return lines.join("\n");
}

/**
 * Whether the core's schema check accepts the value. Top-level fields the schema does not
 * have are dropped first, as a zod object's parse drops them in Smithers.
 */
function accept(native, runId, nodeId, found, jsonSchema) {
  if (!found.found) return { ok: false, problem: "contains no JSON object" };
  let value = found.value;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return { ok: false, problem: "is not JSON" };
    }
  }
  if (value && typeof value === "object" && !Array.isArray(value) && jsonSchema.additionalProperties === false) {
    const known = jsonSchema.properties ?? {};
    value = Object.fromEntries(Object.entries(value).filter(([k]) => Object.hasOwn(known, k)));
  }
  try {
    native.checkOutput(runId, nodeId, JSON.stringify(value ?? null));
    return { ok: true, value };
  } catch (e) {
    if (e?.code !== "INVALID_OUTPUT") throw e;
    return { ok: false, problem: `does not match the schema: ${e.message}` };
  }
}

/** What the agent is, for the attempt record: its id, else its class. */
export function agentLabel(agent) {
  if (!agent || typeof agent !== "object") return null;
  if (typeof agent.id === "string" && agent.id) return agent.id;
  const name = agent.constructor?.name;
  return name && name !== "Object" ? name : "agent";
}

function modelLabel(agent) {
  try {
    const model = agent?.model ?? agent?.settings?.model;
    if (typeof model === "string") return model;
    if (model && typeof model.modelId === "string") return model.provider ? `${model.provider}:${model.modelId}` : model.modelId;
  } catch {
    // a getter that throws: no model to name
  }
  return null;
}
