// Reading a Dagu DAG file: parse it with the `yaml` package (YAML 1.2, duplicate keys
// refused) and keep a map from value paths to source lines, so every later error names the
// file, the line and the key, as the TOON loader does.
import { createRequire } from "node:module";
import { keyPath, locatedError } from "../errors.js";

// Required on first use (its CommonJS build, the one Node's import of "yaml" gives too):
// the package index exports compileDagu, and importing smithers-rs should not load a YAML
// parser for workflows that have none.
const require = createRequire(import.meta.url);

/**
 * @param {string} text
 * @param {string} file for messages
 * @returns {{ doc: unknown, lineOf: (path: (string | number)[]) => number | null }}
 */
export function parseDagu(text, file) {
  const { LineCounter, isMap, isPair, isScalar, isSeq, parseAllDocuments } = require("yaml");
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text.replace(/^\uFEFF/, ""), { lineCounter, uniqueKeys: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [];
  for (const d of list) {
    const e = d.errors[0];
    if (e) {
      const line = e.linePos?.[0]?.line ?? null;
      // "Map keys must be unique at line 2, column 1:" + a source excerpt: the first line, without the place.
      const reason = String(e.message).split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
      throw locatedError("DAGU_PARSE", reason, { file, line });
    }
  }
  if (list.length > 1) {
    const line = lineCounter.linePos(list[1].range?.[0] ?? 0).line;
    throw locatedError(
      "DAGU_UNSUPPORTED",
      "a file with several YAML documents (local sub-DAGs) is not supported: put each sub-DAG in a file of its own and call it by its name",
      { file, line },
    );
  }
  const document = list[0];
  if (!document || document.contents === null) return { doc: {}, lineOf: () => null };
  let doc;
  try {
    doc = document.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw locatedError("DAGU_PARSE", String(e?.message ?? e), { file });
  }
  const lines = new Map();
  const lineAt = (node) => (node?.range ? lineCounter.linePos(node.range[0]).line : null);
  const walk = (node, path) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const child = [...path, String(pair.key.value)];
        lines.set(keyPath(child), lineAt(pair.key));
        walk(pair.value, child);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const child = [...path, i];
        lines.set(keyPath(child), lineAt(item));
        walk(item, child);
      });
    }
  };
  walk(document.contents, []);
  return {
    doc,
    lineOf(path) {
      // The nearest located ancestor (a value inside an alias has no line of its own).
      for (let n = path.length; n > 0; n--) {
        const at = lines.get(keyPath(path.slice(0, n)));
        if (at != null) return at;
      }
      return lineAt(document.contents);
    },
  };
}
