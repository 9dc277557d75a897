//! Moving a database to another store (`smithers migrate --from <db> --to <db>`): every run,
//! node, attempt, approval and decision, vote, timer, event, the decision log, the schema
//! versions and the output tables, copied from one database (SQLite file or PostgreSQL schema)
//! into an empty one, in either direction.
//!
//! How it stays correct:
//! - **One moment of the source.** The source is opened read-only and read inside one
//!   snapshot (SQLite: a WAL read transaction; PostgreSQL: REPEATABLE READ), so the copy is
//!   consistent even if something commits meanwhile; and a second connection watches the
//!   source's change counter: when anything committed during the copy, the copy is rolled back
//!   (`SOURCE_CHANGED`), so a decision made on the source during the copy is never lost
//!   silently.
//! - **No run in flight.** A run whose owner still holds a lease is being driven: its progress
//!   lives in that process as much as in the database, so it is refused (`SOURCE_IN_USE`).
//!   Parked runs (waiting for approval, a timer, a signal) have no owner and move as they are;
//!   a run whose owner died (lease expired) moves with it and is adopted in the target like
//!   any other orphan.
//! - **One transaction in the target.** The target is created (or migrated) to this engine's
//!   schema, must hold no smithers data (`TARGET_NOT_EMPTY`), and receives everything under
//!   its write lock in one transaction, committed only after the check: the row count of
//!   every table equal to the source's, and the decision log verifying in the target exactly
//!   as in the source (`MIGRATE_VERIFY_FAILED` otherwise). Either everything moved or nothing.
//! - **Output tables are made by the target's own code**: every schema version of every
//!   output key is applied in order (`ensure_table`), so the target's columns and types are
//!   what that store would have made running the same workflows; then the rows are copied,
//!   each value converted to its column's type (`MIGRATE_VALUE_UNFIT` if one cannot be).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::audit::AuditReport;
use crate::error::{Error, Result};
use crate::output::OutputTable;
use crate::store::{self, Cell, CopyStore, OpenOptions};

/// The engine's tables a copy carries, in the order it copies them. `_smithers_meta` is
/// copied apart (the target keeps its own schema version); `_smithers_changes` is a
/// store's own counter.
const TABLES: &[&str] = &[
    "_smithers_runs",
    "_smithers_nodes",
    "_smithers_loops",
    "_smithers_attempts",
    "_smithers_approvals",
    "_smithers_approval_history",
    "_smithers_votes",
    "_smithers_timers",
    "_smithers_events",
    "_smithers_audit_log",
    "_smithers_schemas",
    "_smithers_schema_versions",
    "_smithers_run_schemas",
    "_smithers_deliveries",
    "_smithers_link_uses",
];

const META: &str = "_smithers_meta";
/// Store-specific tables no copy carries.
const OWN: &[&str] = &["_smithers_changes"];

/// Rows handed to the target at once.
const BATCH: usize = 1000;

/// How far a copy is: sent at the start of each table, every 1,000 rows, and at its end.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateProgress {
    pub table: String,
    /// 1-based place of the table among `tables`.
    pub table_index: usize,
    pub tables: usize,
    pub table_rows_done: i64,
    pub table_rows: i64,
    pub rows_done: i64,
    pub rows: i64,
}

/// One table the copy carried.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableCopy {
    pub table: String,
    /// Rows in the source, and (checked equal) in the target.
    pub rows: i64,
    /// An output table (rather than one of the engine's).
    pub output: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    /// The databases (a URL without its password).
    pub from: String,
    pub to: String,
    pub tables: Vec<TableCopy>,
    /// Rows copied, all tables together.
    pub rows: i64,
    pub runs: i64,
    /// The decision log as the target verifies it (equal to the source's).
    pub audit: AuditReport,
    /// Tables of the source that are neither the engine's nor output tables (left behind).
    pub skipped: Vec<String>,
}

fn shown(db: &Path) -> String {
    let text = db.to_string_lossy();
    if store::is_postgres_url(&text) {
        store::redact(&text)
    } else {
        db.display().to_string()
    }
}

fn same_database(from: &Path, to: &Path) -> bool {
    let (a, b) = (from.to_string_lossy(), to.to_string_lossy());
    if store::is_postgres_url(&a) || store::is_postgres_url(&b) {
        return a == b;
    }
    match (from.canonicalize(), to.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => from == to,
    }
}

