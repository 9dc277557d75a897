//! The SQLite store's tables (`_smithers_*`), its migrations, and how a file is opened.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::logs::STORE;
use crate::store::OpenOptions;

pub const SCHEMA_VERSION: i64 = 10;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _smithers_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _smithers_runs (
  run_id TEXT PRIMARY KEY,
  workflow_name TEXT NOT NULL,
  workflow_path TEXT,
  status TEXT NOT NULL,
  input_json TEXT NOT NULL DEFAULT 'null',
  error_json TEXT,
  owner TEXT,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_status ON _smithers_runs (status, created_at_ms);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_created ON _smithers_runs (created_at_ms);
CREATE TABLE IF NOT EXISTS _smithers_nodes (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  output_table TEXT NOT NULL,
  loop_id TEXT,
  label TEXT,
  ordinal INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  skip_reason TEXT,
  error_json TEXT,
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, node_id, iteration)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_attempts (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  state TEXT NOT NULL,
  started_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER,
  owner TEXT,
  error_json TEXT,
  PRIMARY KEY (run_id, node_id, iteration, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_approvals (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL,
  mode TEXT NOT NULL,
  on_deny TEXT NOT NULL,
  output_table TEXT NOT NULL,
  requested_at_ms INTEGER NOT NULL,
  decided_at_ms INTEGER,
  note TEXT,
  decided_by TEXT,
  request_json TEXT NOT NULL,
  decision_json TEXT,
  PRIMARY KEY (run_id, node_id, iteration)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _smithers_approvals_pending
  ON _smithers_approvals (requested_at_ms) WHERE status = 'requested';
CREATE TABLE IF NOT EXISTS _smithers_loops (
  run_id TEXT NOT NULL,
  loop_id TEXT NOT NULL,
  iteration INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, loop_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_events (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  type TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _smithers_schemas (
  table_key TEXT PRIMARY KEY,
  table_name TEXT NOT NULL,
  schema_json TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
";

/// Version 2: command tasks (exit code, log files per attempt), reviewed steps (kind, round,
/// approver inputs, push-back, reject reason) and the history of every review round.
const V2: &str = "
ALTER TABLE _smithers_attempts ADD COLUMN exit_code INTEGER;
ALTER TABLE _smithers_attempts ADD COLUMN stdout_path TEXT;
ALTER TABLE _smithers_attempts ADD COLUMN stderr_path TEXT;
ALTER TABLE _smithers_approvals ADD COLUMN kind TEXT NOT NULL DEFAULT 'gate';
ALTER TABLE _smithers_approvals ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
ALTER TABLE _smithers_approvals ADD COLUMN inputs_json TEXT;
ALTER TABLE _smithers_approvals ADD COLUMN pushback_json TEXT;
ALTER TABLE _smithers_approvals ADD COLUMN reason TEXT;
CREATE TABLE IF NOT EXISTS _smithers_approval_history (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  round INTEGER NOT NULL,
  status TEXT NOT NULL,
  requested_at_ms INTEGER NOT NULL,
  decided_at_ms INTEGER NOT NULL,
  decided_by TEXT,
  note TEXT,
  inputs_json TEXT,
  output_json TEXT,
  stdout_path TEXT,
  PRIMARY KEY (run_id, node_id, iteration, round)
) WITHOUT ROWID;
";

/// v3: who started a run (`started_by`, for "the starter may not approve"), and a global
/// order over all runs' events (`feed_id`), which `smithers serve` tails for its event stream.
const V3: &str = "
ALTER TABLE _smithers_runs ADD COLUMN started_by TEXT;
ALTER TABLE _smithers_events ADD COLUMN feed_id INTEGER;
CREATE INDEX IF NOT EXISTS _smithers_events_feed ON _smithers_events (feed_id);
CREATE INDEX IF NOT EXISTS _smithers_approvals_by_status ON _smithers_approvals (status, requested_at_ms);
";

/// v4: agent tasks keep, per attempt, the prompt they sent, the raw text of the answer, the
/// token usage, and what agent answered (with the follow-up asked when its JSON was missing
/// or wrong). A CLI agent's process logs use the existing `stdout_path` / `stderr_path`.
const V4: &str = "
ALTER TABLE _smithers_attempts ADD COLUMN prompt TEXT;
ALTER TABLE _smithers_attempts ADD COLUMN response_text TEXT;
ALTER TABLE _smithers_attempts ADD COLUMN usage_json TEXT;
ALTER TABLE _smithers_attempts ADD COLUMN agent_json TEXT;
";

/// v5: sub-runs know their caller (`parent_*`, so a sub-run that ends wakes the task that
/// waits on it, and its gates are listed with the caller's), and a task records the sub-run
/// it waits on (`sub_run_id`).
const V5: &str = "
ALTER TABLE _smithers_runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE _smithers_runs ADD COLUMN parent_node_id TEXT;
ALTER TABLE _smithers_runs ADD COLUMN parent_iteration INTEGER;
ALTER TABLE _smithers_nodes ADD COLUMN sub_run_id TEXT;
CREATE INDEX IF NOT EXISTS _smithers_runs_by_parent ON _smithers_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
";

/// v6: ownership as a lease (`lease_expires_at_ms`, renewed by the owner: the index finds an
/// owner's runs without a scan), why a run could not be resumed (`resume_error_json`), and
/// output schemas per version and per run: every schema an output key has had
/// (`_smithers_schema_versions`) and the version each run reads and writes its rows through
/// (`_smithers_run_schemas`). Runs written before v6 read through the schema their database
/// held at the upgrade (version 1).
const V6: &str = "
ALTER TABLE _smithers_runs ADD COLUMN lease_expires_at_ms INTEGER;
ALTER TABLE _smithers_runs ADD COLUMN resume_error_json TEXT;
ALTER TABLE _smithers_runs ADD COLUMN resume_error_at_ms INTEGER;
CREATE INDEX IF NOT EXISTS _smithers_runs_by_owner ON _smithers_runs (owner) WHERE owner IS NOT NULL;
ALTER TABLE _smithers_schemas ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS _smithers_schema_versions (
  table_key TEXT NOT NULL,
  version INTEGER NOT NULL,
  table_name TEXT NOT NULL,
  schema_json TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (table_key, version)
);
INSERT OR IGNORE INTO _smithers_schema_versions (table_key, version, table_name, schema_json, created_at_ms)
  SELECT table_key, 1, table_name, schema_json, updated_at_ms FROM _smithers_schemas;
CREATE TABLE IF NOT EXISTS _smithers_run_schemas (
  run_id TEXT NOT NULL,
  table_key TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (run_id, table_key)
) WITHOUT ROWID;
INSERT OR IGNORE INTO _smithers_run_schemas (run_id, table_key, version)
  SELECT DISTINCT n.run_id, n.output_table, 1 FROM _smithers_nodes n
  WHERE n.output_table IN (SELECT table_key FROM _smithers_schemas);
";

/// Schema v7: the two tables, and the feed position up to which gate events were turned into
/// deliveries (`_smithers_meta` key `deliveries_feed_cursor`).
const V7: &str = "
CREATE TABLE IF NOT EXISTS _smithers_deliveries (
  delivery_id TEXT PRIMARY KEY,
  target TEXT NOT NULL,
  url TEXT NOT NULL,
  event_type TEXT NOT NULL,
  feed_id INTEGER,
  run_id TEXT,
  node_id TEXT,
  iteration INTEGER,
  body TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER NOT NULL,
  claimed_by TEXT,
  claim_expires_at_ms INTEGER,
  last_status_code INTEGER,
  last_error TEXT,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  delivered_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS _smithers_deliveries_due
  ON _smithers_deliveries (next_attempt_at_ms) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS _smithers_deliveries_by_created ON _smithers_deliveries (created_at_ms);
CREATE TABLE IF NOT EXISTS _smithers_link_uses (
  link_id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  action TEXT NOT NULL,
  approver TEXT NOT NULL,
  used_at_ms INTEGER NOT NULL,
  outcome_json TEXT
) WITHOUT ROWID;
";

/// Schema v8: durable timers (`timers.rs`). One row per due time: a `<Timer>` node's
/// (`kind = 'timer'`, `round` = the node's attempt) or an approval's deadline
/// (`kind = 'approval-timeout'`, `round` = the approval's round). Fired once: the fire is an
/// `UPDATE … WHERE status = 'scheduled'` in the transaction that carries out its effect.
const V8: &str = "
CREATE TABLE IF NOT EXISTS _smithers_timers (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  kind TEXT NOT NULL,
  round INTEGER NOT NULL,
  due_at_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  spec_json TEXT,
  created_at_ms INTEGER NOT NULL,
  fired_at_ms INTEGER,
  fired_by TEXT,
  outcome TEXT,
  PRIMARY KEY (run_id, node_id, iteration, kind, round)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _smithers_timers_due
  ON _smithers_timers (due_at_ms) WHERE status = 'scheduled';
";

/// Schema v10 (issue 15): the approvals listing's index. Its query walks approvals of one
/// status in the listing's whole order `(requested_at_ms, run_id, node_id, iteration)` from a
/// cursor and stops after a page (`store::approval_listing`), instead of sorting every pending
/// gate. It covers what `(status, requested_at_ms)` served, which goes.
const V10: &str = "
CREATE INDEX IF NOT EXISTS _smithers_approvals_listing
  ON _smithers_approvals (status, requested_at_ms, run_id, node_id, iteration);
DROP INDEX IF EXISTS _smithers_approvals_by_status;
";

/// Creates the listing's index; a file that holds no approvals table (made by hand, or by a
/// tool, as `v9` allows) has nothing to index.
fn v10(tx: &Connection) -> Result<()> {
    let has_approvals: i64 = tx.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_smithers_approvals'",
        [],
        |r| r.get(0),
    )?;
    if has_approvals > 0 {
        tx.execute_batch(V10)?;
    }
    Ok(())
}

/// Schema v9 (issue 15, items 4 and 6): the decision log, a hash chain (`audit.rs`), and the
/// votes of quorum gates. Self-contained: two new tables and the chain started from the
/// decisions already recorded ([`v9`]).
const V9: &str = "
CREATE TABLE IF NOT EXISTS _smithers_audit_log (
  seq INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  run_id TEXT NOT NULL,
  node_id TEXT,
  iteration INTEGER,
  actor TEXT,
  at_ms INTEGER NOT NULL,
  data_json TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  entry_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _smithers_audit_log_by_run ON _smithers_audit_log (run_id, seq);
CREATE TABLE IF NOT EXISTS _smithers_votes (
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  requested_at_ms INTEGER NOT NULL,
  voter TEXT NOT NULL,
  verdict TEXT NOT NULL,
  veto INTEGER NOT NULL DEFAULT 0,
  note TEXT,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, node_id, iteration, requested_at_ms, voter)
) WITHOUT ROWID;
";

/// Creates the v9 tables and starts the chain with the decisions a database already holds
/// (none in a new one): every closed review round (`_smithers_approval_history`) and every
/// decided approval row not in it, oldest decision first (ties by run, node, iteration,
/// round), each an entry of kind `migrated-decision` whose data says what the rows say.
fn v9(tx: &Connection) -> Result<()> {
    tx.execute_batch(V9)?;
    // A file that holds no approvals tables (made by hand, or by a tool) has no decisions.
    let tables: i64 = tx.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('_smithers_approvals', '_smithers_approval_history')",
        [],
        |r| r.get(0),
    )?;
    if tables < 2 {
        return Ok(());
    }
    let mut stmt = tx.prepare(
        "SELECT run_id, node_id, iteration, round, status, decided_by, decided_at_ms, note, reason, inputs_json, kind
           FROM (
             SELECT h.run_id, h.node_id, h.iteration, h.round, h.status, h.decided_by, h.decided_at_ms,
                    h.note, NULL AS reason, h.inputs_json, 'review' AS kind
               FROM _smithers_approval_history h
             UNION ALL
             SELECT a.run_id, a.node_id, a.iteration, a.round, a.status, a.decided_by, a.decided_at_ms,
                    a.note, a.reason, a.inputs_json, a.kind
               FROM _smithers_approvals a
              WHERE a.status IN ('approved', 'denied', 'rejected', 'pushed-back')
                AND a.decided_at_ms IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM _smithers_approval_history h
                                 WHERE h.run_id = a.run_id AND h.node_id = a.node_id
                                   AND h.iteration = a.iteration AND h.round = a.round))
          ORDER BY decided_at_ms, run_id, node_id, iteration, round",
    )?;
    type Decided = (
        String,
        String,
        i64,
        i64,
        String,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Decided> = stmt
        .query_map([], |r| Decided::try_from(r))?
        .collect::<std::result::Result<_, _>>()?;
    let mut tail = super::audit::tail(tx)?;
    for (run_id, node_id, iteration, round, status, by, at_ms, note, reason, inputs, kind) in rows {
        let inputs: serde_json::Value = inputs
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        let entry = crate::audit::seal(
            tail.take(),
            crate::audit::NewAuditEntry {
                kind: crate::audit::kinds::MIGRATED_DECISION,
                run_id,
                node_id: Some(node_id),
                iteration: Some(iteration),
                actor: by,
                at_ms,
                data: serde_json::json!({ "status": status, "kind": kind, "round": round,
                                          "note": note, "reason": reason, "inputs": inputs }),
            },
        );
        super::audit::insert(tx, &entry)?;
        tail = Some((entry.seq, entry.entry_hash));
    }
    Ok(())
}

/// Opens (and unless told otherwise creates) a database, in WAL mode with a busy timeout so
/// several processes (a service, the CLI) can share it, and brings its schema up to date.
/// A database written by a newer version is refused (`SCHEMA_TOO_NEW`) before anything is
/// written to it.
/// How long a statement waits for another connection's lock before it fails with "database
/// is locked" (SQLite's busy timeout, made visible in the logs).
const BUSY_TIMEOUT_MS: u64 = 30_000;

/// SQLite's busy handler: sleeps (1 ms, growing to 100 ms, as SQLite's own busy timeout does)
/// while another connection holds the lock, up to `BUSY_TIMEOUT_MS`. The first wait of a
/// statement is logged at debug (`smithers_core::store`), later ones at trace, giving up at warn.
fn wait_while_busy(count: i32) -> bool {
    const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    let n = usize::try_from(count).unwrap_or(0);
    let waited: u64 =
        DELAYS_MS.iter().take(n).sum::<u64>() + n.saturating_sub(DELAYS_MS.len()) as u64 * 100;
    if waited >= BUSY_TIMEOUT_MS {
        tracing::warn!(
            target: STORE,
            waits = count,
            waited_ms = waited,
            "database still locked: giving up"
        );
        return false;
    }
    let delay = DELAYS_MS.get(n).copied().unwrap_or(100);
    if count == 0 {
        tracing::debug!(target: STORE, "database locked by another connection: waiting");
    } else {
        tracing::trace!(
            target: STORE,
            waits = count,
            waited_ms = waited,
            "database still locked: waiting"
        );
    }
    std::thread::sleep(Duration::from_millis(delay));
    true
}

pub(super) fn open(path: &Path, options: OpenOptions) -> Result<Connection> {
    let exists = path.exists();
    if !exists && (options.must_exist || options.read_only) {
        return Err(Error::DbNotFound {
            path: path.display().to_string(),
            why: "no such file",
        });
    }
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.read_only {
        flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
    } else {
        flags |= OpenFlags::SQLITE_OPEN_READ_WRITE;
        if !options.must_exist {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
    }
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(wait_while_busy))?;
    // The hot path uses a few dozen distinct statements; re-preparing them costs more than
    // running them.
    conn.set_prepared_statement_cache_capacity(256);
    // Without a stable query plan SQLite recompiles statements whose plan may depend on a
    // bound value (the event insert's MAX(seq) subquery) every time they run.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    let path_text = || path.display().to_string();
    // Looked at before anything could write: a newer database is left exactly as it is.
    let found = schema_version(&conn)?;
    if let Some(found) = found
        && found > SCHEMA_VERSION
    {
        return Err(Error::SchemaTooNew {
            path: path_text(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if exists && found.is_none() && (options.must_exist || options.read_only) && !is_empty(&conn)? {
        return Err(Error::DbNotFound {
            path: path_text(),
            why: "it is not a smithers database",
        });
    }
    if options.read_only {
        return match found {
            Some(SCHEMA_VERSION) => Ok(conn),
            None => Err(Error::DbNotFound {
                path: path_text(),
                why: "it is not a smithers database",
            }),
            Some(found) => Err(Error::SchemaOutdated {
                path: path_text(),
                found,
                supported: SCHEMA_VERSION,
            }),
        };
    }
    // WAL + NORMAL: commits survive a crash of the process (kill -9); only an OS crash or
    // power loss can lose the last commits. See ARCHITECTURE.md.
    set_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    if found != Some(SCHEMA_VERSION) {
        migrate(&conn, path)?;
    }
    Ok(conn)
}

/// Puts the file in WAL mode. Switching takes the file's exclusive lock from a shared one;
/// when another connection is doing the same (processes creating one new file at once: two
/// `smithers serve`, parallel `up`s), SQLite answers SQLITE_BUSY at once instead of calling
/// the busy handler (waiting could deadlock), so the switch is tried again here. A file
/// already in WAL mode answers without a lock.
fn set_wal(conn: &Connection) -> Result<()> {
    // Waited for as the busy handler waits for a lock (its delays, its limit, its log lines).
    let mut waits = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && wait_while_busy(waits) =>
            {
                waits += 1;
            }
            other => return Ok(other?),
        }
    }
}

/// The schema version recorded in the database; None when it has no smithers tables.
fn schema_version(conn: &Connection) -> Result<Option<i64>> {
    let has_meta: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_smithers_meta'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .is_some();
    if !has_meta {
        return Ok(None);
    }
    Ok(conn
        .query_row(
            "SELECT value FROM _smithers_meta WHERE key = 'schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok()))
}

fn is_empty(conn: &Connection) -> Result<bool> {
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok(tables == 0)
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    // Several processes may open a file at once: take the write lock, then look again.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let current = schema_version(&tx)?.unwrap_or(0);
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.display().to_string(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    if current < 1 {
        tx.execute_batch(SCHEMA)?;
    }
    if current < 2 {
        tx.execute_batch(V2)?;
    }
    if current < 3 {
        tx.execute_batch(V3)?;
    }
    if current < 4 {
        tx.execute_batch(V4)?;
    }
    if current < 5 {
        tx.execute_batch(V5)?;
    }
    if current < 6 {
        tx.execute_batch(V6)?;
    }
    if current < 7 {
        tx.execute_batch(V7)?;
    }
    if current < 8 {
        tx.execute_batch(V8)?;
    }
    if current < 9 {
        v9(&tx)?;
    }
    if current < 10 {
        v10(&tx)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO _smithers_meta (key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    if current == 0 {
        tracing::info!(target: STORE, db = %path.display(), version = SCHEMA_VERSION, "database created");
    } else {
        tracing::info!(
            target: STORE,
            db = %path.display(),
            from = current,
            to = SCHEMA_VERSION,
            "database migrated"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as v3 left it: a run parked at a gate, with one output row.
    fn v3_database(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(V2).unwrap();
        conn.execute_batch(V3).unwrap();
        conn.execute_batch(
            "INSERT INTO _smithers_meta VALUES ('schema_version', '3');
             INSERT INTO _smithers_runs (run_id, workflow_name, status, created_at_ms, updated_at_ms)
               VALUES ('r1', 'old', 'waiting-approval', 1, 1);
             INSERT INTO _smithers_nodes (run_id, node_id, iteration, state, output_table, updated_at_ms)
               VALUES ('r1', 'build', 0, 'finished', 'build', 1);
             INSERT INTO _smithers_schemas VALUES ('build', 'build',
               '{\"type\":\"object\",\"properties\":{\"version\":{\"type\":\"string\"}}}', 1);
             CREATE TABLE build (run_id TEXT NOT NULL, node_id TEXT NOT NULL, iteration INTEGER NOT NULL DEFAULT 0,
               version TEXT, PRIMARY KEY (run_id, node_id, iteration));
             INSERT INTO build VALUES ('r1', 'build', 0, '1.2.0');",
        )
        .unwrap();
    }

    #[test]
    fn a_v3_database_is_upgraded_and_its_runs_read_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        v3_database(&path);
        // Reading does not upgrade it.
        let read_only = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        let err = open(&path, read_only).err().map(|e| e.code());
        assert_eq!(err, Some("SCHEMA_OUTDATED"));
        let version = |path: &Path| -> String {
            Connection::open(path)
                .unwrap()
                .query_row(
                    "SELECT value FROM _smithers_meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(version(&path), "3");
        let mut engine = crate::Engine::open(&path).unwrap();
        assert_eq!(version(&path), SCHEMA_VERSION.to_string());
        let outputs = engine.inspect("r1").unwrap().outputs;
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].value, serde_json::json!({"version": "1.2.0"}));
        assert!(open(&path, read_only).is_ok());
    }
}
