import module, { createRequire } from "node:module";

let registered = false;
/** Node has `module.registerHooks` (22.15, 23.5 and later): hooks run in this thread. */
export const SYNC_HOOKS = typeof module.registerHooks === "function";

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
    // From the bundle (dist/), the hooks on that thread resolve the package to its instances.
    module.register(new URL("./hooks.js", import.meta.url), { data: { bundle: import.meta.smithersBundle } });
  }
}
