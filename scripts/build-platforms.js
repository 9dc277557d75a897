#!/usr/bin/env node
// Builds the platform packages of smithers-rs: one npm package per platform, each holding the
// release build of the native addon, installed by npm as an optional dependency of the main
// package (the napi-rs layout). CPU-heavy (a fat-LTO release build per target, minutes each):
// run it for a release, not in CI.
//
//   node scripts/build-platforms.js                    # every target in package.json napi.targets
//   node scripts/build-platforms.js --only=linux-x64-gnu,darwin-arm64
//   node scripts/build-platforms.js --check            # build nothing: check what is in npm/*/
//   node scripts/build-platforms.js --pack=dist        # also `npm pack` each platform package
//
// How each target is built:
//   linux-*-gnu     `napi build --use-napi-cross`: GCC with a glibc 2.17 sysroot, from the npm
//                   packages @napi-rs/cross-toolchain(-x64-target-*), so the addon loads on
//                   glibc ≥ 2.17 (RHEL 7, Amazon Linux 2, Ubuntu 20.04, Debian 11, …)
//   linux-*-musl    `napi build -x`: cargo-zigbuild with zig as C compiler and linker; napi adds
//                   -C target-feature=-crt-static, so the addon links musl's libc dynamically, as
//                   Alpine's node does
//   darwin-*        `napi build -x` as well: zig links against the macOS stubs it ships (no Apple
//                   SDK), for MACOSX_DEPLOYMENT_TARGET = the floor in scripts/lib/native-binary.js
// It installs what it needs: the Rust targets (rustup), zig and cargo-zigbuild (PyPI `ziglang` and
// `cargo-zigbuild`, in a venv) and the cross toolchains (npm), under $SMITHERS_CROSS_DIR
// (default ~/.cache/smithers-rs). Each addon is then checked from its bytes
// (scripts/lib/native-binary.js): format and CPU, release marker, glibc floor / musl libc.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GLIBC_FLOOR, PLATFORMS, inspectBinary, problems } from "./lib/native-binary.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PKG_DIR = join(ROOT, "npm/smithers-rs");
const OUT_DIR = join(ROOT, "target/napi-release");
const CACHE = process.env.SMITHERS_CROSS_DIR ?? join(os.homedir(), ".cache/smithers-rs");
const NAPI = join(ROOT, "node_modules/.bin/napi");

const argv = process.argv.slice(2);
const arg = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const CHECK_ONLY = argv.includes("--check");
const PACK_DIR = arg("pack") ? resolve(arg("pack")) : null;

const say = (line) => process.stderr.write(`[build-platforms] ${line}\n`);

function run(cmd, args, options = {}) {
  say(`$ ${[cmd, ...args].join(" ")}`);
  const r = spawnSync(cmd, args, { stdio: "inherit", ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status ?? r.signal}`);
}

/** The ABI names (`linux-x64-gnu`, …) of the targets in package.json, or of --only. */
function targets() {
  const pkg = JSON.parse(readFileSync(join(PKG_DIR, "package.json"), "utf8"));
  const all = Object.entries(PLATFORMS)
    .filter(([, p]) => pkg.napi.targets.includes(p.triple))
    .map(([abi]) => abi);
  const only = arg("only")?.split(",");
  for (const abi of only ?? []) if (!all.includes(abi)) throw new Error(`--only: ${abi} is not one of ${all.join(", ")}`);
  return only ?? all;
}

function ensureRustTarget(triple) {
  const installed = execFileSync("rustup", ["target", "list", "--installed"], { encoding: "utf8" }).split("\n");
  if (!installed.includes(triple)) run("rustup", ["target", "add", triple]);
}

/** zig and cargo-zigbuild from PyPI, in a venv; returns its bin folder (for PATH). */
function ensureZig() {
  const venv = join(CACHE, "crosstools");
  const bin = join(venv, "bin");
  if (!existsSync(join(bin, "cargo-zigbuild"))) {
    run("python3", ["-m", "venv", venv]);
    run(join(bin, "pip"), ["install", "--quiet", "ziglang", "cargo-zigbuild"]);
  }
  return bin;
}

/**
 * The glibc 2.17 GCC toolchain for `triple`, from npm; returns the node_modules napi resolves
 * @napi-rs/cross-toolchain from. napi would `npm pack` the toolchain package at the version of
 * @napi-rs/cross-toolchain itself, which the registry does not have (the toolchain packages lag
 * it), so the installed toolchain is unpacked where napi looks first
 * (~/.napi-rs/cross-toolchain/<version>/<triple>, marked by its package.json).
 */
function ensureNapiCross(triple) {
  const dir = join(CACHE, "napi-cross");
  const modules = join(dir, "node_modules");
  const toolchain = { "x86_64-unknown-linux-gnu": "@napi-rs/cross-toolchain-x64-target-x86_64", "aarch64-unknown-linux-gnu": "@napi-rs/cross-toolchain-x64-target-aarch64" }[triple];
  if (!toolchain || process.arch !== "x64") throw new Error(`no glibc 2.17 toolchain here for ${triple} on ${process.arch}`);
  const wanted = ["@napi-rs/cross-toolchain", "@napi-rs/cross-toolchain-x64-target-x86_64", "@napi-rs/cross-toolchain-x64-target-aarch64"];
  if (!wanted.every((p) => existsSync(join(modules, p, "package.json")))) {
    mkdirSync(dir, { recursive: true });
    if (!existsSync(join(dir, "package.json"))) writeFileSync(join(dir, "package.json"), '{"name":"smithers-rs-napi-cross","private":true}\n');
    // Their peer ranges disagree (see above): take the newest of each anyway.
    run("npm", ["install", "--no-audit", "--no-fund", "--legacy-peer-deps", ...wanted], { cwd: dir });
  }
  const version = JSON.parse(readFileSync(join(modules, "@napi-rs/cross-toolchain/package.json"), "utf8")).version;
  const dest = join(os.homedir(), ".napi-rs/cross-toolchain", version, triple);
  if (!existsSync(join(dest, "package.json"))) {
    mkdirSync(dest, { recursive: true });
    run("tar", ["-xJf", join(modules, toolchain, `${triple}.tar.xz`), "-C", dest]);
  }
  return modules;
}

/**
 * `napi create-npm-dirs` writes each platform package's manifest; each also gets a guard that
 * refuses to publish an addon that is not a release build (checked from the bytes, as
 * scripts/publish-guard.js does, so it runs wherever npm publishes from).
 */
function writePlatformPackages() {
  run(NAPI, ["create-npm-dirs"], { cwd: PKG_DIR });
  for (const abi of Object.keys(PLATFORMS)) {
    const file = join(PKG_DIR, "npm", abi, "package.json");
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, "utf8"));
    const node = pkg.main;
    pkg.scripts = {
      prepublishOnly:
        `node -e "const b=require('fs').readFileSync('${node}');` +
        `if(!b.includes('smithers-build-profile=release')||b.includes('smithers-build-profile=debug')){` +
        `console.error('refusing to publish ${node}: not a release build');process.exit(1)}"`,
    };
    writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
  }
}

