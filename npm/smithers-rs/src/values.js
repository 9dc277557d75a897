// What workflow code hands back to the driver (results, thrown values) made safe to send to the
// core: every result is checked on its own, so one value JSON cannot carry fails its own task
// (INVALID_OUTPUT, retries apply) and never the batch it travels in; every thrown value, however
// strange, becomes a plain `{code, name, message, stack}` without throwing again.

import { SmithersError } from "./errors.js";

/** How deeply an output may nest; the core checks the same limit (output.rs MAX_OUTPUT_DEPTH). */
export const MAX_OUTPUT_DEPTH = 100;
const MAX_MESSAGE = 16 * 1024;
const CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** Reads a property of anything (a Proxy, a getter that throws) without throwing. */
function read(value, key) {
  try {
    return value?.[key];
  } catch {
    return undefined;
  }
}

/** Text that survives JSON and UTF-8: lone surrogates replaced, bounded. */
function clean(text, max = MAX_MESSAGE) {
  const whole = String(text).toWellFormed();
  return whole.length > max ? `${whole.slice(0, max)}…` : whole;
}

/** `String(value)`, or a description when even that throws (`Object.create(null)`, a Proxy). */
function asText(value) {
  for (const attempt of [() => String(value), () => Object.prototype.toString.call(value)]) {
    try {
      const text = attempt();
      if (typeof text === "string") return text;
    } catch {
      // try the next way
    }
  }
  return `a thrown ${typeof value} that cannot be turned into text`;
}

/**
 * Any thrown value as an error the core records: `code` only when it is a stable code (a
 * string like `TASK_TIMEOUT`), `message` always (text, well-formed).
 * @returns {{ code: string | null, name: string | null, message: string, stack: string | null }}
 */
export function describeThrown(thrown) {
  const message = read(thrown, "message");
  const code = read(thrown, "code");
  const name = read(thrown, "name");
  const stack = read(thrown, "stack");
  return {
    code: typeof code === "string" && CODE.test(code) ? code : null,
    name: typeof name === "string" ? clean(name, 256) : null,
    message: clean(typeof message === "string" ? message : asText(thrown)),
    stack: typeof stack === "string" ? clean(stack) : null,
  };
}

/** `thrown instanceof SmithersError`, even for a Proxy whose traps throw. */
export function isSmithersError(thrown) {
  try {
    return thrown instanceof SmithersError;
  } catch {
    return false;
  }
}

class Unstorable extends Error {}

/**
 * JSON text of `value`, or throws Unstorable saying why it cannot be stored: a lone surrogate
 * (a string cut inside an emoji) in a string or a key, a BigInt, a cycle, a `toJSON` that
 * throws, nesting deeper than MAX_OUTPUT_DEPTH, a function or a symbol.
 */
function storable(value) {
  if (value === undefined) return "null"; // a body that returns nothing
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new Unstorable(e instanceof TypeError && /circular/i.test(read(e, "message") ?? "") ? "it is circular" : describeThrown(e).message);
  }
  if (text === undefined) throw new Unstorable(`a ${typeof value} is not a value`);
  // Cheap tests on the text first: only an escaped surrogate or many brackets need a closer look.
  const brackets = text.length > MAX_OUTPUT_DEPTH ? (text.match(/[[{]/g)?.length ?? 0) : 0;
  if (/\\u[dD][89a-fA-F]/.test(text) || brackets > MAX_OUTPUT_DEPTH) check(value);
  return text;
}

/** The exact checks, walking the value as JSON.stringify does (after `toJSON`). */
function check(value) {
  const depths = new WeakMap();
  JSON.stringify(value, function (key, v) {
    if (!key.isWellFormed()) throw new Unstorable(`the key ${JSON.stringify(key)} is not valid Unicode text (a lone surrogate)`);
    if (typeof v === "string" && !v.isWellFormed()) {
      throw new Unstorable(`${key ? `the value at ${JSON.stringify(key)}` : "a string"} is not valid Unicode text (a lone surrogate: a string cut inside a character?)`);
    }
    if (v !== null && typeof v === "object") {
      const depth = (depths.get(this) ?? 0) + 1;
      if (depth > MAX_OUTPUT_DEPTH) throw new Unstorable(`it nests deeper than ${MAX_OUTPUT_DEPTH} levels`);
      depths.set(v, depth);
    }
    return v;
  });
}

/** Strings made well-formed, BigInts written as text: for what a result says about itself. */
const lenient = (_key, v) => (typeof v === "string" ? v.toWellFormed() : typeof v === "bigint" ? String(v) : v);

/**
 * Everything of a result but its value (ids, the error, a command's outcome, an agent call's
 * prompt, answer and usage) as JSON the core can read. Text a model or a body produced may
 * hold lone surrogates: made well-formed. If that is not enough (a cycle, a key that is not
 * text), only what the core needs is kept.
 */
function encodeHead(rest) {
  try {
    const text = JSON.stringify(rest, lenient);
    if (!/\\u[dD][89a-fA-F]/.test(text)) return text;
  } catch {
    // fall through
  }
  const { nodeId, iteration, attempt, ok, error, command } = rest;
  return JSON.stringify({ nodeId, iteration, attempt, ok, error, command }, lenient);
}

/**
 * One task's result as JSON text for `completeTasks`. A value JSON cannot carry turns the
 * result into the task's failure (`INVALID_OUTPUT`, retryable).
 * @param {{ nodeId: string, iteration: number, attempt: number, ok: boolean, value?: unknown, error?: any, command?: any }} result
 */
export function encodeResult(result) {
  const { value, ...rest } = result;
  const head = encodeHead(rest);
  if (!result.ok || result.command) return head;
  try {
    return `${head.slice(0, -1)},"value":${storable(value)}}`;
  } catch (e) {
    if (!(e instanceof Unstorable)) throw e;
    const { nodeId, iteration, attempt } = result;
    return JSON.stringify({
      nodeId,
      iteration,
      attempt,
      ok: false,
      error: { code: "INVALID_OUTPUT", name: null, message: `the output of ${nodeId} cannot be stored as JSON: ${e.message}`, stack: null },
    });
  }
}
