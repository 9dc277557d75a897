// `smithers serve` over loopback: the HTTP API, who may decide, Smithers' route shapes, the
// event stream, pick-up of decisions made by other processes, and a clean shutdown.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { EXAMPLES, expectExit, sandbox, smithers, withEngine } from "./helpers/cli.js";
import { waitFor } from "./helpers/durability.js";
import { client, eventStream, startServe } from "./helpers/serve.js";

const TOKENS = {
  alice: "alice-token-0123456789",
  aliceNarrow: "alice-narrow-0123456789",
  bob: "bob-token-0123456789ab",
  reader: "reader-token-0123456789",
};

const CONFIG = {
  tokens: [
    { user: "alice", token: TOKENS.alice, scopes: ["approve", "deploy:*"] },
    { user: "alice", token: TOKENS.aliceNarrow, scopes: ["approve"] },
    { user: "bob", token: TOKENS.bob, scopes: ["approve"] },
    { user: "reader", token: TOKENS.reader, scopes: ["read"] },
  ],
  forbidSelfApproval: true,
};

const GATES_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Parallel, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";

const { Workflow, smithers, outputs } = createSmithers({
  gate: approvalDecisionSchema,
  done: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
});

export default smithers(() => (
  <Workflow name="gates">
    <Sequence>
      <Parallel>
        <Approval id="prod-gate" output={outputs.gate} request={{ title: "Ship to prod?" }}
          allowedUsers={["alice"]} allowedScopes={["deploy:prod"]} />
        <Approval id="plain-gate" output={outputs.gate} request={{ title: "Plain?", summary: "anything goes" }} />
      </Parallel>
      <Task id="done" output={outputs.done}>{{ ok: true }}</Task>
    </Sequence>
  </Workflow>
));
`;

describe("smithers serve: HTTP API", () => {
  let box;
  let server;
  let api;
  let gatesFile;

  /** Starts a run with the CLI (another process); it parks at its gates. */
  async function startRun(file, { input, by = "carol" } = {}) {
    const args = ["up", file, "--json", "--by", by];
    if (input) args.push("--input", JSON.stringify(input));
    const r = await expectExit(assert, 3, args, { db: box.db });
    return r.json.runId;
  }

  const runStatus = async (runId) => (await api(`/v1/runs/${runId}`)).body.run.status;

  before(async () => {
    box = sandbox("smithers-serve-");
    box.write("smithers.serve.json", JSON.stringify(CONFIG));
    gatesFile = box.write("gates.tsx", GATES_TSX);
    server = await startServe({ db: box.db, config: join(box.dir, "smithers.serve.json") });
    api = client(server.url, TOKENS.alice);
  });

  after(async () => {
    await server?.stop("SIGKILL");
    box?.cleanup();
  });

  test("binds to loopback; health and the OpenAPI document are public; the rest needs a token", async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(server.token, null, "tokens come from the config: none is generated");
    assert.equal((await api("/healthz", { token: null })).status, 200);
    const doc = await api("/openapi.json", { token: null });
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, "3.1.0");
    for (const path of [
      "/v1/runs", "/v1/runs/{runId}", "/v1/approvals", "/v1/events", "/v1/me",
      "/v1/runs/{runId}/nodes/{nodeId}/approve", "/v1/runs/{runId}/nodes/{nodeId}/deny",
      "/v1/runs/{runId}/nodes/{nodeId}/reject", "/v1/runs/{runId}/nodes/{nodeId}/push-back",
      "/v1/runs/{runId}/cancel", "/v1/runs/{runId}/events", "/v1/runs/{runId}/logs",
      "/v1/deliveries", "/v1/deliveries/{deliveryId}/retry", "/v1/links/{token}",
    ]) {
      assert.ok(doc.body.paths[path], `${path} is documented`);
    }

    const none = await api("/v1/approvals", { token: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, "UNAUTHORIZED");
    assert.match(none.headers.get("www-authenticate"), /Bearer/);
    const wrong = await api("/v1/approvals", { token: "not-a-token-at-all" });
    assert.equal(wrong.status, 401);
    assert.deepEqual((await api("/v1/me")).body, { user: "alice", scopes: ["approve", "deploy:*"] });
    // Smithers' header works too.
    const key = await api("/v1/me", { token: null, headers: { "x-smithers-key": TOKENS.bob } });
    assert.equal(key.body.user, "bob");
    const missing = await api("/v1/nope");
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "NOT_FOUND");
  });

  test("the decider is the token's user; required inputs, a second decision and unknown names get their codes", async () => {
    const runId = await startRun(join(EXAMPLES, "migration-approval.tsx"));
    const url = `/v1/runs/${runId}/nodes/migration-plan/approve`;

    const reader = await api(url, { token: TOKENS.reader, body: { inputs: { APPROVED_BY: "x" } } });
    assert.equal(reader.status, 403, "read scope may not decide");
    assert.equal(reader.body.error.code, "FORBIDDEN");

    const missing = await api(url, { body: { note: "go" } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, "MISSING_REQUIRED_INPUTS");
    assert.deepEqual(missing.body.error.details.missing, ["APPROVED_BY"]);

    const undeclared = await api(url, { body: { inputs: { APPROVED_BY: "a", PATH: "/evil" } } });
    assert.equal(undeclared.status, 400);
    assert.equal(undeclared.body.error.code, "UNDECLARED_INPUT");

    const impostor = await api(url, { body: { inputs: { APPROVED_BY: "a" }, decidedBy: "mallory" } });
    assert.equal(impostor.status, 403);
    assert.match(impostor.body.error.message, /not the authenticated user/);

    const junk = await api(url, { body: "{not json" });
    assert.equal(junk.status, 400);
    assert.equal(junk.body.error.code, "INVALID_JSON");
    const extra = await api(url, { body: { inputs: {}, approvedBy: "x" } });
    assert.equal(extra.status, 400);
    assert.equal(extra.body.error.code, "INVALID_REQUEST");

    // Nothing of the above was recorded.
    const pending = (await api(`/v1/approvals?runId=${runId}`)).body.approvals;
    assert.equal(pending.length, 1);
    assert.equal(pending[0].status, "requested");

    const ok = await api(url, { body: { inputs: { APPROVED_BY: "alice", MAINTENANCE_WINDOW: "sat 02:00" }, note: "go", decidedBy: "alice" } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.status, "approved");
    assert.equal(ok.body.decidedBy, "alice");
    assert.equal(ok.body.resumed, true);

    // The run resumes in the serving process and finishes; the inputs reached the next step.
    await waitFor(async () => (await runStatus(runId)) === "finished", { timeoutMs: 15_000, what: "the run to finish" });
    const run = (await api(`/v1/runs/${runId}`)).body;
    const migrate = run.outputs.find((o) => o.nodeId === "migrate");
    assert.match(migrate.value.stdout, /alice/);
    assert.match(migrate.value.stdout, /sat 02:00/);
    assert.equal(run.approvals[0].decidedBy, "alice");

    const again = await api(url, { body: { inputs: { APPROVED_BY: "bob" } } });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "ALREADY_DECIDED");
    assert.equal(again.body.error.details.decidedBy, "alice");

    const unknownRun = await api("/v1/runs/run-nope/nodes/x/approve", { body: {} });
    assert.equal(unknownRun.status, 404);
    assert.equal(unknownRun.body.error.code, "RUN_NOT_FOUND");
    const unknownNode = await api(`/v1/runs/${runId}/nodes/nope/approve`, { body: {} });
    assert.equal(unknownNode.status, 404);
    assert.equal(unknownNode.body.error.code, "NODE_NOT_FOUND");
    assert.equal((await api("/v1/runs/run-nope")).status, 404);
  });

  test("allowedUsers and allowedScopes are enforced over HTTP, on the CLI and in the Node API alike", async () => {
    const runId = await startRun(gatesFile);
    const url = `/v1/runs/${runId}/nodes/prod-gate/approve`;
    const bob = await api(url, { token: TOKENS.bob, body: {} });
    assert.equal(bob.status, 403);
    assert.match(bob.body.error.message, /bob.*may not decide prod-gate/);
    const narrow = await api(url, { token: TOKENS.aliceNarrow, body: {} });
    assert.equal(narrow.status, 403);
    assert.match(narrow.body.error.message, /deploy:prod/);

    const cli = await smithers(["approve", runId, "--node", "prod-gate", "--by", "bob", "--no-resume", "--json"], { db: box.db });
    assert.equal(cli.code, 1);
    assert.equal(cli.json.error.code, "FORBIDDEN");
    // (The Node API on the same file, while serve runs: its own connection.)
    const { SmithersEngine } = await import("../npm/smithers-rs/src/index.js");
    const engine = new SmithersEngine({ dbPath: box.db });
    try {
      await assert.rejects(engine.approve(runId, { nodeId: "prod-gate", decidedBy: "alice", scopes: ["approve"], resume: false }), {
        code: "FORBIDDEN",
      });
    } finally {
      engine.close();
    }
    assert.equal((await api(`/v1/approvals?runId=${runId}&node=prod-gate`)).body.approvals[0].status, "requested");

    const ok = await api(url, { body: { note: "prod ok" } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.decidedBy, "alice");
  });

  test("the user who started a run may not approve it (forbidSelfApproval), but may deny it", async () => {
    const runId = await startRun(gatesFile, { by: "bob" });
    assert.equal((await api(`/v1/runs/${runId}`)).body.run.startedBy, "bob");
    const own = await api(`/v1/runs/${runId}/nodes/plain-gate/approve`, { token: TOKENS.bob, body: {} });
    assert.equal(own.status, 403);
    assert.match(own.body.error.message, /bob started run/);
    const other = await api(`/v1/runs/${runId}/nodes/plain-gate/approve`, { body: {} });
    assert.equal(other.status, 200);
    // Smithers' deny shape: {iteration, note, decidedBy}; decidedBy may name the caller.
    const deny = await api(`/v1/runs/${runId}/nodes/prod-gate/deny`, { token: TOKENS.alice, body: { iteration: 0, note: "not today", decidedBy: "alice" } });
    assert.equal(deny.status, 200);
    assert.equal(deny.body.status, "denied");
    // Without onDeny the denial is recorded (approved: false) and the run goes on to its end.
    await waitFor(async () => (await runStatus(runId)) === "finished", { timeoutMs: 15_000, what: "the run to finish after the denial" });
    const prod = (await api(`/v1/runs/${runId}`)).body.outputs.find((o) => o.nodeId === "prod-gate");
    assert.deepEqual([prod.value.approved, prod.value.decidedBy], [false, "alice"]);
  });

  test("approvals across runs: Smithers' fields and aliases, filters, keyset pages", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await startRun(gatesFile));
    const all = [];
    let cursor = null;
    let pages = 0;
    do {
      const r = await api(`/v1/approvals?workflow=gates&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(r.status, 200);
      all.push(...r.body.approvals);
      cursor = r.body.nextCursor;
      pages++;
    } while (cursor);
    const mine = all.filter((a) => ids.includes(a.runId));
    assert.equal(mine.length, 6, "two gates in each of three runs");
    assert.equal(new Set(all.map((a) => `${a.runId}/${a.nodeId}`)).size, all.length, "no approval on two pages");
    assert.ok(pages >= 3);
    const a = mine.find((x) => x.nodeId === "plain-gate");
    assert.equal(a.workflowName, "gates");
    assert.equal(a.label, "Plain?");
    assert.equal(a.requestTitle, "Plain?");
    assert.equal(a.requestSummary, "anything goes");
    assert.equal(typeof a.waitingMs, "number");
    assert.equal(a.runStatus, "waiting-approval");

    const runs = (await api("/v1/runs?workflow=gates&limit=1000")).body.runs;
    assert.ok(ids.every((id) => runs.some((r) => r.runId === id)));
    assert.ok(runs.every((r) => r.workflowName === "gates"), "only the named workflow's runs");
    const byNode = (await api(`/v1/approvals?node=prod-gate&runId=${ids[0]}`)).body.approvals;
    assert.deepEqual(byNode.map((x) => x.nodeId), ["prod-gate"]);
    for (const alias of ["/approvals", "/v1/approval/list"]) {
      const r = await api(`${alias}?runId=${ids[1]}`);
      assert.equal(r.status, 200, alias);
      assert.equal(r.body.approvals.length, 2, alias);
    }
    const bad = await api("/v1/approvals?cursor=garbage");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "INVALID_REQUEST");
    const badStatus = await api("/v1/approvals?status=maybe");
    assert.equal(badStatus.status, 400);

    await api(`/v1/runs/${ids[2]}/nodes/plain-gate/approve`, { body: { note: "fine" } });
    const approved = (await api(`/v1/approvals?status=approved&runId=${ids[2]}`)).body.approvals;
    assert.deepEqual(approved.map((x) => [x.nodeId, x.decidedBy, x.note]), [["plain-gate", "alice", "fine"]]);
  });

  test("a select gate takes its decision payload; a choice that is not an option is refused", async () => {
    const file = box.write(
      "pick.tsx",
      `/** @jsxImportSource smithers-orchestrator */
import { Approval, approvalSelectionSchema, createSmithers } from "smithers-orchestrator";
const { Workflow, smithers, outputs } = createSmithers({ pick: approvalSelectionSchema });
export default smithers(() => (
  <Workflow name="pick">
    <Approval id="pick-plan" mode="select" output={outputs.pick} request={{ title: "Which rollout?" }}
      options={[{ key: "canary", label: "Canary" }, { key: "global", label: "Global" }]} />
  </Workflow>
));
`,
    );
    const runId = await startRun(file);
    const [listed] = (await api(`/v1/approvals?runId=${runId}`)).body.approvals;
    assert.equal(listed.mode, "select");
    assert.deepEqual(listed.options.map((o) => o.key), ["canary", "global"]);
    const url = `/v1/runs/${runId}/nodes/pick-plan/approve`;
    const wrong = await api(url, { body: { decision: { selected: "everything" } } });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error.code, "INVALID_DECISION");
    const ok = await api(url, { body: { decision: { selected: "canary", notes: "safest" } } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await waitFor(async () => (await runStatus(runId)) === "finished", { timeoutMs: 15_000, what: "the run to finish" });
    const row = (await api(`/v1/runs/${runId}`)).body.outputs.find((o) => o.nodeId === "pick-plan");
    assert.deepEqual({ selected: row.value.selected, notes: row.value.notes }, { selected: "canary", notes: "safest" });
  });

  test("push-back and reject through the API", async () => {
    const pb = await startRun(join(EXAMPLES, "metrics-pushback.tsx"));
    const sent = await api(`/v1/runs/${pb}/nodes/metrics/push-back`, { body: { inputs: { DAYS: "30" }, note: "a month please" } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    assert.equal(sent.body.status, "pushed-back");
    const round2 = await waitFor(async () => {
      const [a] = (await api(`/v1/approvals?runId=${pb}`)).body.approvals;
      return a?.round === 2 ? a : null;
    }, { timeoutMs: 15_000, what: "round 2" });
    assert.equal(round2.history.length, 1);
    assert.equal(round2.history[0].by, "alice");
    assert.deepEqual(round2.history[0].inputs, { DAYS: "30" });
    assert.match(round2.stdoutTail, /30/);

    const dr = await startRun(join(EXAMPLES, "deploy-review.tsx"), { input: { version: "9.9.9" } });
    const noReason = await api(`/v1/runs/${dr}/nodes/deploy-staging/push-back`, { body: { inputs: { X: "1" } } });
    assert.equal(noReason.status, 400, "deploy-staging declares no inputs");
    const rejected = await api(`/v1/runs/${dr}/nodes/deploy-staging/reject`, { body: { reason: "staging is slow" } });
    assert.equal(rejected.status, 200);
    assert.equal(rejected.body.status, "rejected");
    await waitFor(async () => (await runStatus(dr)) === "rejected", { timeoutMs: 15_000, what: "the run to end rejected" });
    const run = (await api(`/v1/runs/${dr}`)).body;
    assert.equal(run.approvals[0].reason, "staging is slow");
    assert.equal(run.approvals[0].decidedBy, "alice");
    const production = run.nodes.find((n) => n.nodeId === "deploy-production");
    assert.ok(!production || (production.attempts === 0 && production.state !== "finished"), "production never ran");
    const after = await api(`/v1/runs/${dr}/nodes/deploy-staging/approve`, { body: {} });
    assert.equal(after.status, 409);
  });

  test("a decision made by the CLI in another process is picked up and streamed as events", async () => {
    const runId = await startRun(gatesFile);
    const stream = await eventStream(`${server.url}v1/events?runId=${runId}`, TOKENS.alice);
    assert.equal(stream.status, 200);
    assert.match(stream.contentType, /text\/event-stream/);
    for (const node of ["prod-gate", "plain-gate"]) {
      await expectExit(assert, 0, ["approve", runId, "--node", node, "--by", "alice", "--scope", "deploy:prod", "--no-resume"], { db: box.db });
    }
    const granted = await stream.next((e) => e.type === "ApprovalGranted");
    assert.equal(granted.runId, runId);
    assert.equal(granted.sseId, granted.feedId);
    // Nobody resumed it but the serve process.
    const finished = await stream.next((e) => e.type === "RunStatusChanged" && e.status === "finished");
    assert.equal(finished.runId, runId);
    assert.ok(stream.events.every((e) => e.runId === runId), "the stream is filtered to the run");
    stream.close();

    // Last-Event-ID: a client that reconnects gets what it missed.
    const replay = await eventStream(`${server.url}v1/events?runId=${runId}`, TOKENS.alice, { "last-event-id": String(granted.feedId) });
    const again = await replay.next((e) => e.type === "RunStatusChanged" && e.status === "finished");
    assert.equal(again.feedId, finished.feedId);
    assert.ok(replay.events.every((e) => e.feedId > granted.feedId));
    replay.close();
  });

  test("the inbox's session cookie: set by POST /v1/session from the inbox (a sign-in link asks first); writes need X-Smithers-Inbox", async () => {
    const inbox = { "x-smithers-inbox": "1" };
    const bad = await api("/v1/session", { token: null, body: { token: "nope-nope-nope-nope" }, headers: inbox });
    assert.equal(bad.status, 401);
    const signIn = await api("/v1/session", { token: null, body: { token: TOKENS.alice }, headers: inbox });
    assert.equal(signIn.status, 200);
    const cookie = signIn.headers.get("set-cookie");
    assert.match(cookie, /smithers_session=.*HttpOnly.*SameSite=Strict/);
    const jar = cookie.split(";")[0];
    assert.equal((await api("/v1/me", { token: null, headers: { cookie: jar } })).body.user, "alice");

    const runId = await startRun(gatesFile);
    const url = `/v1/runs/${runId}/nodes/plain-gate/approve`;
    const csrf = await api(url, { token: null, headers: { cookie: jar }, body: {} });
    assert.equal(csrf.status, 403, "a cookie alone does not authorise a write");
    const ok = await api(url, { token: null, headers: { cookie: jar, "x-smithers-inbox": "1" }, body: {} });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.decidedBy, "alice");

    // A sign-in link signs nobody in by itself (login CSRF): the token moves to the fragment,
    // where the page asks before it creates a session.
    const link = await api(`/?token=${TOKENS.bob}`, { token: null });
    assert.equal(link.status, 303);
    assert.equal(link.headers.get("location"), `/#token=${TOKENS.bob}`);
    assert.equal(link.headers.get("set-cookie"), null);
    const page = await api("/", { token: null });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy"), /default-src 'self'/);
  });
});

