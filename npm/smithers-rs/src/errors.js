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

/**
 * A SmithersError about a place in a workflow file: `file:line: key: message`, with
 * details `{ file, line, key }` (TOON and Dagu YAML files).
 * @param {string} code
 * @param {string} message
 * @param {{ file: string, line?: number | null, key?: string | null, [k: string]: unknown }} where
 */
export function locatedError(code, message, { file, line = null, key = null, ...extra }) {
  const at = line ? `${file}:${line}` : file;
  // The key and the parser's message quote the file: an escape sequence in it is shown as
  // text (\u001b), never handed to whoever prints the error.
  const shownKey = key === null ? null : printable(key);
  const text = shownKey ? `${at}: ${shownKey}: ${printable(message)}` : `${at}: ${printable(message)}`;
  return new SmithersError(code, text, { file, line, key: shownKey, ...extra });
}

/**
 * Text for a terminal or a log line: control characters other than newline and tab (escape
 * sequences above all) written as `\u001b`, so a hostile file or name cannot drive the terminal.
 */
export function printable(text) {
  return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** `["steps", 2, "request", "title"]` -> `steps[2].request.title` */
export function keyPath(path) {
  let out = "";
  for (const part of path) out += typeof part === "number" ? `[${part}]` : out ? `.${part}` : part;
  return out;
}
