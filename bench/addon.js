// Which native addon the benchmark measures, chosen before anything loads it (bench/run.js
// imports this module first). By default the release build: the one users get from npm.
//
//   --addon=release   (default) target/bench-release/smithers.linux-x64-gnu.node, built here with
//                     `napi build --release` when missing or older than the Rust sources (a few
//                     minutes, once); a release addon that scripts/build-platforms.js put into
//                     npm/smithers-rs/npm/linux-x64-gnu/ is used as it is when it is newer
//   --addon=debug     the debug addon `npm install` / `npm run build` leave next to the package
//   --addon=FILE      that file
//
// The choice reaches every process the suite starts through NAPI_RS_NATIVE_LIBRARY_PATH, which
// napi-rs's loader (binding.cjs) and the CLI's short path both honour. BENCHMARKS.md says which
// build was measured (the addon reports it: engineBuild()).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PKG_DIR = join(ROOT, "npm/smithers-rs");
const HOST = "linux-x64-gnu";
const RELEASE_OUT = join(ROOT, "target/bench-release");

/** Newest modification time of the Rust sources and manifests the addon is built from. */
function sourcesMtime() {
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(rs|toml)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(ROOT, "crates"));
  for (const f of ["Cargo.toml", "Cargo.lock"]) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

const fresh = (file, since) => existsSync(file) && statSync(file).mtimeMs >= since;

function releaseAddon() {
  const since = sourcesMtime();
  for (const file of [join(PKG_DIR, "npm", HOST, `smithers.${HOST}.node`), join(RELEASE_OUT, `smithers.${HOST}.node`)]) {
    if (fresh(file, since)) return { file, built: false };
  }
  process.stderr.write("[bench] building the release addon (napi build --release; a few minutes, once)\n");
  const r = spawnSync(
    "nice",
    ["-n", "10", join(ROOT, "node_modules/.bin/napi"), "build", "--platform", "--release", "--manifest-path", "../../crates/smithers-node/Cargo.toml", "--output-dir", RELEASE_OUT, "--no-js", "--dts", "binding.d.cts"],
    { cwd: PKG_DIR, stdio: ["ignore", "inherit", "inherit"] },
  );
  const file = join(RELEASE_OUT, `smithers.${HOST}.node`);
  if (r.status !== 0 || !existsSync(file)) throw new Error(`napi build --release failed (exit ${r.status})`);
  return { file, built: true };
}

function choose() {
  const arg = process.argv.find((a) => a.startsWith("--addon="))?.slice("--addon=".length) ?? "release";
  if (arg === "debug") return { file: join(PKG_DIR, `smithers.${HOST}.node`), built: false, asked: "debug" };
  if (arg === "release") return { ...releaseAddon(), asked: "release" };
  const file = resolve(arg);
  if (!existsSync(file)) throw new Error(`--addon=${arg}: no such file`);
  return { file, built: false, asked: "file" };
}

// --render measures nothing: it needs no addon.
export const ADDON = process.argv.some((a) => a.startsWith("--render=")) ? null : choose();
if (ADDON) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = ADDON.file;