describe("smithers serve: process", () => {
  test("with no token configured it makes one and prints a sign-in link; SIGTERM stops it cleanly", async (t) => {
    const box = sandbox("smithers-serve-");
    t.after(() => box.cleanup());
    const server = await startServe({ db: box.db, cwd: box.dir });
    assert.match(server.signInUrl, /\?token=/);
    assert.equal(typeof server.token, "string");
    const api = client(server.url, server.token);
    const me = await api("/v1/me");
    assert.deepEqual(me.body.scopes, ["admin"]);
    const stream = await eventStream(`${server.url}v1/events`, server.token);
    const { code, signal } = await server.stop("SIGTERM");
    assert.equal(signal, null);
    assert.equal(code, 0, server.stderr());
    stream.close();
    await assert.rejects(fetch(`${server.url}healthz`));
  });

  test("embedded: smithers-rs/serve hosts the API in a Node process of one's own", async (t) => {
    const box = sandbox("smithers-serve-");
    t.after(() => box.cleanup());
    const { startServer, loadServeConfig } = await import("smithers-rs/serve");
    const config = loadServeConfig({ env: { SMITHERS_TOKENS: JSON.stringify([{ user: "erin", token: "erin-token-0123456789", scopes: ["approve"] }]) }, cwd: box.dir });
    assert.equal(config.path, null);
    const runId = (await expectExit(assert, 3, ["up", join(EXAMPLES, "publish-approval.tsx"), "--input", '{"title":"Embedded"}', "--json"], { db: box.db })).json.runId;
    const lines = [];
    const server = await startServer({ dbPath: box.db, port: 0, config, log: (l) => lines.push(l) });
    try {
      const api = client(server.url, "erin-token-0123456789");
      const r = await api(`/v1/runs/${runId}/nodes/publish-approval/approve`, { body: { note: "ship it" } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal((await server.engine.waitForRun(runId)).status, "finished");
      assert.ok(lines.some((l) => l.includes(`approved publish-approval in run ${runId} by erin`)), lines.join("\n"));
    } finally {
      await server.close();
    }
    withEngine(box.db, (e) => assert.equal(e.getRun(runId).status, "finished"));
  });

  test("a bad configuration is refused with SERVE_CONFIG_INVALID (exit 4)", async (t) => {
    const box = sandbox("smithers-serve-");
    t.after(() => box.cleanup());
    const config = box.write("bad.json", JSON.stringify({ tokens: [{ user: "a", token: "short" }] }));
    const r = await smithers(["serve", "--config", config, "--port", "0", "--json"], { db: box.db });
    assert.equal(r.code, 4);
    assert.equal(r.json.error.code, "SERVE_CONFIG_INVALID");
    assert.match(r.json.error.message, /at least 16/);
    const typo = box.write("typo.json", JSON.stringify({ token: [] }));
    const r2 = await smithers(["serve", "--config", typo, "--port", "0"], { db: box.db });
    assert.equal(r2.code, 4);
    assert.match(r2.stderr, /unknown key "token"/);
    withEngine(box.db, (e) => assert.deepEqual(e.listRuns(), []));
  });
});
