// Node module hooks (module.register) so a workflow file can be imported as-is:
// .ts/.tsx/.jsx compiled by esbuild, `smithers-orchestrator` mapped to this package,
// extensionless relative imports, and bare imports the workflow's folder cannot resolve.
// Runs on Node's loader thread.
import { readFile, stat } from "node:fs/promises";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const ALIASES = ["smithers-orchestrator", "smithers-rs"];
const LOADERS = { ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx", ".jsx": "jsx" };
const PROBES = [".tsx", ".ts", ".jsx", ".js", ".mjs", "/index.tsx", "/index.ts", "/index.js"];
// TypeScript ESM style: `import "./util.js"` naming the source file util.ts.
const TS_SWAPS = { ".js": [".ts", ".tsx"], ".jsx": [".tsx"], ".mjs": [".mts"] };

/** `smithers-orchestrator[/sub]` -> `smithers-rs[/sub]`, or null. */
function aliasOf(specifier) {
  for (const name of ALIASES) {
    if (specifier === name || specifier.startsWith(`${name}/`)) return `smithers-rs${specifier.slice(name.length)}`;
  }
  return null;
}

const isRelative = (s) => s.startsWith("./") || s.startsWith("../") || s === "." || s === "..";
const isBare = (s) => !isRelative(s) && !s.startsWith("/") && !/^[a-zA-Z][a-zA-Z\d+.-]*:/.test(s);

async function isFile(url) {
  try {
    return (await stat(fileURLToPath(url))).isFile();
  } catch {
    return false;
  }
}

export async function resolve(specifier, context, nextResolve) {
  const alias = aliasOf(specifier);
  if (alias) {
    // Self-reference through this package's "exports": one runtime instance, whatever
    // copy (if any) sits next to the workflow file.
    return nextResolve(alias, { ...context, parentURL: import.meta.url });
  }
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const parent = context.parentURL;
    if (parent?.startsWith("file:") && (isRelative(specifier) || specifier.startsWith("/"))) {
      const found = await probe(specifier, parent);
      if (found) return nextResolve(found, context);
    } else if (isBare(specifier) && err?.code === "ERR_MODULE_NOT_FOUND") {
      // e.g. `zod` next to a workflow folder without node_modules: use what this package sees.
      try {
        return await nextResolve(specifier, { ...context, parentURL: import.meta.url });
      } catch {
        // fall through: the user's error is the useful one
      }
    }
    throw err;
  }
}

async function probe(specifier, parentURL) {
  const base = specifier.replace(/\/$/, "");
  const candidates = PROBES.map((suffix) => base + suffix);
  const ext = extname(base);
  for (const swap of TS_SWAPS[ext] ?? []) candidates.push(base.slice(0, -ext.length) + swap);
  for (const candidate of candidates) {
    const url = new URL(candidate, parentURL);
    if (await isFile(url)) return url.href;
  }
  return null;
}

export async function load(url, context, nextLoad) {
  const loader = url.startsWith("file:") ? LOADERS[extname(new URL(url).pathname)] : undefined;
  if (!loader) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const source = await readFile(path, "utf8");
  // A `@jsxImportSource` pragma in the file overrides jsxImportSource (esbuild honours it).
  const { code } = await transform(source, {
    loader,
    format: "esm",
    target: "node20",
    jsx: "automatic",
    jsxImportSource: "smithers-rs",
    sourcemap: "inline",
    sourcefile: path,
  });
  return { format: "module", source: code, shortCircuit: true };
}
