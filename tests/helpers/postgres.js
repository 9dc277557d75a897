// A PostgreSQL server of the test file's own (scripts/pg-server.sh: initdb into a temporary
// folder, pg_ctl on a free loopback port, stopped when this process ends), and a schema per
// database the tests ask for. No server binaries is a failure that says how to get them.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { REPO } from "./cli.js";

let base = null;

/** The server's URL (started on first use, or $SMITHERS_TEST_PG_URL). */
export function pgServer() {
  if (base) return base;
  if (process.env.SMITHERS_TEST_PG_URL) {
    base = process.env.SMITHERS_TEST_PG_URL;
    return base;
  }
  try {
    base = execFileSync(join(REPO, "scripts/pg-server.sh"), [String(process.pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  } catch (e) {
    throw new Error(`cannot run the PostgreSQL tests: ${String(e.stderr ?? e.message).trim()}`);
  }
  return base;
}

let n = 0;
/** A database URL naming a schema no other test uses (the engine creates it). */
export function pgDatabase(name = "t") {
  const url = pgServer();
  return `${url}${url.includes("?") ? "&" : "?"}schema=${name}_${process.pid}_${n++}`;
}
