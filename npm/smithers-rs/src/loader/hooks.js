// Node module hooks, so a workflow file can be imported as-is: .ts/.tsx/.jsx and .mdx compiled
// (compile.js, cached on disk), `smithers-orchestrator` mapped to this package, extensionless
// and TypeScript-style relative imports, and bare imports the workflow's folder cannot resolve.
// Failures become messages that start with a stable code (UNSUPPORTED_EXPORT,
// UNSUPPORTED_FILE_TYPE, WORKFLOW_LOAD_FAILED), which loadWorkflow turns into SmithersErrors.
//
// One implementation, two ways in (load.js picks):
// - `module.registerHooks` (Node >= 22.15 / 23.5): `syncHooks`, called in the importing
//   thread, synchronously;
// - `module.register` (older Node; deprecated): this file's `resolve` and `load` exports, run
//   on Node's loader thread.
// The steps are generators that yield each call to the next hook in the chain, so that the
// same code is driven synchronously or with `await`.
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { LANGS, compile } from "./compile.js";

// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { readFileSync, statSync } = process.getBuiltinModule("node:fs");

const ALIASES = ["smithers-orchestrator", "smithers-rs"];
/**
 * Set where this module was bundled into dist/ (scripts/bundle.js; undefined in src/), or
 * passed by a bundled install.js to Node's loader thread (`initialize`): the folder of the
 * bundle and its public entry points (`smithers-rs/tools` → `tools.js`).
 * @type {{ dir: string, entries: Record<string, string> } | undefined}
 */
let BUNDLE = import.meta.smithersBundle;

/** For `module.register`: what install.js passes (the bundle's, when it runs from one). */
export function initialize(data) {
  if (data?.bundle) BUNDLE = data.bundle;
}
/** This package's folder: bare imports from inside it may be the user's peers (`ai`). */
const PACKAGE_DIR = new URL("../../", import.meta.url).href;
/** Its ES modules (`src/`, "type": "module"). */
const PACKAGE_SRC = new URL("../", import.meta.url).href;
/** The workflow file that last imported this package, to resolve peers from its project. */
let userParent = null;
const PROBES = [".tsx", ".ts", ".jsx", ".js", ".mjs", ".mdx", "/index.tsx", "/index.ts", "/index.js"];
// TypeScript ESM style: `import "./util.js"` naming the source file util.ts.
const TS_SWAPS = { ".js": [".ts", ".tsx"], ".jsx": [".tsx"], ".mjs": [".mts"] };

/** `smithers-orchestrator[/sub]` -> `smithers-rs[/sub]`, or null. */
function aliasOf(specifier) {
  for (const name of ALIASES) {
    if (specifier === name || specifier.startsWith(`${name}/`)) return `smithers-rs${specifier.slice(name.length)}`;
  }
  return null;
}

const isRelative = (s) => s.startsWith("./") || s.startsWith("../") || s === "." || s === "..";
const isBare = (s) => !isRelative(s) && !s.startsWith("/") && !/^[a-zA-Z][a-zA-Z\d+.-]*:/.test(s);
const importedBy = (url) => (url?.startsWith("file:") ? ` (imported by ${fileURLToPath(url)})` : "");

function isFile(url) {
  try {
    return statSync(fileURLToPath(url)).isFile();
  } catch {
    return false;
  }
}

