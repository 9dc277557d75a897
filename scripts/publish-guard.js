#!/usr/bin/env node
// Refuses to publish smithers-rs unless what would ship is right: the main package's `prepublishOnly`
// (npm publish in npm/smithers-rs runs it). It checks
//   - the main package's file list (`npm pack --dry-run`): README.md, LICENSE, the CLI, the
//     loader, and no `.node` at all (the addons ship in the platform packages);
//   - package.json: license, repository, an optional dependency on every platform package of
//     napi.targets at this version;
//   - every platform package (npm/<abi>/, filled by scripts/build-platforms.js): same version, and
//     an addon that is a release build of the right format and CPU, glibc ≥ 2.17 or musl
//     (scripts/lib/native-binary.js).
// Exit 1 with every problem listed; 0 when all is well.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PLATFORMS, inspectBinary, problems } from "./lib/native-binary.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PKG_DIR = join(ROOT, "npm/smithers-rs");
const REQUIRED_FILES = ["package.json", "README.md", "LICENSE", "bin/smithers.js", "binding.cjs", "binding.d.cts", "src/index.js", "src/index.d.ts", "src/binding-load.cjs"];

export function check() {
  const bad = [];
  const pkg = JSON.parse(readFileSync(join(PKG_DIR, "package.json"), "utf8"));
  if (!pkg.license) bad.push("package.json: no license");
  if (!pkg.repository?.url) bad.push("package.json: no repository");

  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: PKG_DIR, encoding: "utf8" }));
  const files = new Set(packed.files.map((f) => f.path));
  for (const f of REQUIRED_FILES) if (!files.has(f)) bad.push(`the package would not contain ${f}`);
  for (const f of files) if (f.endsWith(".node")) bad.push(`the package would contain ${f}: addons ship in the platform packages`);

  for (const [abi, platform] of Object.entries(PLATFORMS)) {
    if (!pkg.napi.targets.includes(platform.triple)) continue;
    const name = `${pkg.name}-${abi}`;
    if (pkg.optionalDependencies?.[name] !== pkg.version) bad.push(`package.json: optionalDependencies.${name} should be ${pkg.version}`);
    const dir = join(PKG_DIR, "npm", abi);
    if (!existsSync(join(dir, "package.json"))) {
      bad.push(`${abi}: no platform package (npm/${abi}); run scripts/build-platforms.js`);
      continue;
    }
    const platformPkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    if (platformPkg.version !== pkg.version) bad.push(`${abi}: version ${platformPkg.version}, main package ${pkg.version}`);
    const file = join(dir, platformPkg.main);
    if (!existsSync(file)) {
      bad.push(`${abi}: ${platformPkg.main} is missing; run scripts/build-platforms.js`);
      continue;
    }
    for (const p of problems(abi, inspectBinary(file))) bad.push(`${abi}: ${platformPkg.main} ${p}`);
  }
  return bad;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const bad = check();
  if (bad.length) {
    console.error(`publish-guard: refusing to publish smithers-rs:\n${bad.map((b) => `  - ${b}`).join("\n")}`);
    process.exitCode = 1;
  } else {
    console.error("publish-guard: the main package and every platform package are fit to publish");
  }
}
