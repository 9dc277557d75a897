// Dagu's numeric statuses and labels (internal/core/status.go) for ours: the REST API
// (`serve/dagu.js`) answers with them, and handlers see the label as DAG_RUN_STATUS.

/** @type {Readonly<Record<import("../../binding.cjs").BindingRunStatus, readonly [number, string]>>} */
export const DAGU_RUN_STATUS = Object.freeze({
  running: [1, "running"],
  failed: [2, "failed"],
  cancelled: [3, "aborted"],
  finished: [4, "succeeded"],
  "waiting-approval": [7, "waiting"],
  "waiting-timer": [7, "waiting"],
  rejected: [8, "rejected"],
});

/** @type {Readonly<Partial<Record<import("../../binding.cjs").BindingNodeState, readonly [number, string]>>>} */
export const DAGU_NODE_STATUS = Object.freeze({
  pending: [0, "not_started"],
  "in-progress": [1, "running"],
  failed: [2, "failed"],
  cancelled: [3, "aborted"],
  finished: [4, "succeeded"],
  skipped: [5, "skipped"],
  "waiting-approval": [7, "waiting"],
  rejected: [8, "rejected"],
});