/** Resolution; each `yield [specifier, context]` is a call to the next resolve hook. */
function* resolveSteps(specifier, context) {
  const own = ownModule(specifier, context.parentURL);
  if (own) return { url: own, format: "module", shortCircuit: true };
  const alias = aliasOf(specifier);
  if (alias) {
    // Read before the next hook: Node may change the context object it is given.
    const importer = context.parentURL;
    if (importer?.startsWith("file:") && !importer.startsWith(PACKAGE_DIR)) userParent = importer;
    // Running from the bundle (dist/): its entry point, the module instances the CLI uses.
    const bundled = BUNDLE?.entries[alias];
    if (bundled) return { url: BUNDLE.dir + bundled, format: "module", shortCircuit: true };
    // Self-reference through this package's "exports": one runtime instance, whatever
    // copy (if any) sits next to the workflow file.
    try {
      return yield [alias, { ...context, parentURL: import.meta.url }];
    } catch (err) {
      if (err?.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw err;
      throw new Error(
        `UNSUPPORTED_EXPORT: ${specifier}${importedBy(importer)} is not provided by smithers-rs ` +
          "(it provides smithers-orchestrator, /tools, /jsx-runtime, /jsx-dev-runtime, /register, /serve)",
      );
    }
  }
  // A relative import that names no file (`./shape` for shape.tsx, `./util.js` for util.ts):
  // the file it means, found before Node's resolution fails on it. A failed resolution is
  // not cheap: Node decorates the error with CommonJS hints, which resolves again and loads
  // the source-map support for its stack (measured: issue 17's start-up).
  const parent = context.parentURL;
  // Imports only: a `require` of `./x` finds x.js itself (and takes no URL back).
  if (parent?.startsWith("file:") && context.conditions?.includes("import") && isRelative(specifier) && !/[?#]/.test(specifier) && !isFile(new URL(specifier, parent))) {
    const found = probe(specifier, parent);
    if (found) return yield [found, context];
  }
  try {
    return yield [specifier, context];
  } catch (err) {
    if (parent?.startsWith("file:") && (isRelative(specifier) || specifier.startsWith("/"))) {
      const found = probe(specifier, parent);
      if (found) return yield [found, context];
    } else if (isBare(specifier) && err?.code === "ERR_MODULE_NOT_FOUND") {
      // `zod` next to a workflow folder without node_modules: use what this package sees;
      // `ai` imported by this package (its tools) but installed in the user's project:
      // resolve it from the workflow that imported us.
      const parentURL = parent?.startsWith(PACKAGE_DIR) ? userParent : import.meta.url;
      if (parentURL) {
        try {
          return yield [specifier, { ...context, parentURL }];
        } catch {
          // fall through: the user's error is the useful one
        }
      }
    }
    throw err;
  }
}

/**
 * `./x.js` imported by a module of this package's `src/`, naming a file there: its URL as it
 * is, which is what Node's resolution would give (the importer's URL is already a real path),
 * without its realpath, stat and package scope lookups (a start resolves ~100 such imports
 * once the hooks exist). Anything else, a missing file included, goes the usual way.
 */
function ownModule(specifier, parentURL) {
  if (!parentURL?.startsWith(PACKAGE_SRC) || !specifier.endsWith(".js") || !(specifier.startsWith("./") || specifier.startsWith("../"))) return null;
  const url = new URL(specifier, parentURL);
  return url.href.startsWith(PACKAGE_SRC) && !url.href.includes("/node_modules/", PACKAGE_SRC.length) && isFile(url) ? url.href : null;
}

function probe(specifier, parentURL) {
  const base = specifier.replace(/\/$/, "");
  const candidates = PROBES.map((suffix) => base + suffix);
  const ext = extname(base);
  for (const swap of TS_SWAPS[ext] ?? []) candidates.push(base.slice(0, -ext.length) + swap);
  for (const candidate of candidates) {
    const url = new URL(candidate, parentURL);
    if (isFile(url)) return url.href;
  }
  return null;
}

/** Loading; `yield [url, context]` is a call to the next load hook. */
function* loadSteps(url, context) {
  const ext = url.startsWith("file:") ? extname(new URL(url).pathname) : "";
  const lang = LANGS[ext];
  if (lang) {
    const path = fileURLToPath(url);
    return { format: "module", source: compile(path, readFileSync(path, "utf8"), lang), shortCircuit: true };
  }
  try {
    return yield [url, context];
  } catch (err) {
    if (err?.code !== "ERR_UNKNOWN_FILE_EXTENSION") throw err;
    throw new Error(
      `UNSUPPORTED_FILE_TYPE: ${fileURLToPath(url)}: smithers-rs cannot load "${ext || "(no extension)"}" files ` +
        "(it loads .js .mjs .cjs .json .ts .mts .cts .tsx .jsx .mdx)",
    );
  }
}

/** Runs steps to the end, calling `next` for each yield. */
function runSync(steps, next) {
  let step = steps.next();
  while (!step.done) {
    let value;
    try {
      value = next(...step.value);
    } catch (err) {
      step = steps.throw(err);
      continue;
    }
    step = steps.next(value);
  }
  return step.value;
}

/** runSync for hooks whose `next` returns a promise. */
async function runAsync(steps, next) {
  let step = steps.next();
  while (!step.done) {
    let value;
    try {
      value = await next(...step.value);
    } catch (err) {
      step = steps.throw(err);
      continue;
    }
    step = steps.next(value);
  }
  return step.value;
}

/**
 * Running from the bundle: a public entry point of `src/` reached by its path (a workflow that
 * imports `…/smithers-rs/src/index.js`) is the bundle's too.
 */
function toBundle(result) {
  if (!BUNDLE || !result?.url?.startsWith(PACKAGE_SRC)) return result;
  const file = result.url.slice(PACKAGE_SRC.length);
  return Object.values(BUNDLE.entries).includes(file) ? { url: BUNDLE.dir + file, format: "module", shortCircuit: true } : result;
}

/** For `module.registerHooks`. */
export const syncHooks = {
  resolve: (specifier, context, nextResolve) => toBundle(runSync(resolveSteps(specifier, context), nextResolve)),
  load: (url, context, nextLoad) => runSync(loadSteps(url, context), nextLoad),
};

/** For `module.register`: Node calls these on its loader thread. */
export const resolve = async (specifier, context, nextResolve) => toBundle(await runAsync(resolveSteps(specifier, context), nextResolve));
export const load = (url, context, nextLoad) => runAsync(loadSteps(url, context), nextLoad);
