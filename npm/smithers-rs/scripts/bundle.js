#!/usr/bin/env node
// Builds dist/: the `smithers` CLI and everything it can reach in src/ as one CommonJS file,
// dist/smithers.cjs (esbuild), so that a start reads and compiles one file instead of ~45 ES
// modules (start-up: ARCHITECTURE.md, bench/README.md). Run by `npm pack` (prepack) and by
// `npm install` in the checkout (the workspace's prepare); `node scripts/bundle.js` by hand.
//
// - CommonJS, one file: every module is wrapped and runs on first use, in the order ES
//   modules would; `import()` of a module of src/ and `require()` of one (src/lazy.js's
//   builder, composites and Dagu; loader/install.js's hooks) become calls into the same file,
//   so what was lazy stays lazy (not run, and V8 compiles a function only when it is first
//   called). Packages and Node's builtins become `require()` calls where they were imported,
//   so they too load only when the module that imports them runs. (An ES module bundle would
//   hoist every such import to the top of its file, or be split in ~35 chunks: measured
//   slower, bench/README.md.)
// - The package's public entry points (package.json "exports" into src/) get an ES module
//   each in dist/ (dist/index.js, dist/tools.js, …) that re-exports the bundle's instance. A
//   workflow's `smithers-orchestrator` / `smithers-rs[/sub]` import resolves there while the
//   CLI runs from the bundle (loader/hooks.js, `import.meta.smithersBundle`): the workflow's
//   <Task> is the renderer's Task, its SmithersError the CLI's.
// - `import.meta.url` in a bundled module is the URL of its source file in src/: CommonJS
//   files (required from src/, one instance with bin/smithers.js's), assets (serve's web/),
//   the driver worker's module and packages are found from there as before.
// - dist/manifest.json lists the source files with their mtimes and sizes: bin/smithers.js
//   uses the bundle only while all of them are unchanged (an edited src/ runs as it is).
// The new dist/ is built beside the old one and swapped in with two renames.
import { build } from "esbuild";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const PKG = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(PKG, "src");
const DIST = join(PKG, "dist");
const BUNDLE = "smithers.cjs";

/** Modules that load modules of the package with a require of their own (require(esm)). */
const OWN_REQUIRE = new Set(["lazy.js", "loader/install.js"]);
const slash = (path) => path.split("\\").join("/");

/** The package's public ES module entry points ("exports" into src/): `smithers-rs/sub` → file in src/. */
export function publicEntries(pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"))) {
  const entries = {};
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const file = typeof target === "string" ? target : target.default;
    if (file?.startsWith("./src/") && file.endsWith(".js")) entries[`smithers-rs${subpath.slice(1)}`] = file.slice("./src/".length);
  }
  return entries;
}

/** The package folder's URL, computed once at the top of the bundle. */
const BANNER = [
  `"use strict";`,
  `const __smithersPackage = require("node:url").pathToFileURL(require("node:path").dirname(__dirname)).href;`,
  // The modules of src/ that ran, in order (test/startup.test.js: what stays lazy stays unrun).
  `const __smithersRan = (globalThis[Symbol.for("smithers-rs.bundle.ran")] = []);`,
].join("\n");

