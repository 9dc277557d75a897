// Exports of the package index whose modules load on their first call: the builder
// (builder.js, with toon/fields.js), the composite components (composites.js) and the Dagu
// compiler (dagu/compile.js, parse.js). A .tsx workflow's `smithers-orchestrator` import loads
// the index; a workflow that uses none of these does not pay for loading them (start-up:
// ARCHITECTURE.md). Each is a function of the same name that calls the real one, loaded with
// require (require(esm): Node 20.19+, 22.12+, synchronous like the call it stands for).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let builderModule;
let compositesModule;
let daguModule;
const builder = () => (builderModule ??= require("./builder.js"));
const composites = () => (compositesModule ??= require("./composites.js"));
const dagu = () => (daguModule ??= require("./dagu/compile.js"));

// builder.js (documented there and in index.d.ts)
export function approval(...args) {
  return builder().approval(...args);
}
export function branch(...args) {
  return builder().branch(...args);
}
export function fields(...args) {
  return builder().fields(...args);
}
export function loop(...args) {
  return builder().loop(...args);
}
export function parallel(...args) {
  return builder().parallel(...args);
}
export function sequence(...args) {
  return builder().sequence(...args);
}
export function tableKeyFor(...args) {
  return builder().tableKeyFor(...args);
}
export function task(...args) {
  return builder().task(...args);
}
export function workflow(...args) {
  return builder().workflow(...args);
}

// composites.js: components, called by the renderer with their props
export function ApprovalGate(props) {
  return composites().ApprovalGate(props);
}
export function EscalationChain(props) {
  return composites().EscalationChain(props);
}
export function Runbook(props) {
  return composites().Runbook(props);
}
export function Signal(props) {
  return composites().Signal(props);
}

// dagu/compile.js
export function compileDagu(...args) {
  return dagu().compileDagu(...args);
}
export async function loadDaguWorkflow(path) {
  return dagu().loadDaguWorkflow(path);
}
