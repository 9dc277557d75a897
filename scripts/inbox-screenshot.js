#!/usr/bin/env node
// Writes docs/inbox.png: the web approval inbox of `smithers serve` (1280×800) with a few
// runs of the examples waiting, taken with headless Chromium (playwright-core and the
// system's /usr/bin/chromium, or $SMITHERS_CHROMIUM).
//
//   node scripts/inbox-screenshot.js [--out docs/inbox.png] [--dark]
//
// Everything happens in a temp dir (database, logs, deploy files), removed at the end.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(REPO, "npm/smithers-rs/bin/smithers.js");
const { values } = parseArgs({ options: { out: { type: "string", default: join(REPO, "docs/inbox.png") }, dark: { type: "boolean", default: false } } });
const out = resolve(values.out);
const TOKEN = "screenshot-token-0123456789";

const dir = mkdtempSync(join(tmpdir(), "smithers-inbox-shot-"));
const db = join(dir, "smithers.db");
const { SMITHERS_DB: _db, SMITHERS_USER: _u, SMITHERS_TOKENS: _t, SMITHERS_API_KEY: _k, ...baseEnv } = process.env;
const env = { ...baseEnv, DEPLOY_DIR: join(dir, "deploys"), NOTIFY_LOG: join(dir, "notify.log") };

/** `smithers ...args --db <db>`; exit 3 (waiting) is what `up` should say here. */
function cli(...args) {
  try {
    return execFileSync(process.execPath, [BIN, ...args, "--db", db], { cwd: REPO, env, encoding: "utf8" });
  } catch (e) {
    if (e.status === 3) return e.stdout;
    throw new Error(`smithers ${args.join(" ")} exited ${e.status}\n${e.stdout}\n${e.stderr}`);
  }
}
const runIdOf = (stdout) => /^run (\S+): /m.exec(stdout)[1];
const example = (name) => join(REPO, "examples", name);

let serve = null;
let browser = null;
try {
  // A metrics query pushed back once (round 2, with its history), a migration plan that needs
  // APPROVED_BY, a staging deploy to review, and two plain gates.
  cli("up", example("migration-approval.tsx"), "--input", '{"database":"orders"}', "--by", "carol");
  const metrics = runIdOf(cli("up", example("metrics-pushback.tsx"), "--by", "carol"));
  cli("push-back", metrics, "--input", "DAYS=30", "--note", "a month, please", "--by", "bob");
  cli("up", example("deploy-review.tsx"), "--input", '{"version":"1.4.2"}', "--by", "carol");
  cli("up", example("parallel-gates.tsx"), "--input", '{"release":"v2.0"}', "--by", "carol");
  cli("up", example("publish-approval.tsx"), "--input", '{"title":"Release notes for 2.0"}', "--by", "carol");

  serve = spawn(process.execPath, [BIN, "serve", "--port", "0", "--json", "--db", db], {
    cwd: dir,
    env: { ...env, SMITHERS_TOKENS: JSON.stringify([{ user: "alice", token: TOKEN, scopes: ["approve"] }]) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolveUrl, reject) => {
    let text = "";
    serve.stdout.on("data", (d) => {
      text += d;
      if (text.includes("\n")) resolveUrl(JSON.parse(text.split("\n")[0]).url);
    });
    serve.on("exit", (code) => reject(new Error(`smithers serve exited ${code}`)));
  });

  browser = await chromium.launch({
    executablePath: process.env.SMITHERS_CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: values.dark ? "dark" : "light" });
  await page.goto(`${url}?token=${TOKEN}`);
  await page.getByRole("button", { name: /^Sign in as / }).click();
  await page.locator("article.card").nth(5).waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  // Let the waiting clocks tick past zero; fold the migration plan's output (its stdout is
  // one click away) and open its approve form, to show the required input.
  await page.waitForTimeout(2500);
  const mig = page.locator('article.card[data-key*="/migration-plan/"]');
  await mig.locator("details.output").first().evaluate((d) => {
    d.open = false;
  });
  await mig.getByRole("button", { name: "Approve" }).click();
  await mig.locator('[data-action="approve"]').getByLabel(/^MAINTENANCE_WINDOW/).fill("sat 02:00-03:00");
  await mig.locator('[data-action="approve"]').getByRole("button", { name: "Approve" }).click();
  await mig.locator('[data-action="approve"] .form-error').waitFor();
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser?.close();
  if (serve && serve.exitCode === null) {
    serve.kill("SIGTERM");
    await new Promise((r) => serve.once("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
}
