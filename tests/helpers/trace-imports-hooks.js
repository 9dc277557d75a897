// Loader hooks for trace-imports.js (they run on Node's loader thread).
import { appendFileSync } from "node:fs";

let out = null;

export function initialize(file) {
  out = file;
}

export async function load(url, context, nextLoad) {
  if (out && url.startsWith("file:")) appendFileSync(out, `${url}\n`);
  return nextLoad(url, context);
}
