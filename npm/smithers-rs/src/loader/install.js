import { register } from "node:module";

let registered = false;

/** Install the .tsx/.ts loader hooks (loader/hooks.js) once per process. */
export function registerLoader() {
  if (registered) return;
  registered = true;
  register(new URL("./hooks.js", import.meta.url));
}
