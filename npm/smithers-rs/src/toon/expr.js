// Expressions in TOON workflows: `run:` bodies, conditions (`until`, `condition`, `skipIf`)
// and `{…}` interpolation in strings. They are JavaScript, evaluated with these names:
//   input   the workflow's input (a sub-workflow's mapped input)
//   <id>    the latest output row of step <id> (undefined until it has one); hyphenated ids
//           too: `approve-deploy.approved` is read as steps["approve-deploy"].approved
//   steps   every step of the file by id (read on access)
//   loop    { iteration }: 1-based iteration of the enclosing loop (else of the last loop
//           before this node in the file; 0 when there is none)
//   ctx     the render's ctx (outputMaybe, latest, …)
// A small scanner finds which step ids an expression names (they become dependencies and
// are the only outputs it reads), skipping strings, comments, regex literals and
// property names after a dot.

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;

/** Names every expression sees; a step may not take one of them as its id. */
export const SCOPE_NAMES = ["input", "loop", "ctx", "steps"];

// Words after which a `/` starts a regex literal rather than a division.
const REGEX_AFTER_WORDS = new Set([
  "return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void", "throw", "instanceof", "yield", "await",
]);
const IDENT_START = /[A-Za-z_$]/;
const IDENT_PART = /[A-Za-z0-9_$]/;

/** JavaScript reserved words (and literals) that cannot be used as a parameter name. */
export const RESERVED = new Set(
  (
    "break case catch class const continue debugger default delete do else enum export extends false finally for " +
    "function if import in instanceof new null return super switch this throw true try typeof var void while with " +
    "yield let static implements interface package private protected public await arguments eval undefined NaN Infinity"
  ).split(" "),
);

export class ExpressionSyntaxError extends Error {}

/**
 * Scans JavaScript source from `start`. With `untilBrace`, stops at the `}` that closes an
 * enclosing `{` (the end of an interpolation) and returns its index.
 * Calls `onName(start, end, name)` for each name read as a variable (not a property).
 * `hyphenated` lists ids with `-` to match as one name (longest first).
 * @returns {number} index of the closing brace, or src.length
 */
function scan(src, start, { untilBrace = false, hyphenated = [], onName = () => {} } = {}) {
  let i = start;
  let depth = 0;
  // What the last significant token was, to tell a regex literal from a division.
  let last = "start"; // "start" | "punct" | "value" | "word:<w>"
  while (i < src.length) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      while (i < src.length && src[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) throw new ExpressionSyntaxError("unterminated comment");
      i = end + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      i = skipString(src, i, c);
      last = "value";
      continue;
    }
    if (c === "`") {
      i = skipTemplate(src, i, hyphenated, onName);
      last = "value";
      continue;
    }
    if (c === "/") {
      const regex = last === "start" || last === "punct" || (last.startsWith("word:") && REGEX_AFTER_WORDS.has(last.slice(5)));
      if (regex) {
        i = skipRegex(src, i);
        last = "value";
      } else {
        i++;
        last = "punct";
      }
      continue;
    }
    if (IDENT_START.test(c)) {
      let end = i + 1;
      while (end < src.length && IDENT_PART.test(src[end])) end++;
      for (const id of hyphenated) {
        if (src.startsWith(id, i) && !/[A-Za-z0-9_$-]/.test(src[i + id.length] ?? "")) {
          end = i + id.length;
          break;
        }
      }
      const name = src.slice(i, end);
      if (!isPropertyPosition(src, i)) onName(i, end, name);
      last = RESERVED.has(name) ? `word:${name}` : "value";
      i = end;
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      i++;
      while (i < src.length && /[A-Za-z0-9_.]/.test(src[i])) i++;
      last = "value";
      continue;
    }
    if (c === "{") depth++;
    if (c === "}") {
      if (depth === 0 && untilBrace) return i;
      depth--;
    }
    last = c === ")" || c === "]" || c === "}" ? "value" : "punct";
    i++;
  }
  if (untilBrace) throw new ExpressionSyntaxError("unclosed { in interpolation");
  return i;
}

function skipString(src, i, quote) {
  let j = i + 1;
  while (j < src.length && src[j] !== quote) {
    if (src[j] === "\\") j++;
    else if (src[j] === "\n") break;
    j++;
  }
  if (src[j] !== quote) throw new ExpressionSyntaxError("unterminated string");
  return j + 1;
}

