//! The PostgreSQL store: the same tables as SQLite's (`_smithers_*` next to the output tables,
//! Smithers' layout) in a schema of the user's choice (`?schema=` in the URL, `public` when
//! none is given), created and migrated by the engine. Each file implements one part of the
//! [`Store`](super::Store) interface, as `sqlite/` does.
//!
//! Transactions keep SQLite's contract per run: a write transaction ([`Transactions::begin`])
//! locks the row of every run it touches (`SELECT … FOR UPDATE`, [`PgStore::lock_run`]) before
//! it reads anything of that run, the root of the run's sub-run tree first, so the reads and
//! the conditional writes of a decision, a claim or a fenced driving call are one atomic step
//! for every process on every host that shares the database, while transactions of other runs
//! go on at the same time. What has one order for the whole schema — the feed's ids, the
//! decision log's hash chain, output tables and their schema versions, the deliveries' cursor —
//! is taken under the schema's advisory lock (`pg_advisory_xact_lock`, [`PgStore::lock_schema`]),
//! held to the end of the transaction: the feed's ids are given at commit, so that lock is
//! held for the commit's tail only. Conditional updates and unique keys do the rest, so the
//! database — not a process's memory — enforces first-writer-wins. ARCHITECTURE.md ("The
//! store") has the lock order.

mod approvals;
mod attempts;
mod audit;
mod copy;
mod deliveries;
mod events;
mod nodes;
mod outputs;
mod runs;
mod schema;
mod timers;
mod tls;
mod views;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::{ChangeListener, LeaseRenewer, OpenOptions, Transactions};
use crate::error::Result;
use crate::machines::Stored;

pub use schema::{is_postgres_url, pg_client, redact};

/// A statement's parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(crate) struct PgStore {
    client: RefCell<Client>,
    /// How to connect again (the lease renewer's own connection).
    target: Arc<schema::Target>,
    /// Prepared statements, by SQL text.
    statements: RefCell<HashMap<String, Statement>>,
    /// Output tables known to exist (cleared when a transaction rolls back).
    tables: RefCell<HashSet<String>>,
    /// Transactions this connection committed: the change counter leaves them out.
    own_commits: Cell<i64>,
    in_tx: Cell<bool>,
    /// SQL text of output tables' statements, by table identity (see `outputs.rs`).
    output_sql: RefCell<HashMap<u64, Arc<outputs::OutputSql>>>,
    /// Runs whose rows the open transaction locked.
    locked_runs: RefCell<HashSet<String>>,
    /// Whether the open transaction holds the schema's advisory lock.
    schema_locked: Cell<bool>,
    /// Events the open transaction recorded, in order: they are inserted at commit, under
    /// the schema's lock, with their feed ids (see `commit`).
    pending_feed: RefCell<Vec<events::PendingEvent>>,
    /// The next `seq` of each run the open transaction recorded events of.
    next_seq: RefCell<HashMap<String, i64>>,
    /// The feed id of the first event the last committed transaction inserted.
    feed_base: Cell<Option<i64>>,
    /// The connection failed (not a statement on it): it is made again before the next call
    /// outside a transaction, whether or not the client noticed that it is closed.
    broken: Cell<bool>,
}

impl PgStore {
    pub(crate) fn open(url: &str, options: OpenOptions) -> Result<PgStore> {
        let (client, target) = schema::open(url, options)?;
        Ok(PgStore {
            client: RefCell::new(client),
            target: Arc::new(target),
            statements: RefCell::new(HashMap::new()),
            tables: RefCell::new(HashSet::new()),
            own_commits: Cell::new(0),
            in_tx: Cell::new(false),
            output_sql: RefCell::new(HashMap::new()),
            locked_runs: RefCell::new(HashSet::new()),
            schema_locked: Cell::new(false),
            pending_feed: RefCell::new(Vec::new()),
            next_seq: RefCell::new(HashMap::new()),
            feed_base: Cell::new(None),
            broken: Cell::new(false),
        })
    }

    /// Locks the row of `run_id` for the rest of the write transaction (once per run), the
    /// rows of its callers first, root first: every transaction that touches a sub-run tree
    /// takes its root's row before anything else of it, so two transactions never wait for
    /// each other's runs in opposite orders. A run that does not exist locks nothing. Outside
    /// a transaction it does nothing.
    pub(crate) fn lock_run(&self, run_id: &str) -> Result<()> {
        if !self.in_tx.get() || self.locked_runs.borrow().contains(run_id) {
            return Ok(());
        }
        let locked: Vec<String> = self.all(LOCK_RUN_TREE, &[&run_id], |r| col(r, 0))?;
        self.locked_runs.borrow_mut().extend(locked);
        Ok(())
    }

