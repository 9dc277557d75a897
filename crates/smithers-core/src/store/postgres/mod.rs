//! The PostgreSQL store: the same tables as SQLite's (`_smithers_*` next to the output tables,
//! Smithers' layout) in a schema of the user's choice (`?schema=` in the URL, `public` when
//! none is given), created and migrated by the engine. Each file implements one part of the
//! [`Store`](super::Store) interface, as `sqlite/` does.
//!
//! Transactions keep SQLite's contract: a write transaction ([`Transactions::begin`]) takes a
//! transaction-scoped advisory lock of the schema (`pg_advisory_xact_lock`) before anything
//! else, as SQLite's `BEGIN IMMEDIATE` takes the file's write lock, so the reads and the
//! conditional writes of a decision, a claim or a fenced driving call are one atomic step for
//! every process on every host that shares the database. Rows are also taken with
//! `SELECT … FOR UPDATE` where a claim or a decision reads them, and unique keys refuse a
//! second row, so the database — not a process's memory — enforces first-writer-wins.
//! ARCHITECTURE.md ("The store") says why writers are serialised per schema.

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
mod views;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::{ChangeListener, LeaseRenewer, OpenOptions, Transactions};
use crate::error::Result;
use crate::machines::Stored;

pub use schema::{is_postgres_url, redact};

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
        })
    }

    /// Connects again when the connection was lost (a server restart, a network cut, a
    /// terminated backend) and no transaction is open: the call that found it lost failed
    /// with `DB_ERROR`; the next one works on a new connection. A transaction that was open
    /// is gone with its connection (rolled back by the server), never half-applied.
    fn ensure_connected(&self) -> Result<()> {
        if self.in_tx.get() || !self.client.borrow().is_closed() {
            return Ok(());
        }
        let client = self.target.connect()?;
        *self.client.borrow_mut() = client;
        self.statements.borrow_mut().clear();
        tracing::info!(target: crate::logs::STORE, db = %self.target.display, "connected to the database again");
        Ok(())
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        self.ensure_connected()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.borrow_mut().prepare(sql)?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let s = self.statement(sql)?;
        Ok(self.client.borrow_mut().execute(&s, params)?)
    }

    /// Every row of a query.
    pub(crate) fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.borrow_mut().query(&s, params)?)
    }

    /// At most one row of a query.
    pub(crate) fn row(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.borrow_mut().query_opt(&s, params)?)
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
        self.client.borrow_mut().batch_execute(sql)?;
        Ok(())
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
        self.batch("BEGIN")?;
        self.in_tx.set(true);
        // One writer at a time per schema, as SQLite's BEGIN IMMEDIATE: see the module doc.
        if let Err(e) = self.exec(schema::WRITE_LOCK, &[&self.target.schema]) {
            self.rollback();
            return Err(e);
        }
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        // Every committed write transaction moves the counter other connections poll.
        self.exec(
            "UPDATE _smithers_changes SET commits = commits + 1 WHERE id = 1",
            &[],
        )?;
        // Listeners of this schema on any host wake up when (and only if) it commits.
        self.exec(
            "SELECT pg_notify('smithers', $1::text)",
            &[&self.target.schema],
        )?;
        self.batch("COMMIT")?;
        self.in_tx.set(false);
        self.own_commits.set(self.own_commits.get() + 1);
        Ok(())
    }

    fn rollback(&self) {
        self.in_tx.set(false);
        if !self.client.borrow().is_closed() {
            let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
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
        let n = client.execute(
            "UPDATE _smithers_runs SET lease_expires_at_ms = $2 \
             WHERE owner = $1 AND status NOT IN ('finished', 'failed', 'cancelled', 'rejected')",
            &[&owner, &until],
        );
        match n {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(e) => {
                // Connect again at the next renewal.
                self.client = None;
                Err(e.into())
            }
        }
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
