// TOON entry points for the package index. Both are async, so the decoder and compiler load
// on first use: importing smithers-rs does not pay for them.

/** @param {string} path */
export async function loadToonWorkflow(path) {
  const { loadToonWorkflow: load } = await import("./compile.js");
  return load(path);
}

/** @param {string} text @param {{ file?: string }} [options] */
export async function compileToon(text, options) {
  const { compileToon: compile } = await import("./compile.js");
  return compile(text, options);
}
