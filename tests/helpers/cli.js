// Helpers for end-to-end tests of the `smithers` CLI: run it as a child process on a
// database of the test's own, and read that database afterwards.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = join(REPO, "npm/smithers-rs/bin/smithers.js");
export const EXAMPLES = join(REPO, "examples");

/** A fresh temp dir with a `smithers.db` path in it; `cleanup()` removes it. */
export function sandbox(prefix = "smithers-cli-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    db: join(dir, "smithers.db"),
    /** Writes `text` to `dir/name` and returns the path. */
    write(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `node bin/smithers.js ...args` with the repo root as cwd. Never rejects: resolves
 * to `{ code, stdout, stderr, json }` (`json` is stdout parsed, when it is JSON).
 * @param {string[]} args
 * @param {{ db?: string, cwd?: string, env?: Record<string, string> }} [options]
 */
export function smithers(args, options = {}) {
  const argv = options.db ? [...args, "--db", options.db] : args;
  // No SMITHERS_DB / SMITHERS_USER leaking in from the caller's environment.
  const { SMITHERS_DB: _db, SMITHERS_USER: _user, ...env } = process.env;
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...argv],
      { cwd: options.cwd ?? REPO, env: { ...env, ...options.env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) code = typeof error.code === "number" ? error.code : -1;
        let json;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        done({ code, stdout, stderr, json });
      },
    );
  });
}

/** `smithers ...` that must exit with `code`; the message shows the output when it does not. */
export async function expectExit(assert, code, args, options) {
  const r = await smithers(args, options);
  assert.equal(r.code, code, `smithers ${args.join(" ")} exited ${r.code}, expected ${code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/**
 * Opens the database through the Node API, calls `fn(engine)`, closes it. Only when no
 * CLI process uses the file.
 * @template T @param {string} db @param {(engine: SmithersEngine) => T} fn @returns {T}
 */
export function withEngine(db, fn) {
  const engine = new SmithersEngine({ dbPath: db });
  try {
    return fn(engine);
  } finally {
    engine.close();
  }
}

/** `inspect(runId)` through the Node API. */
export const inspectRun = (db, runId) => withEngine(db, (e) => e.inspect(runId));

/** Every run in the database, or [] when the file was never created. */
export const listRuns = (db) => (existsSync(db) ? withEngine(db, (e) => e.listRuns({ limit: 1000 })) : []);

/** The output rows of one table in an `inspect` answer. */
export const outputsOf = (info, table) => info.outputs.filter((o) => o.table === table);

let sqliteAvailable;
/** Whether the `sqlite3` command-line shell is installed (for raw column checks). */
export function hasSqlite3() {
  if (sqliteAvailable === undefined) {
    try {
      execFileSync("sqlite3", ["-version"], { stdio: "ignore" });
      sqliteAvailable = true;
    } catch {
      sqliteAvailable = false;
    }
  }
  return sqliteAvailable;
}

/** Runs one read-only query with the sqlite3 shell; returns the rows as objects. */
export function sql(db, query) {
  const out = execFileSync("sqlite3", ["-readonly", "-json", db, query], { encoding: "utf8" });
  return out.trim() === "" ? [] : JSON.parse(out);
}

/** The run id in the first `run <id>: <status>` line of `up`/`resume` output. */
export function runIdOf(stdout) {
  const m = /^run (\S+): /m.exec(stdout);
  if (!m) throw new Error(`no "run <id>:" line in:\n${stdout}`);
  return m[1];
}

/** `s` as a literal inside a RegExp. */
export const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The arguments of a command the CLI printed ("npx smithers approve r1 --db 'a b.db'"),
 * after "npx smithers"; single-quoted words as the shell reads them.
 */
export function printedArgs(command) {
  const rest = command.replace(/^\s*npx smithers\s+/, "");
  const words = [];
  for (const m of rest.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)) {
    words.push(m[1] !== undefined ? m[1].replaceAll("'\\''", "'") : m[2]);
  }
  return words;
}
