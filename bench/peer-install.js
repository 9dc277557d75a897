// Installs the peer, Smithers 0.32 (`smithers-orchestrator` with `bun` and `zod` from the npm
// registry), into a scratch folder outside the repository, never as a dependency of this
// project. The folder is kept between runs: a later `npm run bench` reuses it.
//
//   node bench/peer-install.js            # install (or check the cached install) and say where
//
// The folder: $SMITHERS_BENCH_PEER_DIR, else <os tmpdir>/smithers-rs-bench-peer.
//
// A plain `npm install smithers-orchestrator@0.32.0` does not work here (see
// /work/shared/reference/peer-smithers.md, "Obstacles"): two exact versions it pins are missing
// from the registry, and npm picks an @effect/platform-node-shared that needs a newer `effect`
// than the one smithers pins. The overrides below pin those four packages; the first install
// must be a clean one (no node_modules, no lock file), which is what this script does.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const PEER_PACKAGE = "smithers-orchestrator";
export const PEER_VERSION = process.env.SMITHERS_BENCH_PEER_VERSION ?? "0.32.0";
const HERE = dirname(fileURLToPath(import.meta.url));
const PEER_FILES = join(HERE, "peer");

const OVERRIDES = {
  "@tanstack/electric-db-collection": "0.3.15",
  "@vectorize-io/hindsight-client": "0.9.1",
  effect: "4.0.0-beta.102",
  "@effect/platform-node-shared": "4.0.0-beta.102",
};

export function peerRoot() {
  return process.env.SMITHERS_BENCH_PEER_DIR ?? join(os.tmpdir(), "smithers-rs-bench-peer");
}

/** PATH with the peer's node_modules/.bin first: its CLI's shebang is `#!/usr/bin/env bun`. */
export function peerEnv(app, extra = {}) {
  return { ...process.env, PATH: `${join(app, "node_modules/.bin")}:${process.env.PATH}`, ...extra };
}

function tail(text, lines = 6) {
  return String(text ?? "").trim().split("\n").slice(-lines).join(" | ");
}

/**
 * Installs (or reuses) the peer. Never throws: `{ ok: false, reason }` when it cannot.
 * @param {{ log?: (msg: string) => void, timeoutMs?: number }} [options]
 */
export function installPeer({ log = () => {}, timeoutMs = 20 * 60_000 } = {}) {
  const root = peerRoot();
  const app = join(root, "app");
  const marker = join(app, `.installed-${PEER_VERSION}`);
  const bin = join(app, "node_modules/.bin");
  const t0 = performance.now();
  let cached = existsSync(marker) && existsSync(join(bin, "smithers")) && existsSync(join(bin, "bun"));
  if (!cached) {
    log(`peer: installing ${PEER_PACKAGE}@${PEER_VERSION} with bun and zod into ${app} (first time only; a few minutes)`);
    // A clean install: an incremental one keeps a tree npm resolved without the overrides.
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app, { recursive: true });
    const pkg = { name: "smithers-rs-bench-peer", private: true, type: "module", overrides: OVERRIDES };
    writeFileSync(join(app, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
    const r = spawnSync("npm", ["install", "--no-audit", "--no-fund", `${PEER_PACKAGE}@${PEER_VERSION}`, "zod", "bun"], {
      cwd: app,
      encoding: "utf8",
      timeout: timeoutMs,
      maxBuffer: 64 << 20,
    });
    writeFileSync(join(root, "npm-install.log"), `${r.stdout ?? ""}\n${r.stderr ?? ""}`);
    if (r.error || r.status !== 0) {
      const why = r.error ? String(r.error.message) : `npm install exited ${r.status}: ${tail(r.stderr)}`;
      return { ok: false, reason: why, root, app };
    }
  }
  const env = peerEnv(app);
  const bun = spawnSync("bun", ["--version"], { cwd: app, env, encoding: "utf8" });
  if (bun.status !== 0) return { ok: false, reason: `bun does not start: ${tail(bun.stderr || bun.error?.message)}`, root, app };
  const cli = spawnSync("smithers", ["--version"], { cwd: app, env, encoding: "utf8" });
  if (cli.status !== 0) return { ok: false, reason: `smithers --version exited ${cli.status}: ${tail(cli.stderr)}`, root, app };
  const version = (/\d+\.\d+\.\d+\S*/.exec(cli.stdout) ?? [cli.stdout.trim()])[0];
  if (!cached) writeFileSync(marker, `${new Date().toISOString()}\n`);
  // The workflow files and driver scripts (bench/peer/) sit in the install folder, so that
  // `bun file.ts` resolves smithers-orchestrator and zod from its node_modules.
  for (const f of readdirSync(PEER_FILES)) cpSync(join(PEER_FILES, f), join(app, f));
  const versions = { smithers: version, bun: bun.stdout.trim() };
  for (const p of ["zod", "effect"]) {
    try {
      versions[p] = JSON.parse(readFileSync(join(app, "node_modules", p, "package.json"), "utf8")).version;
    } catch {}
  }
  return { ok: true, root, app, cached, installMs: performance.now() - t0, versions, env };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = installPeer({ log: (m) => process.stderr.write(`${m}\n`) });
  const { env, ...shown } = r;
  console.log(JSON.stringify(shown, null, 2));
  process.exitCode = r.ok ? 0 : 1;
}
