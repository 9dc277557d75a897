// Logs of the JS layer, in the native engine's format (crates/smithers-node/src/logging.rs), so
// that one stream or file holds both, in time order:
//   SMITHERS_LOG         a filter: `debug`, `info`, `smithers_js::driver=debug`,
//                        `warn,smithers_core::decision=debug`, … (the env-filter syntax of Rust's
//                        tracing-subscriber; span directives `[…]` concern the core only)
//   SMITHERS_LOG_FILE    append to this file instead of writing to stderr
//   SMITHERS_LOG_FORMAT  `text` (default) or `json` (one JSON object a line)
// Unset, every logger's methods are one shared no-op: logging costs nothing. Targets here start
// with `smithers_js::`; the core's with `smithers_core::`. A malformed SMITHERS_LOG is reported
// by the native engine when it loads.
// node:fs through getBuiltinModule (an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams), node:worker_threads only when a line is written: the driver
// imports this module at every start, which logs nothing by default (start-up: ARCHITECTURE.md).
const { openSync, writeSync } = process.getBuiltinModule("node:fs");

const LEVELS = ["off", "error", "warn", "info", "debug", "trace"];
const LEVEL_NAMES = ["", "ERROR", " WARN", " INFO", "DEBUG", "TRACE"];

/**
 * `SMITHERS_LOG` as directives `{ target, level }` (target "" for the default), most specific
 * target first. Like the env-filter, with no default directive only the named targets log.
 * @param {string} spec
 * @returns {{ target: string, level: number }[]}
 */
export function parseFilter(spec) {
  const directives = [];
  for (const raw of String(spec ?? "").split(",")) {
    const part = raw.trim();
    if (part === "" || part.includes("[")) continue;
    const eq = part.lastIndexOf("=");
    const [target, name] = eq < 0 ? (LEVELS.includes(part.toLowerCase()) ? ["", part] : [part, "trace"]) : [part.slice(0, eq), part.slice(eq + 1)];
    const level = LEVELS.indexOf(name.toLowerCase());
    if (level < 0) continue;
    directives.push({ target, level });
  }
  return directives.sort((a, b) => b.target.length - a.target.length);
}

/** The most verbose level `target` logs at under `directives` (0: off). */
export function levelFor(directives, target) {
  for (const d of directives) if (target.startsWith(d.target)) return d.level;
  return 0;
}

const DIRECTIVES = parseFilter(process.env.SMITHERS_LOG);
const JSON_FORMAT = process.env.SMITHERS_LOG_FORMAT === "json";
let fd = null;

function sink() {
  if (fd === null) {
    const file = process.env.SMITHERS_LOG_FILE;
    fd = 2;
    // A worker thread (serve's drives, isolation.js) writes to the file its parent opened: a
    // descriptor opened here would outlive the thread, one more per worker.
    const { isMainThread, workerData } = process.getBuiltinModule("node:worker_threads");
    const inherited = isMainThread ? null : workerData?.smithersLogFd;
    if (file && Number.isInteger(inherited)) fd = inherited;
    else if (file) {
      try {
        fd = openSync(file, "a");
      } catch (e) {
        writeSync(2, `smithers: SMITHERS_LOG_FILE=${JSON.stringify(file)} cannot be opened (${e.message}); logging to stderr\n`);
      }
    }
  }
  return fd;
}

/** RFC 3339 with microseconds, as the core's lines: 2026-12-03T14:30:18.123456Z. */
function timestamp() {
  const now = performance.timeOrigin + performance.now();
  const ms = Math.floor(now);
  const micros = String(Math.floor((now - ms) * 1000)).padStart(3, "0");
  return new Date(ms).toISOString().replace(/Z$/, `${micros}Z`);
}

/** `key=value` as the core writes them: strings quoted, numbers and booleans bare, lists as `["a"]`. */
function field(key, value) {
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return ` ${key}=${value}`;
  if (value === null || value === undefined) return ` ${key}=""`;
  return ` ${key}=${JSON.stringify(value)}`;
}

function write(level, target, message, fields) {
  let line;
  if (JSON_FORMAT) {
    line = `${JSON.stringify({ timestamp: timestamp(), level: LEVEL_NAMES[level].trim(), fields: { message, ...fields }, target })}\n`;
  } else {
    line = `${timestamp()} ${LEVEL_NAMES[level]} ${target}: ${message}`;
    for (const key in fields) line += field(key, fields[key]);
    line += "\n";
  }
  try {
    writeSync(sink(), line);
  } catch {
    // A log line that cannot be written is not worth failing the run for.
  }
}

/**
 * The descriptor log lines go to when they go to SMITHERS_LOG_FILE (opened now if need be),
 * for a worker thread to write to (`workerData.smithersLogFd`); null when nothing is logged
 * or lines go to stderr.
 */
export function logFileFd() {
  if (DIRECTIVES.length === 0 || !process.env.SMITHERS_LOG_FILE) return null;
  const out = sink();
  return out === 2 ? null : out;
}

const noop = () => {};

/**
 * A logger for one target: `log.debug("task started", { run_id, node_id })`. A level that is
 * off is the shared no-op; `log.enabled("debug")` guards work done only to build fields.
 * @param {string} target e.g. "smithers_js::driver"
 */
export function logger(target) {
  const max = levelFor(DIRECTIVES, target);
  const at = (level) => (level <= max ? (message, fields = {}) => write(level, target, message, fields) : noop);
  return {
    error: at(1),
    warn: at(2),
    info: at(3),
    debug: at(4),
    trace: at(5),
    /** @param {"error" | "warn" | "info" | "debug" | "trace"} level */
    enabled: (level) => LEVELS.indexOf(level) <= max && max > 0,
  };
}
