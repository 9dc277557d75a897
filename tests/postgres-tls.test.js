// PostgreSQL over TLS through the CLI: a `postgres://…?sslmode=verify-full&sslrootcert=…` URL
// in --db and in SMITHERS_DB, on a server of the test's own that speaks TLS with certificates
// made for it (helpers/postgres.js pgTlsServer). A run waits at its gate, is approved from
// another process and finishes; an untrusted certificate, a host name the certificate does
// not name, and an unknown sslmode are refused with their codes, the password never shown.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { join } from "node:path";
import { EXAMPLES, expectExit, runIdOf, sandbox } from "./helpers/cli.js";
import { pgTlsServer } from "./helpers/postgres.js";

const PUBLISH = join(EXAMPLES, "publish-approval.tsx");

describe("PostgreSQL over TLS", () => {
  const box = sandbox("smithers-pg-tls-");
  after(() => box.cleanup());
  const server = pgTlsServer("only");
  const ca = server.file("ca.crt");

  test("up → waiting → approve from another process → finished, with sslmode=verify-full", async () => {
    const db = server.database("postgres@localhost", `sslmode=verify-full&sslrootcert=${ca}&hostaddr=127.0.0.1`);
    const up = await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Hello"}'], { db, cwd: box.dir });
    assert.match(up.stdout, /waiting-approval/);
    const runId = runIdOf(up.stdout);
    const env = { SMITHERS_DB: db };
    const approve = await expectExit(assert, 0, ["approve", runId, "--by", "alice"], { env, cwd: box.dir });
    assert.match(approve.stdout, new RegExp(`^run ${runId}: finished$`, "m"));
    const ps = await expectExit(assert, 0, ["ps", "--json"], { env, cwd: box.dir });
    assert.deepEqual(ps.json.runs.map((r) => [r.runId, r.status]), [[runId, "finished"]]);
    // The server takes TCP clients over TLS only: without it the same database is refused.
    const plain = await expectExit(assert, 1, ["ps", "--json"], { db: db.replace("sslmode=verify-full", "sslmode=disable"), cwd: box.dir });
    assert.equal(plain.json.error.code, "DB_TLS_FAILED");
    assert.match(plain.json.error.message, /over TLS only/);
  });

  test("an untrusted certificate or a host it does not name is DB_TLS_FAILED; an unknown sslmode DB_TLS_CONFIG", async () => {
    const untrusted = server.database("app:hunter2@127.0.0.1", `sslmode=verify-full&sslrootcert=${server.file("other-ca.crt")}`);
    const r = await expectExit(assert, 1, ["up", PUBLISH, "--input", '{"title":"No"}', "--json"], { db: untrusted, cwd: box.dir });
    assert.equal(r.json.error.code, "DB_TLS_FAILED");
    assert.match(r.json.error.message, /not signed by a trusted CA/);
    assert.doesNotMatch(r.stdout + r.stderr, /hunter2/);
    const named = server.database("postgres@db.example.test", `sslmode=verify-full&sslrootcert=${ca}&hostaddr=127.0.0.1`);
    const m = await expectExit(assert, 1, ["ps", "--json"], { db: named, cwd: box.dir });
    assert.equal(m.json.error.code, "DB_TLS_FAILED");
    assert.match(m.json.error.message, /host name mismatch.*db\.example\.test/);
    const typo = server.database("postgres@127.0.0.1", "sslmode=verify_full");
    const t = await expectExit(assert, 4, ["ps", "--json"], { db: typo, cwd: box.dir });
    assert.equal(t.json.error.code, "DB_TLS_CONFIG");
    assert.match(t.json.error.message, /sslmode=verify_full is not one of disable, allow, prefer, require, verify-ca, verify-full/);
  });
});
