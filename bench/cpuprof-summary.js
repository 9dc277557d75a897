// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time by function.
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/one.js compute sequence 1000
//   node bench/cpuprof-summary.js /tmp/prof/*.cpuprofile [top=25]
// Native engine calls show up as self time of the JS function that calls the binding
// (NativeEngine's methods -> `this.raw[method]`), since V8 cannot see inside the addon.
import { readFileSync } from "node:fs";

const [file, topArg = "25"] = process.argv.slice(2);
if (!file) {
  console.error("usage: node bench/cpuprof-summary.js FILE.cpuprofile [top]");
  process.exit(4);
}
const top = Number(topArg);
const prof = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Time per sample from timeDeltas.
const selfUs = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  const dt = prof.timeDeltas[i] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const name = (n) => {
  const f = n.callFrame;
  const url = f.url ? f.url.replace(/^file:\/\//, "").replace(/.*\/(npm\/smithers-rs\/|bench\/)/, "$1") : "";
  return `${f.functionName || "(anonymous)"} ${url ? `${url}:${f.lineNumber + 1}` : ""}`.trim();
};
const self = new Map();
const incl = new Map();
for (const [id, us] of selfUs) {
  const key = name(byId.get(id));
  self.set(key, (self.get(key) ?? 0) + us);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + us);
  }
}
const show = (title, map) => {
  console.log(`\n${title} (total ${(total / 1000).toFixed(0)} ms sampled)`);
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
};
show("self time", self);
show("inclusive time", incl);
