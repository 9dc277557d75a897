// Installs the peers other than Smithers (bench/peer-install.js) into scratch folders outside the
// repository, from the registries: DBOS and LangGraph from PyPI (a venv), Dagu from the binary
// npm ships in @dagu-org/dagu-linux-x64 (`npm pack`, no install scripts). Later runs reuse them.
//
//   node bench/peers-install.js      # install (or check) and say where, as JSON
//
// Folders: $SMITHERS_BENCH_PY_DIR (default <tmpdir>/smithers-rs-bench-python) and
// $SMITHERS_BENCH_DAGU_DIR (default <tmpdir>/smithers-rs-bench-dagu). Never throws: a peer that
// cannot be installed is `{ ok: false, reason }`, and the benchmark goes on without it.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PYTHON_PEERS = { dbos: "3.4.0", langgraph: "1.2.22", "langgraph-checkpoint-sqlite": "3.1.2" };
export const DAGU_VERSION = process.env.SMITHERS_BENCH_DAGU_VERSION ?? "1.30.2";

const tail = (text) => String(text ?? "").trim().split("\n").slice(-3).join(" | ");

/** A venv with DBOS and LangGraph: `{ ok, python, versions }` or `{ ok: false, reason }`. */
export function installPython({ log = () => {} } = {}) {
  const dir = process.env.SMITHERS_BENCH_PY_DIR ?? join(os.tmpdir(), "smithers-rs-bench-python");
  const python = join(dir, "venv/bin/python");
  const wanted = Object.entries(PYTHON_PEERS).map(([p, v]) => `${p}==${v}`);
  const check = () => spawnSync(python, ["-c", "import dbos, langgraph, langgraph.checkpoint.sqlite"], { encoding: "utf8" });
  if (!existsSync(python) || check().status !== 0) {
    log(`peers: installing ${wanted.join(", ")} into ${dir} (first time only)`);
    mkdirSync(dir, { recursive: true });
    const venv = spawnSync("python3", ["-m", "venv", join(dir, "venv")], { encoding: "utf8" });
    if (venv.status !== 0) return { ok: false, reason: `python3 -m venv failed: ${tail(venv.stderr || venv.error?.message)}` };
    const pip = spawnSync(join(dir, "venv/bin/pip"), ["install", "--quiet", ...wanted], { encoding: "utf8", timeout: 15 * 60_000 });
    if (pip.status !== 0) return { ok: false, reason: `pip install ${wanted.join(" ")} failed: ${tail(pip.stderr || pip.error?.message)}` };
    const again = check();
    if (again.status !== 0) return { ok: false, reason: `the installed peers do not import: ${tail(again.stderr)}` };
  }
  const versions = spawnSync(python, ["-c", "import importlib.metadata as m, json, sys; print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))", ...Object.keys(PYTHON_PEERS)], { encoding: "utf8" });
  const python3 = spawnSync(python, ["-c", "import sys, sqlite3; print(sys.version.split()[0], sqlite3.sqlite_version)"], { encoding: "utf8" }).stdout.trim().split(" ");
  return { ok: true, dir, python, versions: { ...JSON.parse(versions.stdout), python: python3[0], sqlite: python3[1] } };
}

/** Dagu's binary from npm: `{ ok, bin, version }` or `{ ok: false, reason }`. */
export function installDagu({ log = () => {} } = {}) {
  if (process.platform !== "linux" || process.arch !== "x64") return { ok: false, reason: `the bench fetches Dagu's linux-x64 package only (this is ${process.platform}-${process.arch})` };
  const dir = process.env.SMITHERS_BENCH_DAGU_DIR ?? join(os.tmpdir(), "smithers-rs-bench-dagu");
  const bin = join(dir, "package/bin/dagu");
  if (!existsSync(bin)) {
    log(`peers: fetching @dagu-org/dagu-linux-x64@${DAGU_VERSION} into ${dir}`);
    mkdirSync(dir, { recursive: true });
    const pack = spawnSync("npm", ["pack", "--silent", `@dagu-org/dagu-linux-x64@${DAGU_VERSION}`], { cwd: dir, encoding: "utf8", timeout: 10 * 60_000 });
    if (pack.status !== 0) return { ok: false, reason: `npm pack @dagu-org/dagu-linux-x64@${DAGU_VERSION} failed: ${tail(pack.stderr)}` };
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    const untar = spawnSync("tar", ["-xzf", tarball], { cwd: dir, encoding: "utf8" });
    if (untar.status !== 0 || !existsSync(bin)) return { ok: false, reason: `cannot unpack ${tarball}: ${tail(untar.stderr)}` };
  }
  const version = spawnSync(bin, ["version"], { encoding: "utf8" });
  if (version.status !== 0) return { ok: false, reason: `dagu version exited ${version.status}: ${tail(version.stderr)}` };
  return { ok: true, dir, bin, version: (version.stdout + version.stderr).trim().split("\n").pop() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const log = (m) => process.stderr.write(`${m}\n`);
  console.log(JSON.stringify({ python: installPython({ log }), dagu: installDagu({ log }) }, null, 2));
}
