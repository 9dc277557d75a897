// The YAML examples of Dagu's approval documentation (tests/fixtures/dagu-approval-docs.txt,
// the page as published, MIT), taken as they are written there and run one by one. The
// scripts they call (./deploy.sh, ./migrate.sh, …) and the sub-DAGs they name are the
// stand-ins of examples/dagu; curl, jq, claude and git are stand-ins put first on PATH
// (tests/fixtures/dagu-bin).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { REPO } from "./helpers/cli.js";
import { FAKE_BIN, daguBox, statesOf } from "./helpers/dagu.js";
import { smtpServer } from "./helpers/smtp.js";

const DOC = readFileSync(join(REPO, "tests/fixtures/dagu-approval-docs.txt"), "utf8");
/** Top-level keys of a DAG: a paragraph made only of these is part of the block. */
const DAG_KEYS = new Set(["name", "type", "steps", "params", "env", "handler_on", "mail_on", "wait_mail", "error_mail", "smtp"]);

/**
 * The YAML blocks of the page: the paragraphs after each line "yaml", as long as each
 * parses as a mapping of DAG keys (a block may hold blank lines; the prose after it does not
 * parse so).
 */
function yamlBlocks(text) {
  const lines = text.split("\n");
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "yaml") continue;
    const paragraphs = [];
    let current = [];
    let j = i + 1;
    for (; j <= lines.length; j++) {
      const line = lines[j];
      if (line === undefined || line.trim() === "") {
        if (current.length) paragraphs.push(current.join("\n"));
        current = [];
        if (line === undefined) break;
        continue;
      }
      current.push(line);
    }
    let block = "";
    for (const p of paragraphs) {
      let value;
      try {
        value = parse(p);
      } catch {
        break;
      }
      if (!value || typeof value !== "object" || Array.isArray(value) || !Object.keys(value).every((k) => DAG_KEYS.has(k))) break;
      block += (block ? "\n\n" : "") + p;
    }
    blocks.push(`${block}\n`);
  }
  return blocks;
}

const BLOCKS = yamlBlocks(DOC);

test("the page has the eight YAML examples, each a DAG this loader reads", () => {
  assert.equal(BLOCKS.length, 8);
  assert.match(BLOCKS[0], /^steps:\n  - id: deploy_staging\n/);
  assert.match(BLOCKS[6], /^mail_on:\n  wait: true\n\nwait_mail:\n/);
  assert.match(BLOCKS[7], /^handler_on:\n[\s\S]*\n\nsteps:\n  - id: deploy\n/);
});

/** A box with examples/dagu (stand-in scripts and sub-DAGs), block `i` as doc-<i>.yaml. */
function docBox(t, i) {
  const b = daguBox(t);
  b.write(`doc-${i}.yaml`, BLOCKS[i]);
  const env = { PATH: `${FAKE_BIN}:${process.env.PATH}`, CURL_LOG: join(b.dir, "curl.log") };
  return { ...b, env, run: (code, args) => b.expect(code, args, { env }) };
}

test("Usage: deploy_staging runs, waits; deploy_prod is not started until it is approved", async (t) => {
  const b = docBox(t, 0);
  const { runId } = (await b.run(3, ["up", "doc-0.yaml", "--json"])).json;
  assert.deepEqual(statesOf(await b.inspect(runId)), { deploy_staging: "waiting-approval", deploy_prod: "pending" });
  await b.run(0, ["approve", runId]);
  assert.deepEqual(b.marks(), ["deploy staging ", "deploy production "]);
});

test("Collecting Inputs: APPROVED_BY is required; both inputs reach execute_migration", async (t) => {
  const b = docBox(t, 1);
  const { runId } = (await b.run(3, ["up", "doc-1.yaml", "--json"])).json;
  assert.equal((await b.run(4, ["approve", runId, "--json"])).json.error.code, "MISSING_REQUIRED_INPUTS");
  await b.run(0, ["approve", runId, "--input", "APPROVED_BY=john@example.com", "--input", "MAINTENANCE_WINDOW=sat"]);
  assert.deepEqual(b.marks(), ["plan", "migrate --approver john@example.com --window sat"]);
});

