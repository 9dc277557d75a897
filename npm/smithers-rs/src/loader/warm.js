// Loads this package's own modules (what every workflow imports, and the driver that runs it)
// before the workflow loader's hooks exist. With `module.register` (Node before 22.15 and
// 23.5), every module loaded once the hooks exist is resolved and loaded on Node's loader
// thread, two message round trips each; with `module.registerHooks` there is nothing to do.
// The entry points that load workflow files call it (the CLI, a driver worker; index.js's
// loadWorkflow loads the driver): load.js itself imports nothing of the package above it.
import { SYNC_HOOKS } from "./install.js";

/** @returns {Promise<unknown>} */
export const warm = () => (SYNC_HOOKS ? Promise.resolve() : Promise.all([import("../index.js"), import("../driver.js")]));
