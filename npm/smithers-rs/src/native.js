// The native engine, and the one place its JSON answers become values or SmithersErrors.
import { createRequire } from "node:module";
import { SmithersError } from "./errors.js";

const require = createRequire(import.meta.url);
const { loadBinding } = require("./binding-load.cjs");
/** @type {typeof import("../binding.cjs")} */
let binding;
try {
  binding = loadBinding();
} catch (e) {
  throw new SmithersError(e.code, e.message, e.details);
}

export { LOOKUP_CODES } from "./errors.js";

/** `found` and `supported` of a SCHEMA_TOO_NEW / SCHEMA_OUTDATED message ("schema v3; … reads v4"). */
function schemaVersions(message) {
  const m = /schema v(\d+)[^]*?reads v(\d+)/.exec(message);
  return m ? { found: Number(m[1]), supported: Number(m[2]) } : {};
}

/** Thin typed wrapper: every call returns the value or throws a SmithersError. */
export class NativeEngine {
  /**
   * @param {string} dbPath
   * @param {{ mustExist?: boolean, readOnly?: boolean, leaseMs?: number }} [options] a missing
   *   file is DB_NOT_FOUND (`mustExist`, `readOnly`); read only never migrates nor writes
   */
  constructor(dbPath, options) {
    const given = options && Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined && v !== false));
    try {
      this.raw = given && Object.keys(given).length ? new binding.Engine(dbPath, JSON.stringify(given)) : new binding.Engine(dbPath);
    } catch (e) {
      const [code, ...rest] = String(e?.message ?? e).split(": ");
      const known = /^[A-Z_]+$/.test(code);
      throw new SmithersError(known ? code : "DB_ERROR", rest.join(": ") || String(e), { dbPath, ...schemaVersions(rest.join(": ")) });
    }
    this.dbPath = dbPath;
  }

  /** @param {string} method @param {...any} args */
  call(method, ...args) {
    const answer = JSON.parse(this.raw[method](...args));
    if (answer.ok) return answer.value;
    const { code, message, details } = answer.error;
    throw new SmithersError(code, message, details ?? {});
  }

  close() {
    this.raw.close();
  }
}

/**
 * Runs a command task's process with the core's runner (on a thread of its own).
 * @param {any} spec a CommandSpec from a step's task
 * @returns {Promise<{ exitCode: number | null, signal: number | null, timedOut: boolean, stdout: string,
 *   stderr: string, stdoutTruncated: boolean, stderrTruncated: boolean, durationMs: number, spawnError?: string | null }>}
 */
export const runCommand = async (spec) => JSON.parse(await binding.runCommand(JSON.stringify(spec)));

/**
 * Stops a command started by `runCommand` with this `cancelId` (its process group gets
 * SIGTERM, SIGKILL two seconds later). False when none is running under that id.
 * @param {string} cancelId
 */
export const cancelCommand = (cancelId) => binding.cancelCommand(cancelId);

/**
 * Writes to the stdin of a command started by `runCommand` with this `cancelId` and
 * `keepStdinOpen: true` (queued; never blocks). False when its stdin is not open.
 * @param {string} cancelId
 * @param {string} text
 */
export const writeCommandStdin = (cancelId, text) => binding.writeCommandStdin(cancelId, text);

export const engineVersion = () => binding.engineVersion();
/** Names no approver input or Dagu param may use: `{ exact: string[], prefixes: string[] }`. */
export const reservedEnv = () => JSON.parse(binding.reservedEnv());
/** "debug" or "release": how the native addon was compiled. */
export const engineBuild = () => binding.engineBuild();
