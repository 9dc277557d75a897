import { existsSync } from "node:fs";
import { register } from "node:module";
import { resolve } from "node:path";
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
 * Import a workflow file (.tsx, .ts, .jsx, .js) and return its default export.
 * @param {string} path
 */
export async function loadWorkflow(path) {
  registerLoader();
  const absolute = resolve(path);
  // Node's ERR_MODULE_NOT_FOUND would blame load.js ("imported from …/load.js").
  if (!existsSync(absolute)) {
    throw new SmithersError("WORKFLOW_NOT_FOUND", `no such workflow file: ${absolute}`, { path: absolute });
  }
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
