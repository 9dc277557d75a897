// Public entry point. (Placeholder from the render branch: the driver / Node API will
// add their exports here.) `createElement` must stay: compilers import it from the
// package root for `<X {...props} key="k" />`.
export { Approval, Branch, Loop, Parallel, Ralph, Sequence, Task, Workflow, useCtx } from "./components.js";
export { createSmithers } from "./create.js";
export { SmithersError } from "./errors.js";
export { createElement, Fragment, jsx, jsxs } from "./jsx-runtime.js";
export { loadWorkflow, registerLoader } from "./loader/load.js";
export { computeArgs, renderWorkflow } from "./render.js";
export { approvalDecisionSchema, approvalRankingSchema, approvalSelectionSchema, toJsonSchema } from "./schema.js";
