//! Output schemas per version and per run.
//!
//! One database holds the runs of many workflows, and a workflow file changes over time, so an
//! output key (`result`) may have had several schemas. Each distinct schema of a key is a
//! **version** (`_smithers_schema_versions`); each run is bound to the version of each key it
//! was started (or first rendered) with (`_smithers_run_schemas`) and reads and writes its rows
//! through that version, whatever other workflows registered since. The SQL table of a key is
//! shared by its versions: it has the union of their columns.
//!
//! Refused, before anything is written: two keys that map to one SQL table (`fooBar`,
//! `foo_bar`: `TABLE_NAME_CONFLICT`); a field whose column already exists with a type this
//! version cannot store and read back (`SCHEMA_CONFLICT`); a render that gives a key another
//! schema after the run already wrote rows with the first one (`SCHEMA_CHANGED`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::engine::{Engine, begin};
use crate::error::{Error, Result};
use crate::ident::quote;
use crate::output::OutputTable;
use crate::store::now_ms;

/// What this engine knows of the schema versions in its database.
#[derive(Default)]
pub(crate) struct SchemaCache {
    /// Every version loaded so far.
    versions: HashMap<(String, i64), Rc<OutputTable>>,
    /// Per key, the version of the schema last submitted for it (the usual case is that the
    /// next render submits the same schema again).
    current: HashMap<String, (i64, Rc<OutputTable>)>,
}

impl SchemaCache {
    /// Forgets everything: after a transaction that may have registered versions rolled back.
    pub(crate) fn clear(&mut self) {
        self.versions.clear();
        self.current.clear();
    }
}

/// What registering a graph's schemas for a run will write.
#[derive(Default)]
pub(crate) struct SchemaPlan {
    /// New versions: `(version, table)`.
    new_versions: Vec<(i64, Rc<OutputTable>)>,
    /// Keys whose version the run is bound to from now on: `(key, version, table)`.
    bind: Vec<(String, i64, Rc<OutputTable>)>,
}

/// An existing column can hold what a field of this codec's SQL type writes, and give it back.
fn column_fits(stored: &str, wanted: &str) -> bool {
    stored.eq_ignore_ascii_case(wanted)
        || (matches!(wanted, "INTEGER" | "REAL")
            && (stored.eq_ignore_ascii_case("INTEGER") || stored.eq_ignore_ascii_case("REAL")))
}

fn static_type(t: &str) -> &'static str {
    match t.to_ascii_uppercase().as_str() {
        "INTEGER" => "INTEGER",
        "REAL" => "REAL",
        "TEXT" => "TEXT",
        "BLOB" => "BLOB",
        _ => "an untyped column",
    }
}

/// The columns a table has now, with their declared types.
fn table_columns(conn: &Connection, table: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached("SELECT name, type FROM pragma_table_info(?1)")?;
    let cols = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(cols)
}

