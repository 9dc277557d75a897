// A PostgreSQL server of the test file's own (scripts/pg-server.sh: initdb into a temporary
// folder, pg_ctl on a free loopback port, stopped when this process ends), and a schema per
// database the tests ask for. No server binaries is a failure that says how to get them.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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

/**
 * A server of the caller's alone (not the file's shared one), for a test that stops it:
 * `{ url, database(name), restart(), stop(), start() }`. `restart()` is `pg_ctl restart -m fast` (sessions are
 * ended; the server comes back on the same port with the same options).
 */
export function pgOwnServer() {
  const { url, dir, bin, as } = startServer({}, "a PostgreSQL server");
  const prefix = as ? as.split(" ").filter(Boolean) : [];
  const pgCtl = (...args) => {
    const argv = [...prefix, join(bin, "pg_ctl"), "-D", join(dir, "data"), ...args];
    execFileSync(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  };
  let k = 0;
  return {
    url,
    database: (name = "t") => `${url}?schema=${name}_${process.pid}_${k++}`,
    restart: () => pgCtl("restart", "-m", "fast", "-w", "-t", "60", "-l", join(dir, "server.log")),
    /** `pg_ctl stop -m fast`: sessions are ended, the server is gone until `start()`. */
    stop: () => pgCtl("stop", "-m", "fast", "-w", "-t", "60"),
    /** Starts a stopped server again with its options (pg_ctl restart reads postmaster.opts). */
    start: () => pgCtl("restart", "-w", "-t", "60", "-l", join(dir, "server.log")),
  };
}

/**
 * A server of the caller's alone that speaks TLS (scripts/pg-server.sh with SMITHERS_PG_SSL:
 * `on`, or `only`: TCP clients over TLS only), with the certificates made for it:
 * `{ url, port, file(name), database(host, params) }`. `file("ca.crt")` is the CA that signed
 * the server's certificate (DNS:localhost, IP:127.0.0.1), `file("other-ca.crt")` one that did
 * not; `database(host, params)` a URL of `host` naming a schema of its own, with `params`.
 */
export function pgTlsServer(ssl = "on") {
  const { url, dir } = startServer({ SMITHERS_PG_SSL: ssl }, "a TLS PostgreSQL server");
  const port = new URL(url).port;
  let k = 0;
  return {
    url,
    port,
    file: (name) => join(dir, "tls", name),
    database: (host, params) => `postgres://${host}:${port}/postgres?schema=tls_${process.pid}_${k++}&${params}`,
  };
}

/**
 * scripts/pg-server.sh for this process, with `env` added: the server's URL, its folder, its
 * binaries' directory and the command prefix that runs them as the server's user.
 */
function startServer(env, what) {
  const tmp = mkdtempSync(join(tmpdir(), "smithers-pg-info-"));
  const info = join(tmp, "info");
  let url;
  try {
    url = execFileSync(join(REPO, "scripts/pg-server.sh"), [String(process.pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env, SMITHERS_PG_INFO: info },
    }).trim();
  } catch (e) {
    throw new Error(`cannot start ${what}: ${String(e.stderr ?? e.message).trim()}`);
  }
  const [dir, bin, as] = readFileSync(info, "utf8").split("\n");
  rmSync(tmp, { recursive: true, force: true });
  return { url, dir, bin, as };
}
