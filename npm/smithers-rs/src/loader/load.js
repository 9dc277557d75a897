import module, { createRequire } from "node:module";
import { extname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { SmithersError } from "../errors.js";

// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { existsSync } = process.getBuiltinModule("node:fs");

let registered = false;
/** Node has `module.registerHooks` (22.15, 23.5 and later): hooks run in this thread. */
const SYNC_HOOKS = typeof module.registerHooks === "function";

/**
 * With `module.register`, every module loaded once the hooks exist is resolved and loaded on
 * Node's loader thread, two message round trips each: this package's own modules (what every
 * workflow imports, and the driver that runs it) are loaded before, without them.
 */
const preload = () => Promise.all([import("../index.js"), import("../driver.js")]);

/**
 * Install the workflow loader hooks (loader/hooks.js) once per process: in this thread with
 * `module.registerHooks` where Node has it (22.15, 23.5 and later), else on Node's loader
 * thread with `module.register`.
 */
export function registerLoader() {
  if (registered) return;
  registered = true;
  // Source maps of compiled files: stack traces name the user's file and line.
  process.setSourceMapsEnabled(true);
  if (SYNC_HOOKS) {
    // require(esm): registerLoader is synchronous, and every Node with registerHooks has it.
    module.registerHooks(createRequire(import.meta.url)("./hooks.js").syncHooks);
  } else {
    module.register(new URL("./hooks.js", import.meta.url));
  }
}

/**
 * Load a workflow file: a .toon file or a Dagu DAG (.yaml, .yml) is parsed and compiled
 * (toon/compile.js, dagu/compile.js); any other (.tsx, .ts, .jsx, .js) is imported and its
 * default export returned.
 * @param {string} path
 */
export async function loadWorkflow(path) {
  const absolute = resolve(path);
  // Node's ERR_MODULE_NOT_FOUND would blame load.js ("imported from …/load.js").
  if (!existsSync(absolute)) {
    throw new SmithersError("WORKFLOW_NOT_FOUND", `no such workflow file: ${absolute}`, { path: absolute });
  }
  if (extname(absolute) === ".toon") {
    const { loadToonWorkflow } = await import("../toon/compile.js");
    return loadToonWorkflow(absolute);
  }
  if (/\.ya?ml$/i.test(absolute)) {
    const { loadDaguWorkflow } = await import("../dagu/compile.js");
    return loadDaguWorkflow(absolute);
  }
  if (!SYNC_HOOKS) await preload();
  registerLoader();
  let mod;
  try {
    mod = await import(pathToFileURL(absolute).href);
  } catch (e) {
    throw loadError(e, absolute);
  }
  const workflow = mod.default;
  if (!workflow?.__smithersWorkflow) {
    throw new SmithersError(
      "INVALID_WORKFLOW",
      `${absolute}: the default export must be smithers((ctx) => …) (from createSmithers)`,
      { path: absolute },
    );
  }
  return workflow;
}

/** Where our own files are: a stack frame there is not the user's line. */
const PACKAGE_DIR = fileURLToPath(new URL("../../", import.meta.url));
const CODED = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/;

/**
 * A failure to import a workflow file, as a SmithersError with a stable code: what the
 * loader hooks refused (their message starts with the code), a name smithers-orchestrator
 * does not export, a module that cannot be found, or a workflow that threw while loading
 * (WORKFLOW_LOAD_FAILED with the file and line where it threw).
 * @param {any} e
 * @param {string} path the workflow file
 */
export function loadError(e, path) {
  if (e instanceof SmithersError) return e;
  const message = String(e?.message ?? e);
  const coded = CODED.exec(message);
  if (coded) {
    const [, code, rest] = coded;
    return new SmithersError(code, rest, { path, ...locationIn(rest) });
  }
  const missing = /The requested module '([^']+)' does not provide an export named '([^']+)'/.exec(message);
  if (missing && /^(smithers-orchestrator|smithers-rs)(\/|$)/.test(missing[1])) {
    const where = userFrame(e?.stack) ?? { file: path };
    return new SmithersError(
      "UNSUPPORTED_EXPORT",
      `${where.file}${where.line ? `:${where.line}` : ""}: ${missing[1]} has no export "${missing[2]}" in smithers-rs ` +
        "(README.md lists what is supported and where we differ from Smithers)",
      { path, module: missing[1], export: missing[2], ...where },
    );
  }
  if (e?.code === "ERR_MODULE_NOT_FOUND" || e?.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
    // Node names the importing file ("imported from …"); its stack is the loader's own.
    const importer = / imported from (\S+)/.exec(message)?.[1];
    const file = importer?.startsWith("file:") ? fileURLToPath(importer) : (importer ?? path);
    return new SmithersError("WORKFLOW_LOAD_FAILED", message, { path, file, cause: e.code });
  }
  const where = userFrame(e?.stack) ?? { file: path };
  const at = `${where.file}${where.line ? `:${where.line}` : ""}`;
  const kind = e?.name && e.name !== "Error" ? `${e.name}: ` : "";
  return new SmithersError("WORKFLOW_LOAD_FAILED", `${at}: ${kind}${message}`, { path, ...where });
}

/** `file:line[:column]` at the start of a hook's message. */
function locationIn(text) {
  const m = /^(\/[^:]+):(\d+)(?::(\d+))?:/.exec(text);
  return m ? { file: m[1], line: Number(m[2]), ...(m[3] ? { column: Number(m[3]) } : {}) } : {};
}

/** The first stack frame in a file of the user's (not node's, not this package's). */
function userFrame(stack) {
  for (const line of String(stack ?? "").split("\n")) {
    const m = /(?:^|[\s(])(file:\/\/[^\s)]+?|\/[^\s):]+):(\d+)(?::(\d+))?/.exec(line);
    if (!m) continue;
    const file = m[1].startsWith("file:") ? fileURLToPath(m[1]) : m[1];
    if (file.startsWith(PACKAGE_DIR) || file.includes("/node_modules/")) continue;
    return { file, line: Number(m[2]), ...(m[3] ? { column: Number(m[3]) } : {}) };
  }
  return null;
}
