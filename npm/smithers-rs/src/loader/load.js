import { existsSync } from "node:fs";
import { register } from "node:module";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { SmithersError } from "../errors.js";

let registered = false;

/** Install the .tsx/.ts loader hooks (loader/hooks.js) once per process. */
export function registerLoader() {
  if (registered) return;
  registered = true;
  register(new URL("./hooks.js", import.meta.url));
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
  registerLoader();
  const mod = await import(pathToFileURL(absolute).href);
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
