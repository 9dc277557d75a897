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
