// The vocabulary the JS layer shares with the core (crates/smithers-core/src/contract.rs):
// statuses, what each error code means to the CLI and to HTTP, scopes, run ids, SQL names.
// Read once from the binding; nothing here keeps a copy of its own.
import { binding } from "./native.js";

/** The contract as the binding gives it (also served to the inbox as /assets/contract.js). */
export const CONTRACT = Object.freeze(binding.contract());

/** @type {readonly import("../binding.cjs").BindingRunStatus[]} */
export const RUN_STATUSES = Object.freeze(CONTRACT.runStatuses.map((s) => s.status));
/** @type {readonly import("../binding.cjs").BindingNodeState[]} */
export const NODE_STATES = Object.freeze(CONTRACT.nodeStates.map((s) => s.state));
/** @type {readonly import("../binding.cjs").BindingApprovalStatus[]} */
export const APPROVAL_STATUSES = Object.freeze(CONTRACT.approvalStatuses.map((s) => s.status));
/** The statuses of a webhook delivery: pending, sending, delivered, failed. */
export const DELIVERY_STATUSES = Object.freeze([...CONTRACT.deliveryStatuses]);

const TERMINAL = new Set(CONTRACT.runStatuses.filter((s) => s.terminal).map((s) => s.status));
const RUN_EXIT = new Map(CONTRACT.runStatuses.map((s) => [s.status, s.exitCode]));

/** Whether a run in `status` has ended (finished, failed, cancelled, rejected). */
export const isTerminal = (status) => TERMINAL.has(status);

/** The CLI's exit code for a run that stopped in `status` (0 finished, 3 waiting, 2 cancelled, 1 failed). */
export const runExitCode = (status) => RUN_EXIT.get(status) ?? 1;

/**
 * What error `code` means beyond its message: `exitCode` (the CLI's: 4 for usage and lookup
 * errors), `httpStatus`, `lookup`, `finalForDecision`.
 * @param {string} code
 * @returns {import("../binding.cjs").BindingErrorMeta}
 */
export const errorMeta = (code) => CONTRACT.errorCodes[code] ?? CONTRACT.otherError;

/** Environment variable names no approver input or workflow param may use. */
export const RESERVED_ENV = CONTRACT.reservedEnv;

/** Whether holding scope `held` satisfies `needed` (`approve` covers `read`, `deploy:*` covers `deploy:prod`). */
export const scopeCovers = (held, needed) => binding.scopeCovers(held, needed);

/** A run id: 1-128 letters, digits and `_ . : -`, not dots only. */
export const isRunId = (id) => typeof id === "string" && binding.isRunId(id);

/** The SQL name of an output key or field: `publishApproval` → `publish_approval`. */
export const snakeCase = (name) => binding.snakeCase(name);

/** Why `name` cannot be an SQL identifier (`^[A-Za-z][A-Za-z0-9_]*$`, ≤ 63 bytes), or null. */
export const identifierProblem = (name) => (typeof name === "string" ? binding.identifierProblem(name) : "it is not a string");

/** Why `key` cannot be an output key (its table would be reserved, …), or null. */
export const tableKeyProblem = (key) => (typeof key === "string" ? binding.tableKeyProblem(key) : "it is not a string");

/** Why `name` cannot be a field of an output schema (a key column of every table, …), or null. */
export const fieldProblem = (name) => (typeof name === "string" ? binding.fieldProblem(name) : "it is not a string");
