// Node module hooks (module.register) so a workflow file can be imported as-is:
// .ts/.tsx/.jsx compiled by esbuild, .mdx prompts compiled by @mdx-js/mdx (cached),
// `smithers-orchestrator` mapped to this package, extensionless relative imports, and bare
// imports the workflow's folder cannot resolve. Failures become messages that start with a
// stable code (UNSUPPORTED_EXPORT, UNSUPPORTED_FILE_TYPE, WORKFLOW_LOAD_FAILED), which
// loadWorkflow turns into SmithersErrors. Runs on Node's loader thread.
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const ALIASES = ["smithers-orchestrator", "smithers-rs"];
/** This package's folder: bare imports from inside it may be the user's peers (`ai`). */
const PACKAGE_DIR = new URL("../../", import.meta.url).href;
/** The workflow file that last imported this package, to resolve peers from its project. */
let userParent = null;
const LOADERS = { ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx", ".jsx": "jsx" };
const PROBES = [".tsx", ".ts", ".jsx", ".js", ".mjs", ".mdx", "/index.tsx", "/index.ts", "/index.js"];
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
    // Read before nextResolve: Node may change the context object it is given.
    const importer = context.parentURL;
    if (importer?.startsWith("file:") && !importer.startsWith(PACKAGE_DIR)) userParent = importer;
    // Self-reference through this package's "exports": one runtime instance, whatever
    // copy (if any) sits next to the workflow file.
    try {
      return await nextResolve(alias, { ...context, parentURL: import.meta.url });
    } catch (err) {
      if (err?.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw err;
      throw new Error(
        `UNSUPPORTED_EXPORT: ${specifier}${importedBy(importer)} is not provided by smithers-rs ` +
          "(it provides smithers-orchestrator, /tools, /jsx-runtime, /jsx-dev-runtime, /register, /serve)",
      );
    }
  }
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const parent = context.parentURL;
    if (parent?.startsWith("file:") && (isRelative(specifier) || specifier.startsWith("/"))) {
      const found = await probe(specifier, parent);
      if (found) return nextResolve(found, context);
    } else if (isBare(specifier) && err?.code === "ERR_MODULE_NOT_FOUND") {
      // `zod` next to a workflow folder without node_modules: use what this package sees;
      // `ai` imported by this package (its tools) but installed in the user's project:
      // resolve it from the workflow that imported us.
      const fallbacks = parent?.startsWith(PACKAGE_DIR) ? [userParent] : [import.meta.url];
      for (const parentURL of fallbacks) {
        if (!parentURL) continue;
        try {
          return await nextResolve(specifier, { ...context, parentURL });
        } catch {
          // fall through: the user's error is the useful one
        }
      }
    }
    throw err;
  }
}

const importedBy = (url) => (url?.startsWith("file:") ? ` (imported by ${fileURLToPath(url)})` : "");

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
  const ext = url.startsWith("file:") ? extname(new URL(url).pathname) : "";
  if (ext === ".mdx") return { format: "module", source: await compileMdx(fileURLToPath(url)), shortCircuit: true };
  const loader = LOADERS[ext];
  if (!loader) {
    try {
      return await nextLoad(url, context);
    } catch (err) {
      if (err?.code !== "ERR_UNKNOWN_FILE_EXTENSION") throw err;
      throw new Error(
        `UNSUPPORTED_FILE_TYPE: ${fileURLToPath(url)}: smithers-rs cannot load "${ext || "(no extension)"}" files ` +
          "(it loads .js .mjs .cjs .json .ts .mts .cts .tsx .jsx .mdx)",
      );
    }
  }
  const path = fileURLToPath(url);
  const source = await readFile(path, "utf8");
  // A `@jsxImportSource` pragma in the file overrides jsxImportSource (esbuild honours it).
  let code;
  try {
    ({ code } = await transform(source, {
      loader,
      format: "esm",
      target: "node20",
      jsx: "automatic",
      jsxImportSource: "smithers-rs",
      sourcemap: "inline",
      sourcefile: path,
      logLevel: "silent",
    }));
  } catch (err) {
    const first = err?.errors?.[0];
    const where = first?.location ? `${path}:${first.location.line}:${first.location.column + 1}` : path;
    throw new Error(`WORKFLOW_LOAD_FAILED: ${where}: ${first?.text ?? err?.message ?? err}`);
  }
  return { format: "module", source: code, shortCircuit: true };
}

/**
 * An MDX prompt compiled to a module whose default export renders with this package's
 * jsx-runtime. Compiled once per content: the result is cached on disk by a hash of the
 * source and the compiler's version.
 */
async function compileMdx(path) {
  const source = await readFile(path, "utf8");
  const mdx = await loadMdx();
  const key = createHash("sha256").update(`${mdx.version}\0${path}\0${source}`).digest("hex");
  const cached = join(cacheDir(), `${key}.js`);
  try {
    return await readFile(cached, "utf8");
  } catch {
    // not compiled yet
  }
  let code;
  try {
    code = String(await mdx.compile({ path, value: source }, { jsxImportSource: "smithers-rs", development: false }));
  } catch (err) {
    const line = err?.line ?? err?.place?.line ?? err?.place?.start?.line;
    const column = err?.column ?? err?.place?.column ?? err?.place?.start?.column;
    const where = line ? `${path}:${line}${column ? `:${column}` : ""}` : path;
    throw new Error(`WORKFLOW_LOAD_FAILED: ${where}: ${err?.reason ?? err?.message ?? err}`);
  }
  try {
    await mkdir(dirname(cached), { recursive: true });
    const partial = `${cached}.${process.pid}.tmp`;
    await writeFile(partial, code);
    await rename(partial, cached);
  } catch {
    // A cache that cannot be written only costs a compile next time.
  }
  return code;
}

let mdxCompiler;
async function loadMdx() {
  if (!mdxCompiler) {
    const { compile } = await import("@mdx-js/mdx");
    // The compiler's version is part of the cache key (its package.json is not exported).
    const entry = createRequire(import.meta.url).resolve("@mdx-js/mdx");
    const pkg = JSON.parse(await readFile(join(dirname(entry), "package.json"), "utf8"));
    mdxCompiler = { compile, version: pkg.version };
  }
  return mdxCompiler;
}

/** `$SMITHERS_CACHE_DIR`, else `$XDG_CACHE_HOME/smithers-rs`, else `~/.cache/smithers-rs`. */
function cacheDir() {
  const base = process.env.SMITHERS_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "smithers-rs");
  return join(base, "mdx");
}
