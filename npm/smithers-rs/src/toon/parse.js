// Reading a .toon workflow file: decode it with @toon-format/toon (strict mode: indentation,
// array length headers, duplicate keys), and keep a map from value paths to source lines so
// every later error can name the file, the line and the key.
import { decode } from "@toon-format/toon";
import { keyPath as pathString, locatedError as toonError } from "../errors.js";

// Errors name the file, the line and the key (shared with the Dagu loader).
export { pathString, toonError };

/**
 * Decodes a TOON document. Blank lines and whole-line `#` comments are dropped before
 * decoding (strict TOON refuses blank lines inside lists; Smithers' examples separate steps
 * with them); line numbers in errors are those of the file.
 * @param {string} text
 * @param {string} file for messages
 * @returns {{ doc: unknown, lineOf: (path: (string|number)[]) => number | null }}
 */
export function parseToon(text, file) {
  const all = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const kept = [];
  const lineNo = [];
  all.forEach((line, i) => {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) return;
    kept.push(line);
    lineNo.push(i + 1);
  });
  let doc;
  try {
    doc = decode(kept.join("\n"), { strict: true, indentSize: 2 });
  } catch (e) {
    const at = typeof e?.line === "number" ? e.line : null;
    const line = at !== null ? (lineNo[at - 1] ?? null) : null;
    let reason = String(e?.message ?? e).replace(/^Line \d+:\s*/, "");
    if (/after closing quote/i.test(reason) && at !== null && /"\s*\|/.test(kept[at - 1] ?? "")) {
      reason += `; a literal union is written 'a' | 'b' (or a | b, or the whole value quoted: "\\"a\\" | \\"b\\"")`;
    }
    const key = at !== null ? keyAtLine(kept, at, reason) : null;
    throw toonError("TOON_PARSE", reason, { file, line, key });
  }
  const lines = locate(kept);
  return {
    doc,
    lineOf(path) {
      // The nearest located ancestor: a value inside an inline array has no line of its own.
      for (let n = path.length; n > 0; n--) {
        const at = lines.get(pathString(path.slice(0, n)));
        if (at !== undefined) return lineNo[at - 1];
      }
      return null;
    },
  };
}

// ---------------------------------------------------------------- locating keys

const HEADER = /^\[[^\]]*\](\{[^}]*\})?:/;

/**
 * Maps each key path (`steps[1].request.title`) to its 1-based line in `lines`. The lines
 * decoded without error, so the structure is TOON's: `key: value`, `key:` (a block at depth
 * + 1), `key[N]…:` (an array: items or rows at depth + 1; a row of `key[N]{a,b}:` is item i),
 * `- ` list items whose first field shares the hyphen's line (that field's block at depth + 2).
 * @param {string[]} lines
 * @returns {Map<string, number>}
 */
function locate(lines) {
  const out = new Map();
  /** @type {{ childDepth: number, kind: "object" | "array", path: (string|number)[], count: number, tabular?: boolean }[]} */
  const stack = [{ childDepth: 0, kind: "object", path: [], count: 0 }];
  const keyLine = (content, parent, lineNo, nestedDepth) => {
    const key = readKey(content);
    if (key === null) return;
    const path = [...parent, key.name];
    out.set(pathString(path), lineNo);
    const rest = content.slice(key.end);
    const header = HEADER.exec(rest);
    if (header) {
      if (rest.slice(header[0].length).trim() === "") {
        stack.push({ childDepth: nestedDepth, kind: "array", path, count: 0, tabular: header[1] !== undefined });
      }
    } else if (rest.startsWith(":") && rest.slice(1).trim() === "") {
      stack.push({ childDepth: nestedDepth, kind: "object", path, count: 0 });
    }
  };
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    const indent = line.length - line.trimStart().length;
    const depth = Math.floor(indent / 2);
    const content = line.trim();
    while (stack.length > 1 && stack[stack.length - 1].childDepth > depth) stack.pop();
    const top = stack[stack.length - 1];
    if (top.kind === "array" && (content === "-" || content.startsWith("- "))) {
      const itemPath = [...top.path, top.count++];
      out.set(pathString(itemPath), lineNo);
      const rest = content.slice(1).trim();
      if (rest !== "" && readKey(rest) !== null) {
        stack.push({ childDepth: depth + 1, kind: "object", path: itemPath, count: 0 });
        keyLine(rest, itemPath, lineNo, depth + 2);
      }
    } else if (top.kind === "array" && top.tabular) {
      // A row of `key[N]{a,b}:` is item N of the array; its fields share its line.
      out.set(pathString([...top.path, top.count++]), lineNo);
    } else if (top.kind === "object") {
      keyLine(content, top.path, lineNo, depth + 1);
    }
  });
  return out;
}

/** The key at the start of `content` (`name:`, `"quoted key":`, `steps[2]:`), or null. */
function readKey(content) {
  if (content.startsWith('"')) {
    let i = 1;
    while (i < content.length && content[i] !== '"') i += content[i] === "\\" ? 2 : 1;
    if (i >= content.length) return null;
    let name;
    try {
      name = JSON.parse(content.slice(0, i + 1));
    } catch {
      return null;
    }
    const next = content[i + 1];
    return next === ":" || next === "[" ? { name, end: i + 1 } : null;
  }
  const m = /^([^\s:[\]"{}]+)(?=[:[])/.exec(content);
  return m ? { name: m[1], end: m[1].length } : null;
}

/**
 * The key to blame for a decode error at line `at` (1-based in `lines`): for a length
 * mismatch ("Expected N … but got M") the array whose header is wrong, else the innermost
 * key on or around that line.
 */
function keyAtLine(lines, at, reason) {
  const located = locate(lines.slice(0, at));
  let best = null;
  let bestLine = -1;
  const arrays = /expected \d+ .*but (got \d+|found more)/i.test(reason);
  for (const [path, line] of located) {
    if (line > at) continue;
    if (arrays) {
      // Array headers end with "]" in the source line; pick the last one opened before `at`.
      const src = lines[line - 1];
      if (!/\[[^\]]*\](\{[^}]*\})?:\s*$/.test(src) && !/\[\d+\]:\s*\S/.test(src)) continue;
      if (line === at && !/\[\d+\]:\s*\S/.test(src)) continue;
    }
    if (line >= bestLine) {
      best = path;
      bestLine = line;
    }
  }
  return best;
}
