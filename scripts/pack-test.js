#!/usr/bin/env node
// CI check of the npm packaging path (.ci/run): what `npm install smithers-rs` gives a user.
//   1. `npm pack` the main package (no `.node` in it; README, LICENSE, the CLI, the loader, the
//      CLI's bundle dist/ that its prepack builds);
//   2. `npm pack` every platform package from its committed manifest (npm/smithers-rs/npm/*/);
//      the one for this machine carries the addon `npm install` built here (a debug build:
//      release builds are for scripts/build-platforms.js, too slow for CI);
//   3. install the main tarball into an empty project with no Rust on PATH, its optional
//      dependencies pointed at those tarballs (`overrides`), so npm itself chooses the platform
//      package by the manifests' os / cpu / libc fields;
//   4. run examples there through `smithers up` (waits at its gate) and `smithers approve`
//      (finishes): a JSX workflow, a Dagu DAG, and an agent workflow (MDX prompt, smithers'
//      tools, `ai` installed beside it as a user would) against a loopback stand-in for
//      Anthropic's API; a decision through `smithers serve`, which resumes the run in a worker
//      thread (src/driver-worker.js, loaded from the installed package), and whose decision
//      reaches a webhook receiver on loopback signed (checked with the package's own
//      verifyWebhook); and check the error a user gets when the platform package is missing.
// A missing file, a wrong `files` entry or a wrong os/cpu/libc field fails it. ~20 s.
import { execFile, spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { delimiter, dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { startAnthropicStandIn } from "./lib/anthropic-stand-in.js";
import { PKG_DIR, ROOT, packAll, versionHere, writeApp } from "./lib/packed-app.js";

const HOST_ABI = "linux-x64-gnu";
const t0 = performance.now();
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
  process.stderr.write(`[pack-test] ${ok ? "ok  " : "FAIL"} ${what}\n`);
};

if (`${process.platform}-${process.arch}` !== "linux-x64") {
  console.log(`pack-test: skipped: it installs the ${HOST_ABI} package and runs on linux-x64 only`);
  process.exit(0);
}

const work = mkdtempSync(join(os.tmpdir(), "smithers-pack-test-"));

try {
  // 1. The main package and 2. the platform packages, the one for this machine carrying the
  // addon `npm install` built here.
  const hostManifest = JSON.parse(readFileSync(join(PKG_DIR, "npm", HOST_ABI, "package.json"), "utf8"));
  const packed = packAll(work, { [HOST_ABI]: join(PKG_DIR, hostManifest.main) });
  const { pkg, main } = packed;
  const files = main.files.map((f) => f.path);
  check(!files.some((f) => f.endsWith(".node")), `the main tarball holds no .node (${(main.size / 1024).toFixed(0)} KB, ${files.length} files)`);
  for (const f of ["README.md", "LICENSE", "package.json", "bin/smithers.js", "binding.cjs", "src/binding-load.cjs", "src/loader/hooks.js", "src/tools.js", "src/agents/task.js", "src/dagu/parse.js", "src/serve/web/index.html", "src/serve/webhooks.js", "src/serve/links.js", "src/serve/link-page.js", "src/serve/mail.js", "src/driver-worker.js", "src/isolation.js", "src/worktree.js", "dist/smithers.cjs", "dist/manifest.json", "dist/index.js", "dist/jsx-runtime.js", "dist/tools.js", "dist/serve/index.js"]) {
    check(files.includes(f), `the main tarball holds ${f}`);
  }
  for (const [abi, { name, manifest, tarball }] of Object.entries(packed.platforms)) {
    check(manifest.name === name && manifest.version === pkg.version, `npm/${abi}/package.json is ${name}@${pkg.version}`);
    if (abi === HOST_ABI) check(tarball.files.some((f) => f.path === manifest.main), `${name} carries ${manifest.main}`);
  }

  // 3. An empty project, no Rust on PATH, with what a project that writes agent workflows has
  // beside smithers-rs (versions as here).
  const app = join(work, "app");
  writeApp(app, packed, Object.fromEntries(["zod", "ai", "@ai-sdk/anthropic"].map((name) => [name, versionHere(name)])));
  const noRust = [dirname(process.execPath), "/usr/bin", "/bin"].filter((d, i, all) => all.indexOf(d) === i && !existsSync(join(d, "cargo")) && !existsSync(join(d, "rustc")));
  const env = { ...process.env, PATH: noRust.join(delimiter), npm_config_audit: "false", npm_config_fund: "false" };
  for (const k of ["CARGO", "RUSTUP_HOME", "CARGO_HOME", "NAPI_RS_NATIVE_LIBRARY_PATH", "SMITHERS_DB", "SMITHERS_LOG"]) delete env[k];
  check(spawnSync("sh", ["-c", "command -v cargo || command -v rustc"], { env }).status !== 0, `no cargo or rustc on PATH (${env.PATH})`);
  const install = spawnSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], { cwd: app, env, encoding: "utf8" });
  check(install.status === 0, `npm install of the tarball exits 0${install.status ? `: ${install.stderr.slice(-1500)}` : ""}`);
  const installed = readdirSync(join(app, "node_modules")).filter((d) => d.startsWith(`${pkg.name}-`));
  check(installed.join(",") === `${pkg.name}-${HOST_ABI}`, `npm installed exactly the ${HOST_ABI} platform package (got: ${installed.join(", ") || "none"})`);

  // 4. An example through its gate.
  cpSync(join(ROOT, "examples/publish-approval.tsx"), join(app, "publish-approval.tsx"));
  const smithers = (...args) => spawnSync(join(app, "node_modules/.bin/smithers"), args, { cwd: app, env, encoding: "utf8" });
  const version = smithers("--version");
  check(version.status === 0 && version.stdout.trim() === pkg.version, `smithers --version prints ${pkg.version} (${version.stdout.trim() || version.stderr.trim()})`);
  const up = smithers("up", "publish-approval.tsx", "--input", '{"title":"Packed"}', "--json");
  const run = up.status === 3 ? JSON.parse(up.stdout) : null;
  check(run?.status === "waiting-approval", `smithers up waits at the gate, exit 3 (exit ${up.status}${up.status === 3 ? "" : `: ${up.stderr.slice(-800)}`})`);
  if (run) {
    const approve = smithers("approve", run.runId, "--by", "ci", "--json");
    const decided = approve.status === 0 ? JSON.parse(approve.stdout) : null;
    check(decided?.run?.status === "finished", `smithers approve finishes the run, exit 0 (exit ${approve.status}${approve.status ? `: ${approve.stderr.slice(-800)}` : ""})`);
    // The full CLI of the installed package runs from its bundle (dist/smithers.cjs): a
    // preload lists the files it required.
    const required = join(work, "required.json");
    writeFileSync(join(work, "required.cjs"), `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(required)}, JSON.stringify(Object.keys(require.cache))));\n`);
    const inspect = spawnSync(join(app, "node_modules/.bin/smithers"), ["inspect", run.runId, "--json"], { cwd: app, env: { ...env, NODE_OPTIONS: `--require=${join(work, "required.cjs")}` }, encoding: "utf8" });
    const outputs = inspect.status === 0 ? JSON.parse(inspect.stdout).outputs.map((o) => o.nodeId) : [];
    check(outputs.includes("publish"), `smithers inspect shows the published output (${outputs.join(", ")})`);
    const requiredFiles = existsSync(required) ? JSON.parse(readFileSync(required, "utf8")) : [];
    check(requiredFiles.includes(join(app, "node_modules", pkg.name, "dist/smithers.cjs")), "the installed CLI runs from its bundle, dist/smithers.cjs");
  }

  // A decision through `smithers serve`: it resumes the run in a worker thread of its own.
  const waiting = smithers("up", "publish-approval.tsx", "--input", '{"title":"Served"}', "--json");
  const served = waiting.status === 3 ? JSON.parse(waiting.stdout) : null;
  check(served !== null, `a second run waits at the gate (exit ${waiting.status}${waiting.status === 3 ? "" : `: ${waiting.stderr.slice(-800)}`})`);
  if (served) {
    const token = "pack-test-token-0123456789";
    // A webhook receiver: serve (its webhooks.js, the core's delivery rows) sends it the decision.
    const { newWebhookSecret, verifyWebhook } = await import(pathToFileURL(createRequire(join(app, "package.json")).resolve("smithers-rs/serve")).href);
    const secret = newWebhookSecret();
    const received = [];
    const hook = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        try {
          received.push(verifyWebhook(secret, req.headers, Buffer.concat(chunks).toString("utf8")));
        } catch (e) {
          received.push({ unverified: e.code });
        }
        res.writeHead(204).end();
      });
    });
    await new Promise((r) => hook.listen(0, "127.0.0.1", r));
    writeFileSync(join(app, "serve.json"), JSON.stringify({ webhooks: [{ name: "ci", url: `http://127.0.0.1:${hook.address().port}/hook`, secret, events: ["gate.decided"] }] }));
    const server = spawn(join(app, "node_modules/.bin/smithers"), ["serve", "--port", "0", "--json", "--config", "serve.json"], {
      cwd: app,
      env: { ...env, SMITHERS_TOKENS: JSON.stringify([{ user: "ci", token, scopes: ["admin"] }]) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let serveErr = "";
    server.stderr.on("data", (d) => (serveErr += d));
    try {
      const url = await new Promise((found, failed) => {
        let out = "";
        const timer = setTimeout(() => failed(new Error("serve did not start in 20 s")), 20_000);
        server.stdout.on("data", (d) => {
          out += d;
          if (!out.includes("\n")) return;
          clearTimeout(timer);
          found(JSON.parse(out.split("\n")[0]).url);
        });
        server.on("exit", (code) => failed(new Error(`serve exited ${code}`)));
      });
      const api = (path, body) =>
        fetch(new URL(path, url), { method: body ? "POST" : "GET", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body && JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: await r.json() }));
      const decided = await api(`/v1/runs/${served.runId}/nodes/publish-approval/approve`, {});
      let status = null;
      for (let i = 0; i < 200 && status !== "finished"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await api(`/v1/runs/${served.runId}`)).body.run?.status;
      }
      check(decided.status === 200 && status === "finished", `smithers serve takes the decision and its worker thread finishes the run (HTTP ${decided.status}, run ${status})`);
      const isDecision = (m) => m.type === "gate.decided" && m.data?.run?.runId === served.runId;
      for (let i = 0; i < 200 && !received.some(isDecision); i++) await new Promise((r) => setTimeout(r, 100));
      check(
        received.some(isDecision) && !received.some((m) => m.unverified),
        `the decision reaches a webhook receiver, signed (${received.map((m) => m.type ?? m.unverified).join(", ") || "nothing received"})`,
      );
    } catch (e) {
      check(false, `smithers serve from the tarball: ${e.message} ${serveErr.slice(-800)}`);
    } finally {
      server.kill("SIGKILL");
      hook.closeAllConnections();
      hook.close();
    }
  }

  // A Dagu DAG, as Dagu users bring it: its step waits for review, then production deploys.
  mkdirSync(join(app, "dagu"));
  for (const f of ["deploy-review.yaml", "deploy.sh"]) cpSync(join(ROOT, "examples/dagu", f), join(app, "dagu", f));
  const inDagu = (...args) => spawnSync(join(app, "node_modules/.bin/smithers"), [...args, "--db", join(app, "dagu.db")], { cwd: join(app, "dagu"), env, encoding: "utf8" });
  const dagUp = inDagu("up", "deploy-review.yaml", "--json");
  const dagRun = dagUp.status === 3 ? JSON.parse(dagUp.stdout) : null;
  check(dagRun?.pendingApprovals?.[0]?.nodeId === "deploy_staging", `a Dagu DAG waits for review of deploy_staging, exit 3 (exit ${dagUp.status}${dagUp.status === 3 ? "" : `: ${dagUp.stderr.slice(-800)}`})`);
  if (dagRun) {
    const approve = inDagu("approve", dagRun.runId, "--json");
    const marks = existsSync(join(app, "dagu/marks.log")) ? readFileSync(join(app, "dagu/marks.log"), "utf8") : "";
    check(approve.status === 0 && /^deploy production/m.test(marks), `approving it deploys production, exit 0 (exit ${approve.status}; marks: ${JSON.stringify(marks)}${approve.status ? `: ${approve.stderr.slice(-800)}` : ""})`);
  }

  // An agent workflow: agents on `ai`, an MDX prompt, smithers' tools, a person between them.
  cpSync(join(ROOT, "examples/agents"), join(app, "agents"), { recursive: true });
  const model = await startAnthropicStandIn();
  try {
    const agentEnv = { ...env, ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: "stand-in", SMITHERS_CACHE_DIR: join(work, "cache") };
    // Not spawnSync: the stand-in answers from this process's event loop.
    const inAgents = (...args) =>
      new Promise((done) => {
        execFile(join(app, "node_modules/.bin/smithers"), [...args, "--db", join(app, "agents.db")], { cwd: join(app, "agents"), env: agentEnv, timeout: 120_000 }, (error, stdout, stderr) =>
          done({ status: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
        );
      });
    const agentUp = await inAgents("up", "incident-rollback.tsx", "--input", '{"service":"checkout"}', "--json");
    const agentRun = agentUp.status === 3 ? JSON.parse(agentUp.stdout) : null;
    check(
      agentRun?.pendingApprovals?.[0]?.nodeId === "approve-rollback",
      `agents investigate (a tool call) and advise (an MDX prompt), then wait for approve-rollback, exit 3 (exit ${agentUp.status}${agentUp.status === 3 ? "" : `: ${agentUp.stderr.slice(-800)}`})`,
    );
    if (agentRun) {
      const approve = await inAgents("approve", agentRun.runId, "--by", "ci", "--json");
      const decided = approve.status === 0 ? JSON.parse(approve.stdout) : null;
      check(decided?.run?.status === "finished", `approving the rollback lets the operator agent act, exit 0 (exit ${approve.status}${approve.status ? `: ${approve.stderr.slice(-800)}` : ""})`);
      const inspect = await inAgents("inspect", agentRun.runId, "--json");
      const calls = inspect.status === 0 ? JSON.parse(inspect.stdout).agentAttempts : [];
      check(
        calls.map((a) => a.nodeId).join(",") === "investigate,advise,act" && calls[0].agent.toolCalls >= 1,
        `inspect keeps the three agent calls and the investigator's tool call (${calls.map((a) => `${a.nodeId}:${a.agent?.toolCalls ?? 0}`).join(", ")})`,
      );
    }
  } finally {
    await model.close();
  }

  // Without the platform package: an error that names it, not napi's generic one.
  const platformDir = join(app, "node_modules", `${pkg.name}-${HOST_ABI}`);
  renameSync(platformDir, `${platformDir}.away`);
  const missing = smithers("--version");
  renameSync(`${platformDir}.away`, platformDir);
  check(
    missing.status === 1 && missing.stderr.includes("NATIVE_BINDING_MISSING") && missing.stderr.includes(`${pkg.name}-${HOST_ABI}`),
    `without its platform package, smithers says NATIVE_BINDING_MISSING and names ${pkg.name}-${HOST_ABI} (exit ${missing.status}: ${missing.stderr.trim().split("\n")[0].slice(0, 160)})`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

const seconds = ((performance.now() - t0) / 1000).toFixed(1);
if (failures.length) {
  console.log(`pack-test: ${failures.length} check(s) failed in ${seconds} s:\n${failures.map((f) => `  - ${f}`).join("\n")}`);
  process.exitCode = 1;
} else {
  console.log(`pack-test: the packed tarball installs without Rust and runs a JSX workflow (also through serve's worker threads), a Dagu DAG and an agent workflow through approve (${seconds} s)`);
}