function build(abi) {
  const { triple, libc, macos } = PLATFORMS[abi];
  ensureRustTarget(triple);
  const env = { ...process.env };
  const args = ["build", "--platform", "--release", "--target", triple, "--manifest-path", "../../crates/smithers-node/Cargo.toml", "--output-dir", OUT_DIR, "--no-js", "--dts", "binding.d.cts"];
  if (libc === "glibc") {
    args.push("--use-napi-cross");
    env.NODE_PATH = [ensureNapiCross(triple), env.NODE_PATH].filter(Boolean).join(":");
  } else {
    args.push("--cross-compile");
    env.PATH = `${ensureZig()}:${env.PATH}`;
    // The floor the addon is checked against, for rustc and zig alike (each has its own default).
    if (macos) env.MACOSX_DEPLOYMENT_TARGET = macos;
  }
  const t0 = performance.now();
  run("nice", ["-n", "19", NAPI, ...args], { cwd: PKG_DIR, env });
  return (performance.now() - t0) / 1000;
}

function main() {
  const abis = targets();
  const seconds = {};
  writePlatformPackages();
  if (!CHECK_ONLY) {
    for (const abi of abis) {
      seconds[abi] = build(abi);
      // Not `napi artifacts`: it refuses unless every target of napi.targets was built.
      const name = `smithers.${abi}.node`;
      copyFileSync(join(OUT_DIR, name), join(PKG_DIR, "npm", abi, name));
    }
  }
  const rows = [];
  let failed = false;
  for (const abi of abis) {
    const file = join(PKG_DIR, "npm", abi, `smithers.${abi}.node`);
    if (!existsSync(file)) {
      rows.push(`${abi.padEnd(17)} MISSING ${file}`);
      failed = true;
      continue;
    }
    const info = inspectBinary(file);
    const bad = problems(abi, info);
    failed ||= bad.length > 0;
    const libc = info.maxGlibc ? `GLIBC_${info.maxGlibc} (floor ${GLIBC_FLOOR})` : info.needed.filter((n) => n.startsWith("libc")).join(",") || "-";
    const took = seconds[abi] ? `, built in ${seconds[abi].toFixed(0)} s` : "";
    rows.push(`${abi.padEnd(17)} ${bad.length ? "BAD" : "ok "} ${info.format} ${info.cpu}, ${(info.sizeBytes / 2 ** 20).toFixed(1)} MB, ${info.profile ?? "no marker"}, ${libc}${took}${bad.length ? `: ${bad.join("; ")}` : ""}`);
    if (PACK_DIR && bad.length === 0) {
      mkdirSync(PACK_DIR, { recursive: true });
      run("npm", ["pack", "--pack-destination", PACK_DIR], { cwd: join(PKG_DIR, "npm", abi) });
    }
  }
  console.log(rows.join("\n"));
  process.exitCode = failed ? 1 : 0;
}

try {
  main();
} catch (e) {
  say(e?.message ?? String(e));
  process.exitCode = 1;
}
