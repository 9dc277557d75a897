// Public entry point. `createElement` must stay: compilers import it from the package root
// for `<X {...props} key="k" />`.
import { SYNC_HOOKS } from "./loader/install.js";
export { Approval, Branch, HumanTask, Loop, MergeQueue, Parallel, Ralph, Sequence, Task, Timer, WaitForEvent, Workflow, Worktree, useCtx } from "./components.js";
// The builder, the composites and the Dagu compiler load on first call (lazy.js).
export { ApprovalGate, EscalationChain, Runbook, Signal } from "./lazy.js";
export { approval, branch, fields, loop, parallel, sequence, tableKeyFor, task, workflow } from "./lazy.js";
export {
  AmpAgent,
  BaseCliAgent,
  ClaudeCodeAgent,
  CodexAgent,
  ForgeAgent,
  GeminiAgent,
  KimiAgent,
  PiAgent,
} from "./agents/cli.js";
export { renderMdx } from "./agents/prompt.js";
export { AnthropicAgent, OpenAIAgent } from "./agents/sdk.js";
export { createSmithers } from "./create.js";
export { compileDagu, loadDaguWorkflow } from "./lazy.js";
export { SmithersEngine, flushTraces } from "./engine.js";
export { SmithersError } from "./errors.js";
export { createElement, Fragment, jsx, jsxs } from "./jsx-runtime.js";
export { registerLoader } from "./loader/install.js";
export { engineBuild, engineVersion, runCommand } from "./native.js";
export { computeArgs, renderWorkflow } from "./render.js";
export {
  approvalDecisionSchema,
  approvalDecisionWithInputsSchema,
  approvalRankingSchema,
  approvalSelectionSchema,
  commandResultSchema,
  subRunResultSchema,
  toJsonSchema,
} from "./schema.js";
export { compileToon, loadToonWorkflow } from "./toon/index.js";

/**
 * Load a workflow file (a .tsx/.ts/.jsx/.js module's default export, a .toon file or a Dagu
 * DAG). The driver that will run it is loaded first (see loader/warm.js).
 * @param {string} path
 */
export async function loadWorkflow(path) {
  const [{ loadWorkflow: load }] = await Promise.all([import("./loader/load.js"), SYNC_HOOKS ? null : import("./driver.js")]);
  return load(path);
}
