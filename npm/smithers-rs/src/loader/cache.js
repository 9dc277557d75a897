// The on-disk cache of compiled workflow modules (.ts/.tsx/.jsx by oxc-transform, .mdx by
// @mdx-js/mdx), so that a warm start loads no compiler at all. Content-addressed: the key is
// the compiler and its version, its options, the file's path and its source, so an edit, an
// upgrade or an option change is a new entry and nothing is ever invalidated.
//
// An entry holds its whole key and the compiled text, under a checksum of both: it is used
// only when the key is exactly this one (a file name shared by two keys is a miss, not a
// wrong module) and the checksum holds (a damaged entry is a miss, and is written again).
// No node:crypto: loading it costs more than the rest of a warm start's loading; a 64-bit
// digest names the file and checks it, the key itself is compared in full.
//
// Safe to share: an entry is written to a temporary file and renamed into place (atomic on
// one file system), so concurrent processes see a whole entry or none; a location that
// cannot be written (read-only, full, not a directory) only means compiling every time.
import { join } from "node:path";

// node:fs through getBuiltinModule, cache-dir.cjs through require: an ES import of node:fs
// builds its whole namespace (loading fs/promises and Node's streams), and one of a CommonJS
// file runs the CommonJS export lexer (start-up: ARCHITECTURE.md).
const { mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } = process.getBuiltinModule("node:fs");
const { cacheRoot } = process.getBuiltinModule("node:module").createRequire(import.meta.url)("./cache-dir.cjs");

/** Bump when what is stored changes shape (header, source map handling, …). */
const FORMAT = "smithers-rs-module-cache-2";
const HEADER = "// smithers-rs cache ";
/** Entries nobody wrote or used for this long are removed (checked at most once a day). */
const KEEP_MS = 30 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS = 24 * 3600 * 1000;

/** Where compiled modules are kept. */
export const modulesDir = () => join(cacheRoot(), "modules");

/**
 * A 64-bit digest of `text` as 16 hex digits: two 32-bit lanes of FNV-1a over its UTF-16
 * units, each finished with murmur3's avalanche. Not cryptographic: it names and checks
 * entries, and every hit is confirmed by comparing the key in full.
 */
export function digest(text) {
  let a = 0x811c9dc5;
  let b = 0x2f5a6b1d;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    a = Math.imul(a ^ unit, 0x01000193);
    b = Math.imul(b ^ unit, 0x5bd1e995);
  }
  return avalanche(a ^ text.length).toString(16).padStart(8, "0") + avalanche(b).toString(16).padStart(8, "0");
}

function avalanche(h) {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The entry's key: everything the compiled text depends on. */
export function cacheKey(compiler, options, path, source) {
  return `${FORMAT}\0${compiler}\0${JSON.stringify(options)}\0${path}\0${source}`;
}

/** A location that failed to take a write is not tried again in this process. */
let unwritable = false;
/** Temporary files are told apart by process, a counter and a random part (a cache shared between machines). */
let writes = 0;

/**
 * The compiled text stored under `key`, else `compile()`'s, stored for next time.
 * @param {string} key from cacheKey
 * @param {() => string} compile
 */
export function cached(key, compile) {
  const file = join(modulesDir(), `${digest(key)}.js`);
  const hit = read(file, key);
  if (hit !== null) return hit;
  const code = compile();
  write(file, key, code);
  return code;
}

/**
 * An entry: `// smithers-rs cache <digest of the rest> <length of the key>`, a newline, the
 * key, the compiled text. Its body, or null when there is none, it is damaged or it is
 * another key's.
 */
function read(file, key) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  const eol = text.indexOf("\n");
  if (!text.startsWith(HEADER) || eol < 0) return null;
  const [check, keyLength] = text.slice(HEADER.length, eol).split(" ");
  const rest = text.slice(eol + 1);
  if (Number(keyLength) !== key.length || !rest.startsWith(key) || digest(rest) !== check) return null;
  return rest.slice(key.length);
}

function write(file, key, body) {
  if (unwritable) return;
  const dir = modulesDir();
  const partial = `${file}.${process.pid}.${++writes}.${Math.random().toString(36).slice(2, 8)}.tmp`;
  const rest = key + body;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(partial, `${HEADER}${digest(rest)} ${key.length}\n${rest}`);
    renameSync(partial, file);
  } catch {
    unwritable = true;
    try {
      unlinkSync(partial);
    } catch {
      // never created
    }
    return;
  }
  prune(dir);
}

/**
 * Removes entries (and temporary files a killed process left) older than KEEP_MS, at most
 * once a day; the time of the last pass is the mtime of `.pruned`. Runs only after a write,
 * i.e. when something was compiled anyway.
 */
function prune(dir) {
  const marker = join(dir, ".pruned");
  const now = Date.now();
  try {
    if (now - statSync(marker).mtimeMs < PRUNE_EVERY_MS) return;
  } catch {
    // first pass
  }
  try {
    writeFileSync(marker, "");
    for (const name of readdirSync(dir)) {
      if (name === ".pruned") continue;
      const path = join(dir, name);
      try {
        if (now - statSync(path).mtimeMs > KEEP_MS) unlinkSync(path);
      } catch {
        // gone already (another process pruned it)
      }
    }
  } catch {
    // a cache we cannot tidy still works
  }
}