test("Gating a Sub-DAG: integration-test-suite runs to its end, then the call waits; deploy after approval", async (t) => {
  const b = docBox(t, 2);
  const { runId } = (await b.run(3, ["up", "doc-2.yaml", "--json"])).json;
  assert.deepEqual(b.marks().sort(), ["tests api", "tests ui"]);
  assert.equal((await b.inspect(`${runId}.run_integration_tests.0`)).run.status, "finished");
  await b.run(0, ["approve", runId]);
  assert.equal(b.marks().at(-1), "deploy production ");
});

test("Approval Before a Sub-DAG: DEPLOY_VERSION is required and becomes production-deploy's deploy_version", async (t) => {
  const b = docBox(t, 3);
  const { runId } = (await b.run(3, ["up", "doc-3.yaml", "--json"])).json;
  await b.run(0, ["approve", runId, "--input", "DEPLOY_VERSION=2.1.0"]);
  assert.deepEqual(b.marks(), ["validate production", "deploy production 2.1.0"]);
});

test("Push-back: the metrics query runs again with SINCE=30d GROUPING=weekly, approvalIteration 1; then the report", async (t) => {
  const b = docBox(t, 4);
  const { runId } = (await b.run(3, ["up", "doc-4.yaml", "--json"])).json;
  const first = await b.stdout(runId, "query_metrics");
  assert.equal(first, 'Querying error rates (since=7d, grouping=daily)\n"2026-11-01: 10 errors (0.4%)"\n"2026-11-02: 11 errors (0.4%)"\n');
  const back = await b.run(0, ["push-back", runId, "--input", "SINCE=30d", "--input", "GROUPING=weekly", "--json"]);
  assert.equal(back.json.approvalIteration, 1);
  assert.equal(await b.stdout(runId, "query_metrics"), 'Querying error rates (since=30d, grouping=weekly)\n"week 44: 46 errors (0.5%)"\n');
  await b.run(0, ["approve", runId]);
  assert.equal(b.marks().at(-1), "slack ");
});

test("Iterating on LLM Output: FEEDBACK goes into the prompt of the next draft; publish after approval", async (t) => {
  const b = docBox(t, 5);
  const { runId } = (await b.run(3, ["up", "doc-5.yaml", "--json"])).json;
  assert.match(await b.stdout(runId, "draft_changelog"), /^Changelog \(3 commits\)\n- Faster pagination\n[\s\S]*prompt: Generate a changelog from these git commits for a public release blog post\.\n$/);
  await b.run(0, ["push-back", runId, "--input", "FEEDBACK=Make it more concise and group by feature area"]);
  assert.match(await b.stdout(runId, "draft_changelog"), /Incorporate this feedback: Make it more concise and group by feature area\n$/);
  await b.run(0, ["approve", runId]);
  assert.deepEqual(b.marks(), ["publish Make it more concise and group by feature area"], "the feedback reaches the steps after it too");
});

test("Email Notifications: the block (mail settings, no steps) loads with the SMTP server from the environment and ends", async (t) => {
  const b = docBox(t, 6);
  const smtp = await smtpServer();
  t.after(() => smtp.close());
  const env = { ...b.env, SMITHERS_SMTP_HOST: "127.0.0.1", SMITHERS_SMTP_PORT: String(smtp.port) };
  const r = await b.expect(0, ["up", "doc-6.yaml", "--json"], { env });
  assert.equal(r.json.status, "finished");
  assert.equal(smtp.received.length, 0, "nothing waited: no mail");
  // Without an SMTP server, mail_on is refused rather than ignored.
  const refused = await b.expect(4, ["up", "doc-6.yaml"], { env: b.env });
  assert.match(refused.stderr, /DAGU_MAIL_NO_SMTP/);
});

test("Wait Handler: it runs when the DAG waits, with DAG_WAITING_STEPS and DAG_NAME substituted as Dagu does", async (t) => {
  const b = docBox(t, 7);
  const { runId } = (await b.run(3, ["up", "doc-7.yaml", "--json"])).json;
  const logs = join(b.dir, "smithers.logs", runId);
  const handlerOut = readdirSync(logs).find((f) => /^onWait\.\d+\.stdout\.log$/.test(f));
  assert.equal(readFileSync(join(logs, handlerOut), "utf8"), "Waiting steps: deploy\nok\n");
  assert.equal(b.read("curl.log"), 'https://slack.com/webhook {"text": "Approval required for doc-7"}\n');
  assert.match(readFileSync(join(logs, "run.log"), "utf8"), /started onWait\n.*ended onWait: exited with code 0\n/);
  await b.run(0, ["approve", runId]);
  assert.deepEqual(b.marks(), ["deploy production "]);
});
