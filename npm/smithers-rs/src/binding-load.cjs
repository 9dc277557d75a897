// Loads the native engine through napi-rs's generated loader (binding.cjs), which finds the
// addon next to the package (a source build) or in the platform package npm installed as an
// optional dependency (smithers-rs-linux-x64-gnu, …). When none loads, its error ("Cannot find
// native binding. npm has a bug related to optional dependencies …") is replaced by one that
// names this platform and says what to do: UNSUPPORTED_PLATFORM where no build exists,
// NATIVE_BINDING_MISSING where one exists but is not installed or does not load.
"use strict";

/** The platforms a build is published for: napi's platform key → what a person calls it. */
const BUILDS = {
  "linux-x64-gnu": "Linux x64 (glibc ≥ 2.17)",
  "linux-arm64-gnu": "Linux arm64 (glibc ≥ 2.17)",
  "linux-x64-musl": "Linux x64 (musl: Alpine)",
  "linux-arm64-musl": "Linux arm64 (musl: Alpine)",
  "darwin-x64": "macOS x64",
  "darwin-arm64": "macOS arm64 (Apple silicon)",
};

/** This process's platform key as napi-rs names it (linux-x64-gnu, darwin-arm64, win32-x64, …). */
function platformKey() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform !== "linux") return base;
  let glibc = null;
  try {
    glibc = process.report?.getReport?.().header?.glibcVersionRuntime ?? null;
  } catch {}
  return `${base}-${glibc ? "gnu" : "musl"}`;
}

/**
 * The error for a native engine that did not load.
 * @param {any} cause what binding.cjs threw
 */
function bindingError(cause) {
  const key = platformKey();
  // binding.cjs chains what each attempt threw through `cause` (the local file, the package).
  const causes = [];
  for (let e = cause?.cause ?? cause; e && causes.length < 6; e = e.cause) causes.push(String(e.message ?? e).split("\n")[0]);
  const supported = Object.entries(BUILDS).map(([k, name]) => `${name} [${k}]`).join(", ");
  let error;
  if (!Object.hasOwn(BUILDS, key)) {
    error = new Error(
      `smithers-rs has no native engine for this platform (${key}). Builds exist for ${supported}.` +
        (process.platform === "win32" ? " On Windows, use WSL." : ""),
    );
    error.code = "UNSUPPORTED_PLATFORM";
  } else {
    error = new Error(
      `the native engine for ${BUILDS[key]} did not load: its package smithers-rs-${key} is missing or broken. ` +
        "It is an optional dependency of smithers-rs: install without --omit=optional / --no-optional; if npm skipped it " +
        "(npm/cli#4828), remove node_modules and package-lock.json and run npm install again." +
        (causes.length ? ` Load errors: ${causes.join("; ")}` : ""),
    );
    error.code = "NATIVE_BINDING_MISSING";
  }
  error.details = { platform: key, package: `smithers-rs-${key}`, supported: Object.keys(BUILDS), causes };
  return error;
}

/** The native binding, or an UNSUPPORTED_PLATFORM / NATIVE_BINDING_MISSING error. */
function loadBinding() {
  try {
    return require("../binding.cjs");
  } catch (e) {
    throw bindingError(e);
  }
}

module.exports = { BUILDS, loadBinding, platformKey };