function skipTemplate(src, i, hyphenated, onName) {
  let j = i + 1;
  while (j < src.length) {
    if (src[j] === "\\") {
      j += 2;
      continue;
    }
    if (src[j] === "`") return j + 1;
    if (src[j] === "$" && src[j + 1] === "{") {
      j = scan(src, j + 2, { untilBrace: true, hyphenated, onName }) + 1;
      continue;
    }
    j++;
  }
  throw new ExpressionSyntaxError("unterminated template literal");
}

function skipRegex(src, i) {
  let j = i + 1;
  let inClass = false;
  while (j < src.length && src[j] !== "\n") {
    const c = src[j];
    if (c === "\\") j++;
    else if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    else if (c === "/" && !inClass) {
      j++;
      while (j < src.length && /[a-z]/i.test(src[j])) j++;
      return j;
    }
    j++;
  }
  throw new ExpressionSyntaxError("unterminated regular expression");
}

/** `a.b` / `a?.b`: b is a property, not a variable; `...b` (spread) is a variable. */
function isPropertyPosition(src, i) {
  let j = i - 1;
  while (j >= 0 && /\s/.test(src[j])) j--;
  if (src[j] !== ".") return false;
  return !(src[j - 1] === "." && src[j - 2] === ".");
}

/**
 * The step names an expression reads, and the source with hyphenated ids rewritten to
 * `steps["id"]`.
 * @param {string} src
 * @param {Set<string>} names step ids in scope
 * @returns {{ source: string, refs: string[] }}
 */
export function analyse(src, names) {
  const hyphenated = [...names].filter((n) => n.includes("-")).sort((a, b) => b.length - a.length);
  const refs = new Set();
  const edits = [];
  scan(src, 0, {
    hyphenated,
    onName(start, end, name) {
      if (!names.has(name)) return;
      refs.add(name);
      if (name.includes("-")) edits.push([start, end, `steps[${JSON.stringify(name)}]`]);
    },
  });
  let source = src;
  for (const [start, end, text] of edits.reverse()) source = source.slice(0, start) + text + source.slice(end);
  return { source, refs: [...refs] };
}

/**
 * Splits `Deploy {build.version} to {input.env}` into literal and expression parts.
 * `{{` and `}}` stand for literal braces.
 * @returns {({ text: string } | { expr: string, offset: number })[]}
 */
export function splitTemplate(str) {
  const parts = [];
  let text = "";
  let i = 0;
  while (i < str.length) {
    const c = str[i];
    if (c === "{" && str[i + 1] === "{") {
      text += "{";
      i += 2;
    } else if (c === "}" && str[i + 1] === "}") {
      text += "}";
      i += 2;
    } else if (c === "{") {
      const end = scan(str, i + 1, { untilBrace: true });
      const expr = str.slice(i + 1, end);
      if (expr.trim() === "") throw new ExpressionSyntaxError("empty {} in interpolation (write {{}} for literal braces)");
      if (text) parts.push({ text });
      text = "";
      parts.push({ expr, offset: i + 1 });
      i = end + 1;
    } else {
      text += c;
      i++;
    }
  }
  if (text || parts.length === 0) parts.push({ text });
  return parts;
}

/**
 * Compiles an expression or a function body into a function of the scope names, the
 * referenced step names that are JavaScript identifiers, in that order.
 * @param {string} source already analysed (hyphenated ids rewritten)
 * @param {string[]} refs
 * @param {{ body?: boolean }} [opts] body: statements (AsyncFunction), or an expression
 * @returns {{ fn: Function, params: string[] }}
 */
export function compileFunction(source, refs, { body = false } = {}) {
  const params = [...SCOPE_NAMES, ...refs.filter((r) => !r.includes("-"))];
  if (!body) return { fn: new Function(...params, `"use strict";\nreturn (\n${source}\n);`), params };
  // A body is an expression (`({ version: "1" })`) or statements with `return`. The block
  // lets the body declare a name that is also a step id.
  try {
    return { fn: new AsyncFunction(...params, `"use strict";\nreturn (\n${source}\n);`), params };
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
  }
  return { fn: new AsyncFunction(...params, `"use strict";\n{\n${source}\n}`), params };
}
