// Public entry point. `createElement` must stay: compilers import it from the package root
// for `<X {...props} key="k" />`.
export { Approval, Branch, HumanTask, Loop, MergeQueue, Parallel, Ralph, Sequence, Task, Workflow, Worktree, useCtx } from "./components.js";
export { ApprovalGate, EscalationChain, Runbook } from "./composites.js";
export { approval, branch, fields, loop, parallel, sequence, tableKeyFor, task, workflow } from "./builder.js";
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
export { compileDagu, loadDaguWorkflow } from "./dagu/compile.js";
export { SmithersEngine } from "./engine.js";
export { SmithersError } from "./errors.js";
export { createElement, Fragment, jsx, jsxs } from "./jsx-runtime.js";
export { loadWorkflow, registerLoader } from "./loader/load.js";
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