    /// [`PgStore::lock_run`] for a claim that would rather not wait: false when another
    /// transaction holds the row of `run_id` (a top-level run) now. A sub-run is locked
    /// waiting, callers first.
    pub(crate) fn try_lock_run(&self, run_id: &str) -> Result<bool> {
        if !self.in_tx.get() || self.locked_runs.borrow().contains(run_id) {
            return Ok(true);
        }
        let got = self.row(
            "SELECT 1 FROM _smithers_runs WHERE run_id = $1 AND parent_run_id IS NULL FOR UPDATE SKIP LOCKED",
            &[&run_id],
        )?;
        if got.is_some() {
            self.locked_runs.borrow_mut().insert(run_id.to_string());
            return Ok(true);
        }
        let parent: Option<Option<String>> = self.one(
            "SELECT parent_run_id FROM _smithers_runs WHERE run_id = $1",
            &[&run_id],
            |r| col(r, 0),
        )?;
        match parent {
            // Another transaction holds it.
            Some(None) => Ok(false),
            // A sub-run (callers first), or no such run (the claim says so).
            _ => self.lock_run(run_id).map(|()| true),
        }
    }

    /// Takes the schema's advisory lock for the rest of the write transaction (once): for
    /// what has one order or one copy for the whole schema. Taken after the run rows a
    /// transaction locks, never before one (see ARCHITECTURE.md, "The store").
    pub(crate) fn lock_schema(&self) -> Result<()> {
        if !self.in_tx.get() || self.schema_locked.get() {
            return Ok(());
        }
        self.exec(schema::WRITE_LOCK, &[&self.target.schema])?;
        self.schema_locked.set(true);
        Ok(())
    }

    fn end_tx(&self) {
        self.in_tx.set(false);
        self.schema_locked.set(false);
        self.locked_runs.borrow_mut().clear();
        self.pending_feed.borrow_mut().clear();
        self.next_seq.borrow_mut().clear();
    }

    /// Connects again when the connection was lost (a server restart, a network cut, a
    /// terminated backend) and no transaction is open: the call that found it lost failed
    /// with `DB_ERROR`; the next one works on a new connection. A transaction that was open
    /// is gone with its connection (rolled back by the server), never half-applied.
    fn ensure_connected(&self) -> Result<()> {
        if self.in_tx.get() || !(self.broken.get() || self.client.borrow().is_closed()) {
            return Ok(());
        }
        let client = self.target.connect()?;
        *self.client.borrow_mut() = client;
        self.broken.set(false);
        self.statements.borrow_mut().clear();
        tracing::info!(target: crate::logs::STORE, db = %self.target.display, "connected to the database again");
        Ok(())
    }

    /// Notes a failure of the connection itself (the server went away, a terminated backend,
    /// a reset socket): the client may not have seen yet that it is closed (a backend that was
    /// terminated sends its FATAL error first), so without this the next call would try the
    /// dead socket once more and fail too.
    fn checked<T>(&self, result: std::result::Result<T, postgres::Error>) -> Result<T> {
        result.map_err(|e| {
            if connection_lost(&e) {
                self.broken.set(true);
            }
            e.into()
        })
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        self.ensure_connected()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.checked(self.client.borrow_mut().prepare(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let s = self.statement(sql)?;
        self.checked(self.client.borrow_mut().execute(&s, params))
    }

    /// Every row of a query.
    pub(crate) fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        self.checked(self.client.borrow_mut().query(&s, params))
    }

    /// At most one row of a query.
    pub(crate) fn row(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let s = self.statement(sql)?;
        self.checked(self.client.borrow_mut().query_opt(&s, params))
    }

    /// Every row of a query, mapped.
    pub(crate) fn all<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.rows(sql, params)?.iter().map(f).collect()
    }

    /// At most one row of a query, mapped.
    pub(crate) fn one<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.row(sql, params)?.as_ref().map(f).transpose()
    }

    /// Statements without parameters or results (DDL), not prepared.
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.ensure_connected()?;
        self.checked(self.client.borrow_mut().batch_execute(sql))
    }

    /// Whether an output table exists (a statement on a missing table would abort the
    /// transaction it runs in, so the store looks first).
    pub(crate) fn table_exists(&self, table: &str) -> Result<bool> {
        if self.tables.borrow().contains(table) {
            return Ok(true);
        }
        let exists = self
            .row(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                &[&table],
            )?
            .is_some();
        if exists {
            self.tables.borrow_mut().insert(table.to_string());
        }
        Ok(exists)
    }
}

