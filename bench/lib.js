// Helpers shared by the benchmark sections: statistics, formatting, whole-process measurement
// (wall time, peak RSS through GNU time; CPU time through bench/rusage.py), temp folders, the
// machine description.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, "..");
export const CLI = join(ROOT, "npm/smithers-rs/bin/smithers.js");

const T_START = performance.now();
export const elapsedS = () => (performance.now() - T_START) / 1000;
export const log = (msg) => process.stderr.write(`[bench ${elapsedS().toFixed(1).padStart(6)}s] ${msg}\n`);

// ---------------------------------------------------------------- statistics

export function stats(values) {
  const s = [...values].filter((v) => v != null && !Number.isNaN(v)).sort((a, b) => a - b);
  if (s.length === 0) return { n: 0, min: null, median: null, max: null, p50: null, p90: null, p99: null, mean: null };
  const pct = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, min: s[0], median, max: s[s.length - 1], p50: pct(50), p90: pct(90), p99: pct(99), mean };
}

export const fmt = (v, digits) => {
  if (v == null || Number.isNaN(v)) return "–";
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : Math.abs(v) >= 1 ? 2 : 3);
  return v.toFixed(d);
};
/** "min / median / max" */
export const mmm = (s, digits) => (s == null || s.n === 0 ? "–" : `${fmt(s.min, digits)} / ${fmt(s.median, digits)} / ${fmt(s.max, digits)}`);
/** ours/theirs, two significant digits. */
export const ratio = (ours, theirs) => (ours == null || theirs == null || theirs === 0 ? "–" : `${Number((ours / theirs).toPrecision(2))}×`);
export const count = (n) => n.toLocaleString("en-US");

// ---------------------------------------------------------------- environment

