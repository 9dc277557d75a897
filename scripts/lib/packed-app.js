// The npm package as a user gets it: the main package and every platform package packed into
// tarballs, and an empty project that depends on the main tarball with its optional
// dependencies pointed at the platform tarballs (`overrides`), so `npm install` chooses the
// platform package by the manifests' os / cpu / libc fields. Used by scripts/pack-test.js (CI,
// the debug addon of this machine) and scripts/check-platforms.js (the release builds).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PKG_DIR = join(ROOT, "npm/smithers-rs");

/**
 * `npm pack` of the package in `dir` into `dest`; npm's JSON description of the tarball.
 * `scripts`: run its lifecycle scripts (the main package's prepack builds dist/, the CLI's
 * bundle).
 */
export function npmPack(dir, dest, { scripts = false } = {}) {
  const args = ["pack", "--json", ...(scripts ? [] : ["--ignore-scripts"]), "--pack-destination", dest];
  const out = execFileSync("npm", args, { cwd: dir, encoding: "utf8" });
  // Lifecycle scripts print before npm's JSON.
  const [info] = JSON.parse(out.slice(out.indexOf("\n[") + 1 || 0));
  return info;
}

/**
 * Packs the main package and every platform package of its optionalDependencies into `work`.
 * `addons` maps an ABI (`linux-x64-musl`) to the `.node` file its package carries; the other
 * platform packages are packed from their manifests alone.
 * @param {string} work
 * @param {Record<string, string>} addons
 */
export function packAll(work, addons) {
  const pkg = JSON.parse(readFileSync(join(PKG_DIR, "package.json"), "utf8"));
  const main = npmPack(PKG_DIR, work, { scripts: true });
  const platforms = {};
  const overrides = {};
  for (const name of Object.keys(pkg.optionalDependencies)) {
    const abi = name.slice(`${pkg.name}-`.length);
    const dir = join(work, "platforms", abi);
    mkdirSync(dir, { recursive: true });
    for (const f of ["package.json", "README.md"]) copyFileSync(join(PKG_DIR, "npm", abi, f), join(dir, f));
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    if (addons[abi]) copyFileSync(addons[abi], join(dir, manifest.main));
    const tarball = npmPack(dir, work);
    platforms[abi] = { name, manifest, tarball };
    overrides[name] = `file:${join(work, tarball.filename)}`;
  }
  return { work, pkg, main, platforms, overrides };
}

/**
 * Writes the package.json of an empty project at `app` that depends on the packed main package
 * (and on `dependencies` beside it, as a user's project has them).
 * @param {string} app
 * @param {ReturnType<typeof packAll>} packed
 * @param {Record<string, string>} [dependencies]
 */
export function writeApp(app, packed, dependencies = {}) {
  mkdirSync(app, { recursive: true });
  const deps = { [packed.pkg.name]: `file:${join(packed.work, packed.main.filename)}`, ...dependencies };
  writeFileSync(join(app, "package.json"), `${JSON.stringify({ name: "app", private: true, type: "module", dependencies: deps, overrides: packed.overrides }, null, 2)}\n`);
}

/** The version of a package installed in this checkout (for `dependencies` of writeApp). */
export const versionHere = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