impl Transactions for PgStore {
    fn begin(&self) -> Result<()> {
        // No lock yet: the transaction locks the rows of the runs it touches as it reads them
        // (see the module doc).
        self.feed_base.set(None);
        self.batch("BEGIN")?;
        self.end_tx();
        self.in_tx.set(true);
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending_feed.borrow_mut());
        if pending.is_empty() {
            // Every committed write transaction moves the counter other connections poll, and
            // listeners of this schema on any host wake up when (and only if) it commits.
            self.exec(
                "UPDATE _smithers_changes SET commits = commits + 1 WHERE id = 1 \
                 RETURNING pg_notify('smithers', $1::text)",
                &[&self.target.schema],
            )?;
        } else {
            // The feed's ids, under the schema's lock held to the commit: ids are given in
            // commit order, so a reader of `feed(after)` never finds one committed behind it.
            // The lock is its own statement: the next one's snapshot (its MAX) is taken once
            // the lock is held. The counter and the notification go in the same statement.
            self.lock_schema()?;
            let n = pending.len();
            let (mut runs, mut seqs, mut times, mut kinds, mut payloads) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in pending {
                runs.push(e.run_id);
                seqs.push(e.seq);
                times.push(e.timestamp_ms);
                kinds.push(e.kind);
                payloads.push(e.payload_json);
            }
            let head: i64 = self
                .one(
                    "WITH changed AS (UPDATE _smithers_changes SET commits = commits + 1 WHERE id = 1 \
                       RETURNING pg_notify('smithers', $1::text)), \
                     head AS (SELECT COALESCE(MAX(feed_id), 0) AS head FROM _smithers_events), \
                     inserted AS (INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json, feed_id) \
                       SELECT p.run_id, p.seq, p.ts, p.kind, p.payload, head.head + p.ord \
                       FROM head, unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[]) \
                         WITH ORDINALITY AS p(run_id, seq, ts, kind, payload, ord) RETURNING 1) \
                     SELECT head.head, (SELECT COUNT(*) FROM changed), (SELECT COUNT(*) FROM inserted) FROM head",
                    &[&self.target.schema, &runs, &seqs, &times, &kinds, &payloads],
                    |r| col(r, 0),
                )?
                .unwrap_or(0);
            self.feed_base.set(Some(head + 1));
        }
        self.batch("COMMIT")?;
        self.end_tx();
        self.own_commits.set(self.own_commits.get() + 1);
        Ok(())
    }

    fn committed_feed_base(&self) -> Option<i64> {
        self.feed_base.get()
    }

    fn lock_all(&self) -> Result<()> {
        self.lock_schema()
    }

    fn rollback(&self) {
        self.end_tx();
        self.feed_base.set(None);
        if !self.broken.get() && !self.client.borrow().is_closed() {
            let result = self.client.borrow_mut().batch_execute("ROLLBACK");
            let _ = self.checked(result);
        }
        // Tables created (or changed) in the transaction are gone, and statements prepared
        // on them with them.
        self.tables.borrow_mut().clear();
        self.statements.borrow_mut().clear();
    }

    fn change_counter(&self) -> Result<i64> {
        let commits: i64 = self
            .row("SELECT commits FROM _smithers_changes WHERE id = 1", &[])?
            .map(|r| col(&r, 0))
            .transpose()?
            .unwrap_or(0);
        Ok(commits - self.own_commits.get())
    }

    fn renewer(&self) -> Result<Box<dyn LeaseRenewer>> {
        Ok(Box::new(Renewer {
            target: self.target.clone(),
            client: None,
        }))
    }

    fn listener(&self) -> Result<Option<Box<dyn ChangeListener>>> {
        let mut listener = Listener {
            target: self.target.clone(),
            client: None,
        };
        listener.connect()?;
        Ok(Some(Box::new(listener)))
    }
}

/// Locks a run's row and its callers' (root first: `FOR UPDATE` locks rows in the order the
/// query returns them). Returns the runs locked.
const LOCK_RUN_TREE: &str = "WITH RECURSIVE chain (run_id, parent, depth) AS ( \
       SELECT run_id, parent_run_id, 0 FROM _smithers_runs WHERE run_id = $1 \
       UNION ALL \
       SELECT r.run_id, r.parent_run_id, c.depth + 1 FROM _smithers_runs r JOIN chain c ON r.run_id = c.parent \
       WHERE c.depth < 64) \
     SELECT r.run_id FROM _smithers_runs r JOIN chain c ON r.run_id = c.run_id \
     ORDER BY c.depth DESC FOR UPDATE OF r";

/// `LISTEN smithers` on a connection of its own: every write transaction of a schema sends
/// `pg_notify('smithers', schema)` as it commits (PostgreSQL delivers it at commit, to every
/// listening session on every host).
struct Listener {
    target: Arc<schema::Target>,
    client: Option<Client>,
}

