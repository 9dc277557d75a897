/**
 * The one error type thrown by the JS layer. `code` is a stable string (the same
 * vocabulary as the Rust core's `Error::code`), `details` carries structured fields.
 */
export class SmithersError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [details]
   */
  constructor(code, message, details) {
    super(message);
    this.name = "SmithersError";
    this.code = code;
    this.details = details ?? {};
  }
}

/** Codes that mean "what you named does not exist or is ambiguous" (CLI exit 4). */
export const LOOKUP_CODES = new Set([
  "RUN_NOT_FOUND",
  "NODE_NOT_FOUND",
  "NO_PENDING_APPROVALS",
  "AMBIGUOUS_APPROVAL",
  "USAGE",
  "DB_NOT_FOUND",
  "WORKFLOW_NOT_FOUND",
  "INVALID_RUN_ID",
]);
