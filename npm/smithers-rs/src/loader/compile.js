// Workflow source files compiled to ES modules, synchronously and in this process: .ts, .mts,
// .cts, .tsx and .jsx by oxc-transform (napi-native: no service process, no worker), .mdx by
// @mdx-js/mdx. Both go through the on-disk cache (cache.js): a warm start loads neither
// compiler. The compiled text carries an inline source map, so stack traces name the user's
// file and line. A file that does not compile is an Error whose message starts with
// `WORKFLOW_LOAD_FAILED: <file>:<line>:<column>: `, the form loadWorkflow turns into a
// SmithersError.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cacheKey, cached } from "./cache.js";

// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { readFileSync } = process.getBuiltinModule("node:fs");
const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));

/** What each extension this package compiles is, for the compiler. */
export const LANGS = { ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx", ".jsx": "jsx", ".mdx": "mdx" };

/** Syntax the running Node has is left as written (`using` is lowered for Node 20 and 22). */
const TARGET = `node${process.versions.node.split(".")[0]}`;
/**
 * JSX compiles to this package's runtime; a `@jsxImportSource` pragma in the file wins
 * (`smithers-orchestrator`, which the resolve hook maps here). Decorators compile as
 * TypeScript's `experimentalDecorators` (Node runs no decorators yet). Helpers the lowering
 * needs are imported from @oxc-project/runtime, a dependency of this package.
 */
const SCRIPT_OPTIONS = (lang) => ({
  lang,
  sourceType: "module",
  target: TARGET,
  jsx: { runtime: "automatic", importSource: "smithers-rs", development: false },
  decorator: { legacy: true },
  sourcemap: true,
});
const MDX_OPTIONS = { jsxImportSource: "smithers-rs", development: false };

/**
 * The version of an installed package, from its package.json, without loading it. First
 * where Node's lookup would find it, `node_modules/<name>` in this folder or one above, which
 * costs a read or two; else through require.resolve (other layouts), which costs a few
 * milliseconds of package "exports" resolution at every start.
 */
function versionOf(name) {
  for (let dir = HERE; ; dir = dirname(dir)) {
    const found = packageVersion(join(dir, "node_modules", name), name);
    if (found) return found;
    if (dirname(dir) === dir) break;
  }
  for (let dir = dirname(require.resolve(name)); ; dir = dirname(dir)) {
    const found = packageVersion(dir, name);
    if (found) return found;
    if (dirname(dir) === dir) throw new Error(`WORKFLOW_LOAD_FAILED: cannot find the version of ${name}`);
  }
}

/** The version in `dir`/package.json when that is package `name`'s, else null. */
function packageVersion(dir, name) {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    return pkg.name === name ? pkg.version : null;
  } catch {
    return null;
  }
}

const versions = new Map();
const compilerId = (name) => {
  if (!versions.has(name)) versions.set(name, `${name}@${versionOf(name)}`);
  return versions.get(name);
};

/**
 * The ES module text of a source file.
 * @param {string} path absolute path
 * @param {string} source its text
 * @param {string} lang a value of LANGS
 */
export function compile(path, source, lang) {
  if (lang === "mdx") return cached(cacheKey(compilerId("@mdx-js/mdx"), MDX_OPTIONS, path, source), () => compileMdx(path, source));
  const options = SCRIPT_OPTIONS(lang);
  return cached(cacheKey(compilerId("oxc-transform"), options, path, source), () => compileScript(path, source, options));
}

/**
 * oxc-transform, required on first compile. Its napi-rs loader, like this package's
 * binding.cjs, loads the addon named by $NAPI_RS_NATIVE_LIBRARY_PATH instead of its own when
 * that is set, and here it names smithers-rs's addon (`npm run bench --addon`,
 * scripts/check-platforms.js), which has no transformSync: the variable is hidden from it
 * while it loads.
 */
let oxc;
function oxcTransform() {
  if (oxc) return oxc;
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
  delete process.env.NAPI_RS_NATIVE_LIBRARY_PATH;
  try {
    oxc = require("oxc-transform");
  } finally {
    if (override !== undefined) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = override;
  }
  return oxc;
}

function compileScript(path, source, options) {
  const { transformSync } = oxcTransform();
  const { code, map, errors } = transformSync(path, source, options);
  const error = errors.find((e) => e.severity === "Error");
  if (error) {
    const at = error.labels?.[0]?.start;
    throw new Error(`WORKFLOW_LOAD_FAILED: ${path}${at === undefined ? "" : `:${lineColumn(source, at)}`}: ${error.message}`);
  }
  // The map names the file by URL (what Node resolves `sources` against); the source text
  // is on disk, so it is not repeated in every entry.
  const sourceMap = { ...map, sources: [pathToFileURL(path).href], sourcesContent: undefined };
  return `${code}\n//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(sourceMap)).toString("base64")}\n`;
}

/** `line:column` (1-based) of a UTF-8 byte offset, as oxc reports them. */
function lineColumn(source, byteOffset) {
  const before = Buffer.from(source, "utf8").subarray(0, byteOffset).toString("utf8");
  const lines = before.split("\n");
  return `${lines.length}:${lines.at(-1).length + 1}`;
}

/** An MDX prompt as a module whose default export renders with this package's jsx-runtime. */
function compileMdx(path, source) {
  const { compileSync } = require("@mdx-js/mdx");
  try {
    return String(compileSync({ path, value: source }, MDX_OPTIONS));
  } catch (err) {
    const line = err?.line ?? err?.place?.line ?? err?.place?.start?.line;
    const column = err?.column ?? err?.place?.column ?? err?.place?.start?.column;
    const where = line ? `${path}:${line}${column ? `:${column}` : ""}` : path;
    throw new Error(`WORKFLOW_LOAD_FAILED: ${where}: ${err?.reason ?? err?.message ?? err}`);
  }
}