impl Listener {
    fn connect(&mut self) -> Result<()> {
        let mut client = self.target.connect()?;
        client.batch_execute("LISTEN smithers")?;
        self.client = Some(client);
        Ok(())
    }
}

impl ChangeListener for Listener {
    fn wait(&mut self, timeout_ms: u64) -> Result<bool> {
        use postgres::fallible_iterator::FallibleIterator;
        if self.client.as_ref().is_none_or(Client::is_closed) {
            // Whatever was committed while it was away is news.
            self.connect()?;
            return Ok(true);
        }
        let Some(client) = self.client.as_mut() else {
            return Ok(false);
        };
        let schema = self.target.schema.as_str();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
        let mut notes = client.notifications();
        let mut changed = false;
        loop {
            // What arrived already first, then wait for the rest of the time.
            {
                let mut pending = notes.iter();
                while let Some(note) = pending.next()? {
                    changed |= note.payload() == schema;
                }
            }
            if changed {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            match notes.timeout_iter(left).next() {
                Ok(Some(note)) => {
                    if note.payload() == schema {
                        return Ok(true);
                    }
                }
                Ok(None) => return Ok(false),
                // A lost connection is made again at the next wait.
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Renews leases on a connection of its own, opened when first used (on the renewing thread).
struct Renewer {
    target: Arc<schema::Target>,
    client: Option<Client>,
}

impl LeaseRenewer for Renewer {
    fn renew(&mut self, owner: &str, until: i64) -> Result<usize> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.target.connect()?);
        }
        let Some(client) = self.client.as_mut() else {
            return Ok(0);
        };
        // Rows no transaction holds now, in one statement that never waits; then each row a
        // transaction held, one statement (and one row lock) at a time. A renewal that waited
        // for several rows at once could close a cycle with transactions that lock runs root
        // first (see `lock_run`); one that holds nothing while it waits cannot.
        let renewed = client
            .execute(
                "UPDATE _smithers_runs SET lease_expires_at_ms = $2 WHERE run_id IN ( \
                   SELECT run_id FROM _smithers_runs WHERE owner = $1 \
                   AND status NOT IN ('finished', 'failed', 'cancelled', 'rejected') FOR UPDATE SKIP LOCKED)",
                &[&owner, &until],
            )
            .and_then(|n| {
                let held = client.query(
                    "SELECT run_id FROM _smithers_runs WHERE owner = $1 \
                     AND status NOT IN ('finished', 'failed', 'cancelled', 'rejected') \
                     AND (lease_expires_at_ms IS NULL OR lease_expires_at_ms < $2)",
                    &[&owner, &until],
                )?;
                let mut n = n;
                for r in held {
                    let run_id: String = r.try_get(0)?;
                    n += client.execute(
                        "UPDATE _smithers_runs SET lease_expires_at_ms = $3 WHERE run_id = $1 AND owner = $2 \
                         AND status NOT IN ('finished', 'failed', 'cancelled', 'rejected')",
                        &[&run_id, &owner, &until],
                    )?;
                }
                Ok(n)
            });
        match renewed {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(e) => {
                // Connect again at the next renewal.
                self.client = None;
                Err(e.into())
            }
        }
    }
}

/// Whether an error means the connection is gone (rather than a statement refused on a live
/// one): the client saw it close, the server ended the session (SQLSTATE class 08, or 57P:
/// shut down, terminated, restarting), or the socket failed.
fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") || code.starts_with("57P");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

impl crate::store::shared::Columns for Row {
    type Error = crate::error::Error;
    fn text(&self, i: usize) -> Result<String> {
        col(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        col(self, i)
    }
    fn int(&self, i: usize) -> Result<i64> {
        col(self, i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        col(self, i)
    }
}

/// Column `i` of a row, as `T`: a value of another type (the table was made by something
/// else, or altered) or a NULL where the engine never writes one is `CORRUPT_STORE`, never a
/// panic (`Row::get` panics on both).
pub(crate) fn col<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i).map_err(|e| {
        use std::error::Error as _;
        let column = r
            .columns()
            .get(i)
            .map_or_else(|| format!("#{i}"), |c| c.name().to_string());
        let why = e
            .source()
            .map_or_else(|| e.to_string(), ToString::to_string);
        crate::error::Error::UnreadableRow { column, why }
    })
}

/// A stored state, typed (an unknown one is `CORRUPT_STORE`).
fn typed<S: Stored>(text: String) -> Result<S> {
    S::parse(&text)
}

fn typed_opt<S: Stored>(text: Option<String>) -> Result<Option<S>> {
    text.map(|t| S::parse(&t)).transpose()
}

/// A JSON column read leniently (a value another writer left unreadable is no value).
fn json_col(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
