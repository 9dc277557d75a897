//! The SQLite store: one file, WAL mode, internal `_smithers_*` tables next to the output
//! tables (Smithers' layout). Each file implements one part of the [`Store`](super::Store)
//! interface.

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

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{ChangeListener, LeaseRenewer, OpenOptions, Transactions};
use crate::error::{Error, Result};
use crate::machines::Stored;

pub use schema::SCHEMA_VERSION;

pub(crate) struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// SQL text of output tables' statements, by table identity (see `outputs.rs`).
    output_sql: RefCell<HashMap<u64, Arc<outputs::OutputSql>>>,
}

impl SqliteStore {
    pub(crate) fn open(path: &Path, options: OpenOptions) -> Result<SqliteStore> {
        Ok(SqliteStore {
            conn: schema::open(path, options)?,
            path: path.to_path_buf(),
            output_sql: RefCell::new(HashMap::new()),
        })
    }
}

impl Transactions for SqliteStore {
    fn begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn commit(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn rollback(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn change_counter(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    fn renewer(&self) -> Result<Box<dyn LeaseRenewer>> {
        Ok(Box::new(Renewer {
            path: self.path.clone(),
            conn: None,
        }))
    }

    /// SQLite cannot tell another process that it committed: readers poll `data_version`.
    fn listener(&self) -> Result<Option<Box<dyn ChangeListener>>> {
        Ok(None)
    }
}

/// Renews leases on a connection of its own, opened when first used (on the renewing thread).
struct Renewer {
    path: PathBuf,
    conn: Option<Connection>,
}

impl LeaseRenewer for Renewer {
    fn renew(&mut self, owner: &str, until: i64) -> Result<usize> {
        if self.conn.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(2))?;
            self.conn = Some(conn);
        }
        let Some(conn) = &self.conn else {
            return Ok(0);
        };
        Ok(conn
            .prepare_cached(
                "UPDATE _smithers_runs SET lease_expires_at_ms = ?2 \
                 WHERE owner = ?1 AND status NOT IN ('finished', 'failed', 'cancelled', 'rejected')",
            )?
            .execute(params![owner, until])?)
    }
}

/// A stored state, typed (an unknown one is `CORRUPT_STORE`).
fn typed<S: Stored>(text: String) -> Result<S> {
    S::parse(&text)
}

fn typed_opt<S: Stored>(text: Option<String>) -> Result<Option<S>> {
    text.map(|t| S::parse(&t)).transpose()
}

impl crate::store::shared::Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
}

/// A JSON column read leniently (a value another writer left unreadable is no value).
fn json_col(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Runs a statement on a table that may not exist yet (created with the first graph that
/// uses it): no table is no rows.
fn on_table<T>(
    conn: &Connection,
    sql: &str,
    absent: T,
    f: impl FnOnce(&mut rusqlite::CachedStatement<'_>) -> Result<T>,
) -> Result<T> {
    match conn.prepare_cached(sql) {
        Ok(mut stmt) => f(&mut stmt),
        Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
            Ok(absent)
        }
        Err(e) => Err(Error::Db(e)),
    }
}

/// `query_row(...).optional()` over a cached statement.
fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    Ok(conn.prepare_cached(sql)?.query_row(params, f).optional()?)
}

/// Every row of a cached statement, mapped.
fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, f)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