/// The columns of a table, in order.
fn columns(store: &dyn CopyStore, table: &str) -> Result<Vec<String>> {
    Ok(store
        .table_columns(table)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

fn text(c: &Cell) -> Option<&str> {
    match c {
        Cell::Text(t) => Some(t),
        _ => None,
    }
}

fn int(c: &Cell) -> Option<i64> {
    match c {
        Cell::Int(i) => Some(*i),
        Cell::Real(f) => Some(*f as i64),
        Cell::Text(t) => t.parse().ok(),
        Cell::Null => None,
    }
}

/// Copies the database `from` into the empty database `to` (created when missing), calling
/// `progress` as it goes. See the module documentation.
pub fn migrate(
    from: &Path,
    to: &Path,
    progress: &mut dyn FnMut(&MigrateProgress),
) -> Result<MigrateReport> {
    let (from_shown, to_shown) = (shown(from), shown(to));
    if same_database(from, to) {
        return Err(Error::SameDatabase {
            from: from_shown,
            to: to_shown,
        });
    }
    let read_only = OpenOptions {
        must_exist: true,
        read_only: true,
    };
    let source = store::open_copy(from, read_only)?;
    // A connection of its own: it sees what other processes commit while the copy runs.
    let watcher = store::open(from, read_only)?;
    let target = store::open_copy(to, OpenOptions::default())?;
    let changes_before = watcher.change_counter()?;
    source.begin_snapshot()?;
    let copied = (|| {
        target.begin()?;
        target.lock_all()?;
        let report = copy(&*source, &*target, &from_shown, &to_shown, progress);
        let report = report.and_then(|report| {
            if watcher.change_counter()? != changes_before {
                return Err(Error::SourceChanged {
                    from: from_shown.clone(),
                });
            }
            Ok(report)
        });
        match report {
            Ok(report) => {
                target.commit()?;
                Ok(report)
            }
            Err(e) => {
                target.rollback();
                Err(e)
            }
        }
    })();
    source.end_snapshot();
    let report = copied?;
    tracing::info!(
        target: crate::logs::STORE,
        from = %report.from,
        to = %report.to,
        rows = report.rows,
        runs = report.runs,
        "database copied"
    );
    Ok(report)
}

fn copy(
    source: &dyn CopyStore,
    target: &dyn CopyStore,
    from: &str,
    to: &str,
    progress: &mut dyn FnMut(&MigrateProgress),
) -> Result<MigrateReport> {
    let source_tables: BTreeSet<String> = source.table_names()?.into_iter().collect();

    // Nothing in flight: a run an owner holds a lease on is being driven.
    let now = crate::time::now_ms();
    let mut busy = Vec::new();
    let run_cols: Vec<String> = ["run_id", "owner", "status", "lease_expires_at_ms"]
        .map(String::from)
        .to_vec();
    source.scan_rows("_smithers_runs", &run_cols, &mut |row| {
        let open = !matches!(
            text(&row[2]),
            Some("finished" | "failed" | "cancelled" | "rejected")
        );
        let held = int(&row[3]).is_none_or(|until| until > now);
        if row[1] != Cell::Null && open && held {
            busy.push(text(&row[0]).unwrap_or_default().to_string());
        }
        Ok(())
    })?;
    if !busy.is_empty() {
        return Err(Error::SourceInUse {
            from: from.to_string(),
            runs: busy,
        });
    }

    // The target holds nothing yet (checked under its write lock).
    for table in TABLES {
        let rows = target.count_rows(table)?;
        if rows > 0 {
            return Err(Error::TargetNotEmpty {
                to: to.to_string(),
                table: table.to_string(),
                rows,
            });
        }
    }
    let mut meta = Vec::new();
    target.scan_rows(META, &["key".into()], &mut |row| {
        meta.push(row);
        Ok(())
    })?;
    if let Some(key) = meta
        .iter()
        .filter_map(|r| text(&r[0]))
        .find(|k| *k != "schema_version")
    {
        return Err(Error::TargetNotEmpty {
            to: to.to_string(),
            table: format!("{META} ({key})"),
            rows: meta.len() as i64,
        });
    }

    // Output tables, made by the target's own code, schema version after schema version.
    let mut versions: BTreeMap<String, BTreeMap<i64, String>> = BTreeMap::new();
    source.scan_rows(
        "_smithers_schema_versions",
        &["table_key".into(), "version".into(), "schema_json".into()],
        &mut |row| {
            if let (Some(key), Some(v), Some(json)) = (text(&row[0]), int(&row[1]), text(&row[2])) {
                versions
                    .entry(key.to_string())
                    .or_default()
                    .insert(v, json.to_string());
            }
            Ok(())
        },
    )?;
    source.scan_rows(
        "_smithers_schemas",
        &["table_key".into(), "version".into(), "schema_json".into()],
        &mut |row| {
            if let (Some(key), Some(json)) = (text(&row[0]), text(&row[2])) {
                let v = int(&row[1]).unwrap_or(1);
                versions
                    .entry(key.to_string())
                    .or_default()
                    .entry(v)
                    .or_insert_with(|| json.to_string());
            }
            Ok(())
        },
    )?;
    let mut outputs = BTreeSet::new();
    let target_tables: BTreeSet<String> = target.table_names()?.into_iter().collect();
    for (key, schemas) in &versions {
        for json in schemas.values() {
            let schema: serde_json::Value = serde_json::from_str(json)?;
            let table = OutputTable::new(key, &schema)?;
            if source_tables.contains(&table.table) {
                // An output table the target has already (left by runs deleted since, or
                // made by something else) must be empty: rows are never merged.
                if outputs.insert(table.table.clone()) && target_tables.contains(&table.table) {
                    let rows = target.count_rows(&table.table)?;
                    if rows > 0 {
                        return Err(Error::TargetNotEmpty {
                            to: to.to_string(),
                            table: table.table.clone(),
                            rows,
                        });
                    }
                }
                target.ensure_table(&table)?;
            }
        }
    }

    let mut skipped = Vec::new();
    for t in &source_tables {
        let known = TABLES.contains(&t.as_str()) || t == META || OWN.contains(&t.as_str());
        if t.starts_with("_smithers_") && !known {
            return Err(Error::MigrateMismatch {
                what: format!("table {t}"),
                source_value: "present".into(),
                target_value: "unknown to this engine".into(),
            });
        }
        if !known && !outputs.contains(t) {
            skipped.push(t.clone());
        }
    }

    // What moves, and how much.
    let plan: Vec<(String, bool)> = TABLES
        .iter()
        .map(|t| (t.to_string(), false))
        .chain(outputs.iter().map(|t| (t.clone(), true)))
        .collect();
    let mut counts = Vec::with_capacity(plan.len());
    for (table, _) in &plan {
        counts.push(source.count_rows(table)?);
    }
    let total: i64 = counts.iter().sum();

    let mut done = 0i64;
    let mut tables = Vec::with_capacity(plan.len());
    for (i, ((table, output), rows)) in plan.iter().zip(&counts).enumerate() {
        let cols = columns(source, table)?;
        let target_cols: BTreeSet<String> = columns(target, table)?.into_iter().collect();
        if let Some(missing) = cols.iter().find(|c| !target_cols.contains(*c)) {
            return Err(Error::MigrateMismatch {
                what: format!("column {table}.{missing}"),
                source_value: "present".into(),
                target_value: "missing".into(),
            });
        }
        let mut at = MigrateProgress {
            table: table.clone(),
            table_index: i + 1,
            tables: plan.len(),
            table_rows_done: 0,
            table_rows: *rows,
            rows_done: done,
            rows: total,
        };
        progress(&at);
        let mut batch = Vec::with_capacity(BATCH);
        let mut flush = |batch: &mut Vec<Vec<Cell>>, at: &mut MigrateProgress| -> Result<()> {
            target.insert_rows(table, &cols, batch)?;
            at.table_rows_done += batch.len() as i64;
            at.rows_done += batch.len() as i64;
            batch.clear();
            progress(at);
            Ok(())
        };
        source.scan_rows(table, &cols, &mut |row| {
            batch.push(row);
            if batch.len() >= BATCH {
                flush(&mut batch, &mut at)?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            flush(&mut batch, &mut at)?;
        }
        done = at.rows_done;
        let copied = target.count_rows(table)?;
        if copied != *rows || at.table_rows_done != *rows {
            return Err(Error::MigrateMismatch {
                what: format!("rows of {table}"),
                source_value: rows.to_string(),
                target_value: copied.to_string(),
            });
        }
        tables.push(TableCopy {
            table: table.clone(),
            rows: *rows,
            output: *output,
        });
    }

    // The rest of the meta rows (the decision log's head, the deliveries' feed cursor).
    let kv: Vec<String> = vec!["key".into(), "value".into()];
    let mut rest = Vec::new();
    source.scan_rows(META, &kv, &mut |row| {
        if text(&row[0]) != Some("schema_version") {
            rest.push(row);
        }
        Ok(())
    })?;
    target.insert_rows(META, &kv, &rest)?;

    // The decision log verifies in the target as it does in the source.
    let source_audit = crate::inspect::verify_audit(source)?;
    let audit = crate::inspect::verify_audit(target)?;
    let key = |r: &AuditReport| (r.ok, r.entries, r.head_seq, r.head_hash.clone());
    if key(&source_audit) != key(&audit) {
        return Err(Error::MigrateMismatch {
            what: "the decision log (audit verify)".into(),
            source_value: format!("{:?}", key(&source_audit)),
            target_value: format!("{:?}", key(&audit)),
        });
    }

    Ok(MigrateReport {
        from: from.to_string(),
        to: to.to_string(),
        rows: total,
        runs: counts.first().copied().unwrap_or(0),
        tables,
        audit,
        skipped,
    })
}
