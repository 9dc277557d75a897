// `smithers migrate --from <db> --to <db>`: a SQLite database moves to PostgreSQL (a server of
// the test's own, helpers/postgres.js) and back. A run that waited at its gate in the source
// is approved with `--db <target>` and finishes there; the decision log verifies in the copy;
// the source is left as it was. A target that holds data and a wrong command line are refused.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { join } from "node:path";
import { EXAMPLES, expectExit, runIdOf, sandbox } from "./helpers/cli.js";
import { pgDatabase } from "./helpers/postgres.js";

const PUBLISH = join(EXAMPLES, "publish-approval.tsx");

/** `[runId, status]` of every run, sorted. */
async function runs(db) {
  const ps = await expectExit(assert, 0, ["ps", "--json"], { db });
  return ps.json.runs.map((r) => [r.runId, r.status]).sort();
}

describe("smithers migrate --from --to", () => {
  const box = sandbox("smithers-migrate-");
  after(() => box.cleanup());

  test("SQLite → PostgreSQL: counts verified, the waiting run is approved and finishes there, and back to SQLite", async () => {
    const source = box.db;
    await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Done"}', "--run-id", "done-1"], { db: source });
    await expectExit(assert, 0, ["approve", "done-1", "--by", "alice"], { db: source });
    await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Waits"}', "--run-id", "wait-1"], { db: source });
    const sourceRuns = await runs(source);
    assert.deepEqual(sourceRuns, [["done-1", "finished"], ["wait-1", "waiting-approval"]]);

    const pg = pgDatabase("migrate");
    const copy = await expectExit(assert, 0, ["migrate", "--from", source, "--to", pg, "--json"]);
    assert.equal(copy.json.ok, true);
    assert.equal(copy.json.runs, 2);
    assert.equal(copy.json.audit.ok, true);
    assert.equal(copy.json.audit.entries, 1, "alice's decision");
    const byTable = Object.fromEntries(copy.json.tables.map((t) => [t.table, t.rows]));
    assert.equal(byTable._smithers_runs, 2);
    assert.ok(byTable._smithers_events > 5, JSON.stringify(byTable));
    assert.equal(byTable.publish_approval, 1, "the decision row of done-1's gate");
    assert.doesNotMatch(copy.stdout, /password/);

    // The copy shows what the source shows, and the source was only read.
    assert.deepEqual(await runs(pg), sourceRuns);
    assert.deepEqual(await runs(source), sourceRuns);
    const verify = await expectExit(assert, 0, ["audit", "verify", "--json"], { db: pg });
    assert.equal(verify.json.entries, 1);

    // The run that waited in the source is decided and finished on PostgreSQL.
    const approve = await expectExit(assert, 0, ["approve", "wait-1", "--by", "bob", "--note", "moved"], { db: pg });
    assert.match(approve.stdout, /^run wait-1: finished$/m);
    const inspect = await expectExit(assert, 0, ["inspect", "wait-1", "--json"], { db: pg });
    assert.equal(inspect.json.run.status, "finished");
    const row = inspect.json.outputs.find((o) => o.table === "publishApproval");
    assert.equal(row.value.decidedBy, "bob");
    assert.equal((await expectExit(assert, 0, ["audit", "verify", "--json"], { db: pg })).json.entries, 2);
    // The source still waits: nothing was decided there.
    assert.deepEqual(await runs(source), sourceRuns);

    // A target that holds data is refused, and keeps what it had.
    const again = await expectExit(assert, 1, ["migrate", "--from", source, "--to", pg, "--json"]);
    assert.equal(again.json.error.code, "TARGET_NOT_EMPTY");
    assert.deepEqual(await runs(pg), [["done-1", "finished"], ["wait-1", "finished"]]);

    // And back: PostgreSQL → a new SQLite file, with the human-readable summary.
    const back = join(box.dir, "back.db");
    const text = await expectExit(assert, 0, ["migrate", "--from", pg, "--to", back]);
    assert.match(text.stdout, /^copied .* -> .*back\.db: 2 runs, \d+ rows in \d+ tables$/m);
    assert.match(text.stdout, /^decision log: 2 entries, chain intact; head 2 sha256:[0-9a-f]{64}$/m);
    assert.match(text.stdout, /^row counts verified/m);
    assert.deepEqual(await runs(back), [["done-1", "finished"], ["wait-1", "finished"]]);
    assert.equal((await expectExit(assert, 0, ["audit", "verify", "--json"], { db: back })).json.entries, 2);
  });

  test("a wrong command line is refused before anything is opened", async () => {
    const only = await expectExit(assert, 4, ["migrate", "--from", box.db, "--json"]);
    assert.equal(only.json.error.code, "USAGE");
    assert.match(only.json.error.message, /both --from and --to/);
    const mixed = await expectExit(assert, 4, ["migrate", "--from", box.db, "--to", join(box.dir, "x.db"), "--db", box.db, "--json"]);
    assert.equal(mixed.json.error.code, "USAGE");
    const missing = await expectExit(assert, 4, ["migrate", "--from", join(box.dir, "nope.db"), "--to", join(box.dir, "y.db"), "--json"]);
    assert.equal(missing.json.error.code, "DB_NOT_FOUND");
    const same = await expectExit(assert, 4, ["migrate", "--from", box.db, "--to", box.db, "--json"]);
    assert.equal(same.json.error.code, "SAME_DATABASE");
    const help = await expectExit(assert, 0, ["migrate", "--help"]);
    assert.match(help.stdout, /--from, --to/);
  });
});