/** The modules of src/ as the bundle needs them. */
const plugin = (entries) => ({
  name: "smithers-bundle",
  setup(b) {
    // A CommonJS file of src/ (database.cjs) is required from src/ at run time: the instance
    // bin/smithers.js and cli/common.cjs share.
    b.onResolve({ filter: /\.cjs$/ }, (args) => {
      const rel = relative(SRC, join(args.resolveDir, args.path));
      return rel.startsWith("..") ? undefined : { path: `../src/${slash(rel)}`, external: true };
    });
    b.onLoad({ filter: /\.js$/ }, (args) => {
      const rel = slash(relative(SRC, args.path));
      if (rel.startsWith("..")) return undefined;
      let text = readFileSync(args.path, "utf8");
      // `createRequire(import.meta.url)("./x.js")` → `require("./x.js")`: the bundler includes x.js.
      if (OWN_REQUIRE.has(rel)) {
        text = text.replace(/^const require = createRequire\(import\.meta\.url\);$/m, "").replace(/createRequire\(import\.meta\.url\)\(("[^"]+")\)/g, "require($1)");
      }
      const bundle = `({ dir: __smithersPackage + "/dist/", entries: ${JSON.stringify(entries)} })`;
      text = `__smithersRan.push(${JSON.stringify(rel)});\n${text}`;
      text = text.replaceAll("import.meta.url", `(__smithersPackage + ${JSON.stringify(`/src/${rel}`)})`).replaceAll("import.meta.smithersBundle", bundle);
      return { contents: text, loader: "js" };
    });
  },
});

/** The names each public entry point exports (an ES module build, not written). */
async function exportNames(files) {
  const result = await build({
    entryPoints: files.map((f) => join(SRC, f)),
    outbase: SRC,
    outdir: join(PKG, ".names"),
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    packages: "external",
    write: false,
    metafile: true,
    absWorkingDir: PKG,
    logLevel: "error",
  });
  const names = {};
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    if (meta.entryPoint) names[slash(relative(SRC, join(PKG, meta.entryPoint)))] = meta.exports;
  }
  return names;
}

/** `require` of the bundle from an ES module `file` of dist/, and its `entries[module]()`. */
const fromBundle = (file, module) =>
  `process.getBuiltinModule("node:module").createRequire(import.meta.url)(${JSON.stringify(`${"../".repeat(file.split("/").length - 1) || "./"}${BUNDLE}`)}).entries[${JSON.stringify(module)}]()`;

/**
 * An entry point with a top-level await (tools.js: `await import("ai")`), which CommonJS
 * cannot hold, as an ES module of its own whose imports of src/ are the bundle's instances.
 * @returns {Promise<{ text: string, deps: string[], inputs: string[] }>}
 */
async function esmEntry(file) {
  const deps = [];
  const result = await build({
    entryPoints: [join(SRC, file)],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    write: false,
    metafile: true,
    outfile: join(DIST, file),
    absWorkingDir: PKG,
    logLevel: "error",
    plugins: [
      {
        name: "smithers-bundle-deps",
        setup(b) {
          b.onResolve({ filter: /^\.\.?\// }, (args) => {
            if (args.importer !== join(SRC, file)) return undefined;
            const rel = slash(relative(SRC, join(args.resolveDir, args.path)));
            deps.push(rel);
            return { path: rel, namespace: "smithers-bundle-dep" };
          });
          b.onLoad({ filter: /./, namespace: "smithers-bundle-dep" }, async (args) => {
            const names = (await exportNames([args.path]))[args.path].filter((n) => n !== "default");
            return { contents: `const m = ${fromBundle(file, args.path)};\nexport const { ${names.join(", ")} } = m;\n`, loader: "js" };
          });
        },
      },
    ],
  });
  const inputs = Object.keys(result.metafile.inputs).filter((i) => !i.startsWith("smithers-bundle-dep:"));
  return { text: result.outputFiles[0].text, deps, inputs };
}

/** Public entry points with a top-level await: ES modules of their own (esmEntry). */
const TOP_LEVEL_AWAIT = ["tools.js"];

/** Builds dist/ (replacing the one there); returns the manifest. */
export async function bundle({ quiet = false } = {}) {
  const entries = publicEntries();
  const tmp = `${DIST}.new-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const esm = {};
  for (const f of TOP_LEVEL_AWAIT) esm[f] = await esmEntry(f);
  const shims = [...new Set(Object.values(entries))].filter((f) => !esm[f]);
  const files = [...new Set([...shims, ...Object.values(esm).flatMap((e) => e.deps)])];
  // The bundle's exports: the CLI's main, and each public entry point's module, run on first use.
  const entry = [
    `export { main } from "./cli/main.js";`,
    `export const entries = {`,
    ...files.map((f) => `  ${JSON.stringify(f)}: () => require(${JSON.stringify(`./${f}`)}),`),
    `};`,
  ].join("\n");
  const result = await build({
    stdin: { contents: entry, resolveDir: SRC, sourcefile: "bundle-entry.js", loader: "js" },
    outfile: join(tmp, BUNDLE),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node22",
    packages: "external",
    banner: { js: BANNER },
    metafile: true,
    absWorkingDir: PKG,
    legalComments: "none",
    logLevel: quiet ? "error" : "warning",
    plugins: [plugin(entries)],
  });
  // The ES modules a workflow's imports resolve to: each re-exports its module of the bundle.
  const names = await exportNames(shims);
  for (const f of shims) {
    const list = names[f].filter((n) => n !== "default");
    const text = [
      `// smithers-rs ${f} from the bundle (scripts/bundle.js): the instance the CLI uses.`,
      `const m = ${fromBundle(f, f)};`,
      `export const { ${list.join(", ")} } = m;`,
      "",
    ].join("\n");
    mkdirSync(dirname(join(tmp, f)), { recursive: true });
    writeFileSync(join(tmp, f), text);
  }
  for (const [f, { text }] of Object.entries(esm)) {
    mkdirSync(dirname(join(tmp, f)), { recursive: true });
    writeFileSync(join(tmp, f), `// smithers-rs ${f} (scripts/bundle.js): its imports of src/ are the bundle's instances.\n${text}`);
  }
  const inputs = {};
  for (const input of [...Object.keys(result.metafile.inputs), ...Object.values(esm).flatMap((e) => e.inputs)].sort()) {
    if (input === "src/bundle-entry.js") continue;
    const path = join(PKG, input);
    const s = statSync(path);
    inputs[slash(relative(PKG, path))] = [s.mtimeMs, s.size];
  }
  const manifest = { bundle: BUNDLE, inputs };
  writeFileSync(join(tmp, "manifest.json"), `${JSON.stringify(manifest)}\n`);
  const old = `${DIST}.old-${process.pid}`;
  if (existsSync(DIST)) renameSync(DIST, old);
  renameSync(tmp, DIST);
  rmSync(old, { recursive: true, force: true });
  if (!quiet) {
    const bytes = statSync(join(DIST, BUNDLE)).size;
    console.log(`dist/${BUNDLE}: ${(bytes / 1024).toFixed(0)} KB from ${Object.keys(inputs).length} files of src/, and ${files.length} entry points`);
  }
  return manifest;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await bundle();
}