export function machine() {
  let cpu = "unknown";
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
  } catch {}
  return {
    cpu,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

/** The native addon a process loads, and how it was compiled (the addon says). */
export async function buildInfo() {
  const { engineBuild, engineVersion } = await import("../npm/smithers-rs/src/index.js");
  const require = createRequire(import.meta.url);
  const loaded = Object.keys(require.cache).filter((k) => k.endsWith(".node"));
  const file = loaded[0] ?? join(ROOT, "npm/smithers-rs/smithers.linux-x64-gnu.node");
  let size = null;
  try {
    size = statSync(file).size;
  } catch {}
  return { file, sizeMB: size == null ? null : size / 2 ** 20, type: `${engineBuild()} build`, engineVersion: engineVersion() };
}

export function tempDir(tag) {
  return mkdtempSync(join(os.tmpdir(), `smithers-bench-${tag}-`));
}

export function removeDir(dir) {
  if (!process.env.SMITHERS_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}

/** Size of a SQLite database with its WAL, MB. */
export function dbSizeMB(db) {
  let bytes = 0;
  for (const f of [db, `${db}-wal`]) if (existsSync(f)) bytes += statSync(f).size;
  return bytes / 2 ** 20;
}

// ---------------------------------------------------------------- processes

const TIME_BIN = "/usr/bin/time";
let rssAvailable = null;
/** Whether GNU time can report peak RSS here. */
export function checkRss() {
  if (rssAvailable !== null) return rssAvailable;
  rssAvailable = false;
  if (existsSync(TIME_BIN)) {
    const dir = tempDir("time");
    const out = join(dir, "rss");
    const r = spawnSync(TIME_BIN, ["-f", "%M", "-o", out, process.execPath, "-e", "0"], { stdio: "ignore" });
    rssAvailable = r.status === 0 && existsSync(out) && /^\d+\s*$/m.test(readFileSync(out, "utf8"));
    rmSync(dir, { recursive: true, force: true });
  }
  return rssAvailable;
}

function timeArgs(cmd, args, rssFile) {
  return rssFile ? [TIME_BIN, ["-f", "%M", "-o", rssFile, cmd, ...args]] : [cmd, args];
}

function readRss(rssFile) {
  if (!rssFile) return null;
  try {
    // GNU time writes "Command exited with non-zero status N" before the figure.
    return Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) / 1024;
  } catch {
    return null;
  } finally {
    rmSync(rssFile, { force: true });
  }
}

const rssPath = () => join(os.tmpdir(), `smithers-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);

const RUSAGE = join(HERE, "rusage.py");
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
let cpuAvailable = null;
/** Whether bench/rusage.py (Python 3) can report a child's CPU time here. */
export function checkCpu() {
  if (cpuAvailable !== null) return cpuAvailable;
  const out = rssPath();
  const r = spawnSync(PYTHON, [RUSAGE, out, process.execPath, "-e", "0"], { stdio: "ignore" });
  cpuAvailable = r.status === 0 && readUsage(out)?.status === 0;
  return cpuAvailable;
}

function readUsage(file) {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * Runs a command as a whole process, synchronously:
 * { wallMs, rssMB (null without GNU time), status, stdout, stderr }.
 * With `cpu: true` (and Python 3 here), bench/rusage.py runs it instead of GNU time and the
 * result also has `cpuMs` (user + system), `userMs` and `sysMs`; `wallMs` is then the child's
 * own (spawn to exit, timed by rusage.py), and peak RSS comes from the same rusage.
 */
export function measureProcess(cmd, args, options = {}) {
  if (options.cpu && checkCpu()) return measureCpu(cmd, args, options);
  const rssFile = checkRss() ? rssPath() : null;
  const [file, fullArgs] = timeArgs(cmd, args, rssFile);
  const t0 = performance.now();
  const r = spawnSync(file, fullArgs, {
    encoding: "utf8",
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    maxBuffer: 256 << 20,
    timeout: options.timeoutMs,
  });
  const wallMs = performance.now() - t0;
  return { wallMs, rssMB: readRss(rssFile), status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
}

function measureCpu(cmd, args, options) {
  const out = rssPath();
  const r = spawnSync(PYTHON, [RUSAGE, out, cmd, ...args], {
    encoding: "utf8",
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    maxBuffer: 256 << 20,
    timeout: options.timeoutMs,
  });
  const u = readUsage(out);
  if (!u) return { wallMs: null, cpuMs: null, rssMB: null, status: r.status === 0 ? 127 : r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
  return { wallMs: u.wallMs, cpuMs: u.cpuMs, userMs: u.userMs, sysMs: u.sysMs, rssMB: u.maxRssKB / 1024, status: u.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
}

/**
 * Starts a command as a whole process; `done` settles with what measureProcess returns.
 * `child` is the process (kill it), `output()` its stdout so far.
 */
export function startProcess(cmd, args, options = {}) {
  const rssFile = options.rss === false || !checkRss() ? null : rssPath();
  const [file, fullArgs] = timeArgs(cmd, args, rssFile);
  const t0 = performance.now();
  const child = spawn(file, fullArgs, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise((resolve) => {
    child.on("close", (status, signal) => {
      resolve({ wallMs: performance.now() - t0, rssMB: readRss(rssFile), status, signal, stdout, stderr });
    });
  });
  return { child, done, output: () => stdout };
}

/** Waits until `output()` holds a line matching `re`; returns the match. */
export async function waitForLine(proc, re, timeoutMs = 30_000) {
  const t0 = performance.now();
  for (;;) {
    const m = re.exec(proc.output());
    if (m) return m;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`process ended before printing ${re}: ${proc.output().slice(-500)}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${re}`);
    await sleep(1);
  }
}

/** The last line of `stdout` that parses as a JSON object. */
export function lastJson(stdout) {
  const lines = String(stdout).trim().split("\n").reverse();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line);
    } catch {}
  }
  throw new Error(`no JSON line in output: ${String(stdout).slice(-400)}`);
}

/** Runs a helper that prints one JSON line; throws with its stderr when it fails. */
export function runJson(cmd, args, options = {}) {
  const p = measureProcess(cmd, args, options);
  if (p.status !== 0) throw new Error(`${[cmd, ...args].join(" ")} exited ${p.status}${p.error ? ` (${p.error.message})` : ""}: ${p.stderr.slice(-2000)}`);
  return { ...p, json: lastJson(p.stdout) };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Epoch milliseconds with sub-millisecond precision, comparable across processes. */
export const epochMs = () => performance.timeOrigin + performance.now();