impl Engine {
    /// One version of an output key's schema, from the cache or the store.
    fn schema_version(&mut self, key: &str, version: i64) -> Result<Rc<OutputTable>> {
        if let Some(t) = self.schemas.versions.get(&(key.to_string(), version)) {
            return Ok(t.clone());
        }
        let schema: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT schema_json FROM _smithers_schema_versions WHERE table_key = ?1 AND version = ?2",
            )?
            .query_row(params![key, version], |r| r.get(0))
            .optional()?;
        let Some(schema) = schema else {
            return Err(Error::UnknownOutputSchema {
                key: key.into(),
                node_id: String::new(),
            });
        };
        let table = Rc::new(OutputTable::new(key, &serde_json::from_str(&schema)?)?);
        self.schemas
            .versions
            .insert((key.to_string(), version), table.clone());
        Ok(table)
    }

    /// The version of `key` a run reads and writes through: its binding (in memory while the
    /// run is driven here, else in the store), or, for a key the run never bound, the latest.
    fn bound_version(&self, run_id: &str, key: &str) -> Result<Option<i64>> {
        if let Some(v) = self
            .runs
            .get(run_id)
            .and_then(|r| r.schema_versions.get(key))
        {
            return Ok(Some(*v));
        }
        let bound: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT version FROM _smithers_run_schemas WHERE run_id = ?1 AND table_key = ?2",
            )?
            .query_row(params![run_id, key], |r| r.get(0))
            .optional()?;
        if bound.is_some() {
            return Ok(bound);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT version FROM _smithers_schemas WHERE table_key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// The table of an output key as a run sees it (see [`Engine::bound_version`]).
    pub(crate) fn run_table(&mut self, run_id: &str, key: &str) -> Result<Rc<OutputTable>> {
        let Some(version) = self.bound_version(run_id, key)? else {
            return Err(Error::UnknownOutputSchema {
                key: key.into(),
                node_id: String::new(),
            });
        };
        self.schema_version(key, version)
    }

    /// The versions a run is bound to, key by key (loaded when the run is claimed).
    pub(crate) fn run_bindings(&self, run_id: &str) -> Result<HashMap<String, i64>> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT table_key, version FROM _smithers_run_schemas WHERE run_id = ?1",
            )?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Works out, without writing anything, what registering `schemas` (for `run_id`, or for
    /// no run: a dry check before a run is created) writes; refuses what cannot be stored.
    pub(crate) fn plan_schemas(
        &mut self,
        run_id: Option<&str>,
        schemas: &BTreeMap<String, Value>,
    ) -> Result<SchemaPlan> {
        let mut plan = SchemaPlan::default();
        let mut sql_names: HashMap<String, &str> = HashMap::new();
        for (key, schema) in schemas {
            let table_name = crate::ident::snake_case(key);
            if let Some(other) = sql_names.insert(table_name.clone(), key) {
                return Err(Error::TableNameConflict {
                    key: key.clone(),
                    other: other.into(),
                    table: table_name,
                });
            }
            let (version, table) = match self.schemas.current.get(key) {
                Some((v, t)) if &t.schema == schema => (*v, t.clone()),
                _ => {
                    let text = serde_json::to_string(schema)?;
                    let known: Option<i64> = self
                        .conn
                        .prepare_cached(
                            "SELECT version FROM _smithers_schema_versions WHERE table_key = ?1 AND schema_json = ?2",
                        )?
                        .query_row(params![key, text], |r| r.get(0))
                        .optional()?;
                    match known {
                        Some(v) => {
                            let table = self.schema_version(key, v)?;
                            self.schemas.current.insert(key.clone(), (v, table.clone()));
                            (v, table)
                        }
                        None => {
                            let table = Rc::new(OutputTable::new(key, schema)?);
                            self.check_new_version(key, &table)?;
                            let latest: i64 = self
                                .conn
                                .prepare_cached(
                                    "SELECT COALESCE(MAX(version), 0) FROM _smithers_schema_versions WHERE table_key = ?1",
                                )?
                                .query_row([key], |r| r.get(0))?;
                            plan.new_versions.push((latest + 1, table.clone()));
                            (latest + 1, table)
                        }
                    }
                }
            };
            let Some(run_id) = run_id else { continue };
            match self
                .runs
                .get(run_id)
                .and_then(|r| r.schema_versions.get(key))
            {
                Some(&bound) if bound == version => {}
                Some(&bound) => {
                    // A render gives the key another schema than the run's rows were written
                    // with: fine while the run has none, refused once it has some.
                    if self.run_has_rows(run_id, &table.table)? {
                        return Err(Error::SchemaChanged {
                            run_id: run_id.into(),
                            key: key.clone(),
                            version: bound,
                        });
                    }
                    plan.bind.push((key.clone(), version, table));
                }
                None => plan.bind.push((key.clone(), version, table)),
            }
        }
        Ok(plan)
    }

    /// A schema not seen before for `key`: its table name must be the key's alone, and the
    /// columns its fields share with earlier versions must hold what it writes.
    fn check_new_version(&self, key: &str, table: &OutputTable) -> Result<()> {
        let other: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT table_key FROM _smithers_schema_versions WHERE table_name = ?1 AND table_key != ?2 LIMIT 1",
            )?
            .query_row(params![table.table, key], |r| r.get(0))
            .optional()?;
        if let Some(other) = other {
            return Err(Error::TableNameConflict {
                key: key.into(),
                other,
                table: table.table.clone(),
            });
        }
        let existing = table_columns(&self.conn, &table.table)?;
        for (field, column, wanted) in table.columns_sql() {
            let Some((_, stored)) = existing.iter().find(|(name, _)| name == column) else {
                continue;
            };
            if !column_fits(stored, wanted) {
                let version: i64 = self
                    .conn
                    .prepare_cached(
                        "SELECT COALESCE(MAX(version), 0) FROM _smithers_schema_versions WHERE table_key = ?1",
                    )?
                    .query_row([key], |r| r.get(0))?;
                return Err(Error::SchemaConflict {
                    key: key.into(),
                    field: field.into(),
                    table: table.table.clone(),
                    version,
                    stored: static_type(stored),
                    wanted,
                });
            }
        }
        Ok(())
    }

    fn run_has_rows(&self, run_id: &str, table: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} WHERE run_id = ?1 LIMIT 1", quote(table));
        match self.conn.prepare_cached(&sql) {
            Ok(mut stmt) => Ok(stmt.query_row([run_id], |_| Ok(())).optional()?.is_some()),
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes what [`Engine::plan_schemas`] worked out: new versions (their tables created or
    /// given the new columns) and the run's bindings.
    pub(crate) fn apply_schemas(&mut self, run_id: &str, plan: SchemaPlan) -> Result<()> {
        if plan.new_versions.is_empty() && plan.bind.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let tx = begin(&self.conn, self.batching)?;
        for (version, table) in &plan.new_versions {
            table.ensure(&tx)?;
            let schema_json = serde_json::to_string(&table.schema)?;
            tx.prepare_cached(
                "INSERT INTO _smithers_schema_versions (table_key, version, table_name, schema_json, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![table.key, version, table.table, schema_json, now])?;
            // `_smithers_schemas` keeps the latest schema of each key (for readers of the
            // Smithers layout, and runs that never bound the key).
            tx.prepare_cached(
                "INSERT INTO _smithers_schemas (table_key, table_name, schema_json, updated_at_ms, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(table_key) DO UPDATE SET \
                 table_name = excluded.table_name, schema_json = excluded.schema_json, \
                 updated_at_ms = excluded.updated_at_ms, version = excluded.version",
            )?
            .execute(params![table.key, table.table, schema_json, now, version])?;
        }
        for (key, version, table) in &plan.bind {
            tx.prepare_cached(
                "INSERT INTO _smithers_run_schemas (run_id, table_key, version) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(run_id, table_key) DO UPDATE SET version = excluded.version",
            )?
            .execute(params![run_id, key, version])?;
            self.schemas
                .versions
                .insert((key.clone(), *version), table.clone());
        }
        tx.commit()?;
        for (version, table) in &plan.new_versions {
            tracing::info!(
                run_id,
                key = table.key.as_str(),
                version,
                table = table.table.as_str(),
                "output schema version registered"
            );
        }
        if !plan.bind.is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
            let bound: Vec<String> = plan
                .bind
                .iter()
                .map(|(key, version, _)| format!("{key}@{version}"))
                .collect();
            tracing::debug!(run_id, bound = ?bound, "run bound to output schema versions");
        }
        // Known to the cache only now; a rollback of the driving call's transaction clears it.
        for (version, table) in plan.new_versions {
            self.schemas
                .current
                .insert(table.key.clone(), (version, table.clone()));
            self.schemas
                .versions
                .insert((table.key.clone(), version), table);
        }
        if let Some(run) = self.runs.get_mut(run_id) {
            for (key, version, _) in plan.bind {
                run.schema_versions.insert(key, version);
            }
        }
        Ok(())
    }

    /// Every output row of a run, read through the schema versions it is bound to.
    pub(crate) fn read_outputs(&mut self, run_id: &str) -> Result<Vec<crate::engine::OutputRow>> {
        let mut bindings: Vec<(String, i64)> = self.run_bindings(run_id)?.into_iter().collect();
        bindings.sort();
        let mut rows = Vec::new();
        let mut seen_tables = HashSet::new();
        for (key, version) in bindings {
            let table = self.schema_version(&key, version)?;
            // Two keys that share a table (allowed before TABLE_NAME_CONFLICT existed) would
            // show every row twice.
            if !seen_tables.insert(table.table.clone()) {
                continue;
            }
            for (node_id, iteration, value) in table.read_run(&self.conn, run_id)? {
                rows.push(crate::engine::OutputRow {
                    table: key.clone(),
                    node_id,
                    iteration,
                    value,
                });
            }
        }
        Ok(rows)
    }
}
