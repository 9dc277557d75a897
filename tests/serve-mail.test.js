// Mail on wait: `smithers serve` with mailOnWait sends one message each time a run starts
// waiting (whichever process parked it), naming the gates and linking to the inbox, and
// records it in the run's events. Against a real SMTP server on loopback, started here.
import assert from "node:assert/strict";
import { test } from "node:test";
import { expectExit, sandbox } from "./helpers/cli.js";
import { waitFor } from "./helpers/durability.js";
import { RELEASE_GATES_TSX, client, releaseBox, startServe } from "./helpers/serve.js";
import { decodeQP, smtpServer } from "./helpers/smtp.js";

const TOKEN = "mail-test-token-0123456789";


test("a run that starts waiting is mailed once, naming its gates and linking to the inbox", async (t) => {
  const box = sandbox("smithers-serve-mail-");
  const smtp = await smtpServer();
  t.after(async () => {
    await smtp.close();
    box.cleanup();
  });
  const config = box.write(
    "serve.json",
    JSON.stringify({
      tokens: [{ user: "alice", token: TOKEN, scopes: ["approve"] }],
      publicUrl: "https://approvals.example.com/",
      mailOnWait: {
        smtp: { host: "127.0.0.1", port: smtp.port, starttls: "never" },
        from: "smithers@example.com",
        to: ["ops@example.com", "qa@example.com"],
        subjectPrefix: "[ci]",
      },
    }),
  );
  const file = box.write("release.tsx", RELEASE_GATES_TSX);
  const server = await startServe({ db: box.db, config });
  t.after(() => server.stop("SIGKILL"));
  const api = client(server.url, TOKEN);

  // The CLI (another process) parks the run; serve sees it through the event feed.
  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const runId = up.json.runId;
  await waitFor(() => smtp.received.length >= 1, { timeoutMs: 15_000, what: "the wait mail" });
  const [mail] = smtp.received;
  assert.equal(mail.from, "smithers@example.com");
  assert.deepEqual(mail.to, ["ops@example.com", "qa@example.com"]);
  assert.match(mail.raw, /^Subject: \[ci\] release \(waiting: 2 approvals\)\r?$/m);
  const body = decodeQP(mail.raw);
  assert.ok(body.includes(runId), "names the run");
  assert.ok(body.includes("Security sign-off for 2.0") && body.includes("QA sign-off for 2.0"), "names both gates");
  assert.ok(body.includes("https://approvals.example.com/"), "links to the inbox (publicUrl)");
  assert.ok(body.includes(`https://approvals.example.com/runs/${runId}`), "links to the run page");

  const sent = await waitFor(async () => {
    const events = (await api(`/v1/runs/${runId}/events`)).body.events;
    return events.find((e) => e.type === "WaitMailSent");
  }, { timeoutMs: 10_000, what: "the WaitMailSent event" });
  assert.deepEqual(sent.nodes.sort(), ["qa-review", "security-review"]);
  assert.deepEqual(sent.to, ["ops@example.com", "qa@example.com"]);

  // Deciding one gate resumes the run, which parks again at the other: one more mail.
  const ok = await api(`/v1/runs/${runId}/nodes/qa-review/approve`, { body: {} });
  assert.equal(ok.status, 200);
  await waitFor(() => smtp.received.length >= 2, { timeoutMs: 15_000, what: "the second wait mail" });
  assert.match(smtp.received[1].raw, /^Subject: \[ci\] release \(waiting\)\r?$/m);
  assert.ok(decodeQP(smtp.received[1].raw).includes("Security sign-off"));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(smtp.received.length, 2, "one message per wait, no more");
});

test("a mail server that is down: the run is unaffected and WaitMailFailed says why", async (t) => {
  const box = sandbox("smithers-serve-mail-");
  t.after(() => box.cleanup());
  const smtp = await smtpServer();
  const deadPort = smtp.port;
  await smtp.close();
  const config = box.write(
    "serve.json",
    JSON.stringify({
      tokens: [{ user: "alice", token: TOKEN, scopes: ["approve"] }],
      mailOnWait: { smtp: { host: "127.0.0.1", port: deadPort, timeoutMs: 3000 }, from: "s@example.com", to: "ops@example.com" },
    }),
  );
  const file = box.write("release.tsx", RELEASE_GATES_TSX);
  const server = await startServe({ db: box.db, config });
  t.after(() => server.stop("SIGKILL"));
  const api = client(server.url, TOKEN);
  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const failed = await waitFor(async () => {
    const events = (await api(`/v1/runs/${up.json.runId}/events`)).body.events;
    return events.find((e) => e.type === "WaitMailFailed");
  }, { timeoutMs: 15_000, what: "WaitMailFailed" });
  assert.equal(failed.code, "MAIL_CONNECT_FAILED");
  assert.equal((await api(`/v1/runs/${up.json.runId}`)).body.run.status, "waiting-approval");
  assert.equal((await api(`/v1/approvals?runId=${up.json.runId}`)).body.approvals.length, 2);
});

