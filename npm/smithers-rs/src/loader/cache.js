// The on-disk cache of compiled workflow modules (.ts/.tsx/.jsx by oxc-transform, .mdx by
// @mdx-js/mdx), so that a warm start loads no compiler at all. Content-addressed: the key
// hashes the compiler and its version, its options, the file's path and its source, so an
// edit, an upgrade or an option change is a new entry and nothing is ever invalidated.
//
// Safe to share: an entry is written to a temporary file and renamed into place (atomic on
// one file system), so concurrent processes see a whole entry or none; each entry starts with
// a digest of its body, so a damaged entry is a miss (and is written again); a location that
// cannot be written (read-only, full, not a directory) only means compiling every time.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheRoot } from "./cache-dir.cjs";

/** Bump when what is stored changes shape (header, source map handling, …). */
const FORMAT = "smithers-rs-module-cache-1";
const HEADER = "// smithers-rs cache ";
/** Entries nobody wrote or used for this long are removed (checked at most once a day). */
const KEEP_MS = 30 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS = 24 * 3600 * 1000;

/** Where compiled modules are kept. */
export const modulesDir = () => join(cacheRoot(), "modules");

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

/** The entry's key: everything the compiled text depends on. */
export function cacheKey(compiler, options, path, source) {
  return sha256(`${FORMAT}\0${compiler}\0${JSON.stringify(options)}\0${path}\0${source}`);
}

/** A location that failed to take a write is not tried again in this process. */
let unwritable = false;

/**
 * The compiled text stored under `key`, else `compile()`'s, stored for next time.
 * @param {string} key from cacheKey
 * @param {() => string} compile
 */
export function cached(key, compile) {
  const file = join(modulesDir(), `${key}.js`);
  const hit = read(file);
  if (hit !== null) return hit;
  const code = compile();
  write(file, code);
  return code;
}

/** An entry's body, or null when there is none or it is damaged. */
function read(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  const eol = text.indexOf("\n");
  if (!text.startsWith(HEADER) || eol < 0) return null;
  const body = text.slice(eol + 1);
  return text.slice(HEADER.length, eol) === sha256(body) ? body : null;
}

function write(file, body) {
  if (unwritable) return;
  const dir = modulesDir();
  const partial = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(partial, `${HEADER}${sha256(body)}\n${body}`);
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