test("a recipient mapped to an approver gets a message of their own with links that decide as them", async (t) => {
  const smtp = await smtpServer();
  t.after(() => smtp.close());
  const { box, config, file } = releaseBox(
    t,
    {
      tokens: [{ user: "alice", token: TOKEN, scopes: ["approve"] }],
      links: { secret: "mail-link-secret-0123456789abcdefgh", ttlMs: 3_600_000 },
      mailOnWait: {
        smtp: { host: "127.0.0.1", port: smtp.port, starttls: "never" },
        from: "smithers@example.com",
        to: ["alice@example.com", "ops@example.com"],
        links: { approvers: { "alice@example.com": "alice" } },
      },
    },
    "smithers-serve-mail-",
  );
  const server = await startServe({ db: box.db, config });
  t.after(() => server.stop("SIGKILL"));
  const api = client(server.url, TOKEN);
  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const runId = up.json.runId;
  await waitFor(() => smtp.received.length >= 2, { timeoutMs: 15_000, what: "two wait mails" });
  const mine = smtp.received.find((m) => m.to.includes("alice@example.com"));
  const theirs = smtp.received.find((m) => m.to.includes("ops@example.com"));
  assert.deepEqual(mine.to, ["alice@example.com"], "alice's message is hers alone");
  assert.doesNotMatch(decodeQP(theirs.raw), /v1\/links\//, "no links for a recipient who is no approver");
  const text = decodeQP(mine.raw).replace(/\r\n/g, "\n");
  // Plain text part: "Deny as alice: <url>" under each gate.
  const denyLinks = [...text.matchAll(/^ *Deny as alice: +(\S+)$/gm)].map((m) => m[1]);
  assert.equal(denyLinks.length, 2, text);
  assert.ok(denyLinks.every((u) => u.startsWith(`${server.url}v1/links/`)));
  const security = denyLinks[text.slice(0, text.indexOf(denyLinks[0])).includes("Security sign-off") ? 0 : 1];
  const denied = await fetch(security, { method: "POST", headers: { accept: "application/json" } });
  assert.equal(denied.status, 200);
  const outcome = await denied.json();
  assert.equal(outcome.status, "denied");
  const decision = (await api(`/v1/runs/${runId}`)).body.approvals.find((a) => a.nodeId === "security-review");
  assert.deepEqual([decision.status, decision.decidedBy], ["denied", "alice"]);
  const again = await fetch(security, { method: "POST", headers: { accept: "application/json" } });
  assert.equal((await again.json()).error.code, "LINK_USED");
});

// Reminders and escalations reach mail too: the gate's approvers, under mailOnWait's rules.
const REMIND_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema, done: z.object({ by: z.string().nullable() }) });
export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "release" });
  return (
    <Workflow name="remind-mail">
      <Sequence>
        <Approval id="release" output={outputs.gate} request={{ title: "Release 4.0?" }} allowedUsers={["alice"]}
          timeoutMs={2 * 3600000} onTimeout="deny"
          remind={{ every: "15m", max: 2 }} escalate={[{ after: "30m", allowedUsers: ["bob"] }]} />
        {decision ? <Task id="done" output={outputs.done}>{{ by: decision.decidedBy }}</Task> : null}
      </Sequence>
    </Workflow>
  );
});
`;

test("reminders are mailed to the gate's approvers (n of max, the deadline), an escalation to the approvers it added", async (t) => {
  const smtp = await smtpServer();
  t.after(() => smtp.close());
  const box = sandbox("smithers-serve-remind-mail-");
  t.after(() => box.cleanup());
  const config = box.write(
    "serve.json",
    JSON.stringify({
      tokens: [
        { user: "alice", token: TOKEN, scopes: ["approve"] },
        { user: "bob", token: "mail-test-token-bob-0123456789", scopes: ["approve"] },
        { user: "carol", token: "mail-test-token-carol-0123456789", scopes: ["approve"] },
      ],
      links: { secret: "mail-link-secret-0123456789abcdefgh", ttlMs: 3_600_000 },
      mailOnWait: {
        smtp: { host: "127.0.0.1", port: smtp.port, starttls: "never" },
        from: "smithers@example.com",
        to: ["alice@example.com", "bob@example.com", "carol@example.com", "ops@example.com"],
        subjectPrefix: "[ci]",
        links: { approvers: { "alice@example.com": "alice", "bob@example.com": "bob", "carol@example.com": "carol" } },
      },
    }),
  );
  const file = box.write("remind.tsx", REMIND_TSX);
  const at = (minutes) => ({ SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(minutes * 60_000) });
  const up = await expectExit(assert, 3, ["up", file, "--json"], { db: box.db });
  const runId = up.json.runId;

  // serve starts 20 minutes later (test clock): the first reminder is due and fired there.
  const server = await startServe({ db: box.db, config, env: at(20) });
  t.after(() => server.stop("SIGKILL"));
  const api = client(server.url, TOKEN);
  await waitFor(() => smtp.received.length >= 2, { timeoutMs: 20_000, what: "reminder 1 mails" });
  await new Promise((r) => setTimeout(r, 300));
  const first = smtp.received.splice(0);
  const rcpts = (list) => list.flatMap((m) => m.to).sort();
  // alice may decide (her own message, with links); ops is mapped to nobody; bob and carol may not decide yet.
  assert.deepEqual(rcpts(first), ["alice@example.com", "ops@example.com"]);
  for (const m of first) assert.match(m.raw, /^Subject: \[ci\] remind-mail \(reminder 1 of 2\)\r?$/m);
  const alice = decodeQP(first.find((m) => m.to.includes("alice@example.com")).raw).replace(/\r\n/g, "\n");
  assert.match(alice, /Reminder 1 of 2: run \S+ of remind-mail is still waiting for approval\./);
  assert.match(alice, /deadline \d{4}-\d\d-\d\dT[\d:.]+Z \(then denied by system:timeout\)/);
  assert.match(alice, /may decide: users alice$/m);
  assert.match(alice, /^ *Approve as alice: +\S+$/m);

  // 40 minutes in, another process (the CLI) fires reminder 2 and the escalation; serve mails them.
  await expectExit(assert, 3, ["resume", runId], { db: box.db, env: at(40) });
  await waitFor(() => smtp.received.some((m) => /\(escalated\)/.test(m.raw)) && smtp.received.filter((m) => /reminder 2 of 2/.test(m.raw)).length >= 2, {
    timeoutMs: 20_000,
    what: "reminder 2 and escalation mails",
  });
  await new Promise((r) => setTimeout(r, 300));
  const escalated = smtp.received.filter((m) => /^Subject: \[ci\] remind-mail \(escalated\)\r?$/m.test(m.raw));
  // bob was added (his own message, with links), ops gets everything; alice could decide already, carol still cannot.
  assert.deepEqual(rcpts(escalated), ["bob@example.com", "ops@example.com"]);
  const second = smtp.received.filter((m) => /reminder 2 of 2/.test(m.raw));
  assert.ok(rcpts(second).includes("alice@example.com") && rcpts(second).includes("ops@example.com"));
  assert.ok(!rcpts(second).includes("carol@example.com"), "carol may not decide: no reminder");
  const bob = decodeQP(escalated.find((m) => m.to.includes("bob@example.com")).raw).replace(/\r\n/g, "\n");
  assert.match(bob, /Escalated: run \S+ of remind-mail is still waiting for approval; bob may decide it now\./);
  assert.match(bob, /may decide: users alice, bob$/m);
  const approveLink = bob.match(/^ *Approve as bob: +(\S+)$/m)?.[1];
  assert.ok(approveLink?.startsWith(`${server.url}v1/links/`), bob);

  const events = (await api(`/v1/runs/${runId}/events`)).body.events.filter((e) => e.type === "WaitMailSent");
  assert.deepEqual(events.filter((e) => e.reason === "reminder").map((e) => e.n).sort(), [1, 1, 2, 2, ...(rcpts(second).includes("bob@example.com") ? [2] : [])].sort());
  assert.equal(events.filter((e) => e.reason === "escalated").length, 2);

  // bob's link decides as bob, which he may do now.
  const approved = await fetch(approveLink, { method: "POST", headers: { accept: "application/json" } });
  assert.equal(approved.status, 200, await approved.clone().text());
  const decision = (await api(`/v1/runs/${runId}`)).body.approvals.find((a) => a.nodeId === "release");
  assert.deepEqual([decision.status, decision.decidedBy], ["approved", "bob"]);
});
