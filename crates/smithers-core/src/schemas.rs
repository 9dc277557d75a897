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

use serde_json::Value;

use crate::api::OutputRow;
use crate::error::{Error, Result};
use crate::output::OutputTable;
use crate::store::Store;

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

impl SchemaCache {
    /// One version of an output key's schema, from the cache or the store.
    fn version(&mut self, store: &dyn Store, key: &str, version: i64) -> Result<Rc<OutputTable>> {
        if let Some(t) = self.versions.get(&(key.to_string(), version)) {
            return Ok(t.clone());
        }
        let Some(schema) = store.schema_json(key, version)? else {
            return Err(Error::UnknownOutputSchema {
                key: key.into(),
                node_id: String::new(),
            });
        };
        let table = Rc::new(OutputTable::new(key, &serde_json::from_str(&schema)?)?);
        self.versions
            .insert((key.to_string(), version), table.clone());
        Ok(table)
    }

    /// The table of an output key as a run sees it: through the version it is bound to (in
    /// `bound` while the run is driven here, else in the store), or, for a key the run never
    /// bound, the latest.
    pub(crate) fn run_table(
        &mut self,
        store: &dyn Store,
        run_id: &str,
        bound: Option<&HashMap<String, i64>>,
        key: &str,
    ) -> Result<Rc<OutputTable>> {
        let version = match bound.and_then(|b| b.get(key)) {
            Some(v) => Some(*v),
            None => match store.bound_version(run_id, key)? {
                Some(v) => Some(v),
                None => store.latest_version(key)?,
            },
        };
        let Some(version) = version else {
            return Err(Error::UnknownOutputSchema {
                key: key.into(),
                node_id: String::new(),
            });
        };
        self.version(store, key, version)
    }

    /// Works out, without writing anything, what registering `schemas` (for a run and the
    /// versions it is bound to, or for no run: a dry check before a run is created) writes;
    /// refuses what cannot be stored.
    pub(crate) fn plan(
        &mut self,
        store: &dyn Store,
        run: Option<(&str, &HashMap<String, i64>)>,
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
            let (version, table) = match self.current.get(key) {
                Some((v, t)) if &t.schema == schema => (*v, t.clone()),
                _ => match store.version_of_schema(key, &serde_json::to_string(schema)?)? {
                    Some(v) => {
                        let table = self.version(store, key, v)?;
                        self.current.insert(key.clone(), (v, table.clone()));
                        (v, table)
                    }
                    None => {
                        let table = Rc::new(OutputTable::new(key, schema)?);
                        check_new_version(store, key, &table)?;
                        let next = store.max_version(key)? + 1;
                        plan.new_versions.push((next, table.clone()));
                        (next, table)
                    }
                },
            };
            let Some((run_id, bound)) = run else { continue };
            match bound.get(key) {
                Some(&bound) if bound == version => {}
                Some(&bound) => {
                    // A render gives the key another schema than the run's rows were written
                    // with: fine while the run has none, refused once it has some.
                    if store.run_has_rows(&table.table, run_id)? {
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

    /// Writes what [`SchemaCache::plan`] worked out, inside the caller's transaction: new
    /// versions (their tables created or given the new columns) and the run's bindings, which
    /// `bound` (the run's in-memory copy) follows. A rollback of that transaction must
    /// [`clear`](SchemaCache::clear) the cache.
    pub(crate) fn apply(
        &mut self,
        store: &dyn Store,
        run_id: &str,
        bound: &mut HashMap<String, i64>,
        plan: &SchemaPlan,
        now: i64,
    ) -> Result<()> {
        // The plan was made before this transaction took the write lock: another process may
        // have registered versions of these keys since (four `smithers up` of a new workflow
        // at once). Under the lock, an identical schema registered meanwhile is taken as it
        // is, and a new one gets the next free number, checked again against what is there.
        let mut registered: HashMap<String, i64> = HashMap::new();
        for (_, table) in &plan.new_versions {
            let schema_json = serde_json::to_string(&table.schema)?;
            let version = match store.version_of_schema(&table.key, &schema_json)? {
                Some(version) => version,
                None => {
                    check_new_version(store, &table.key, table)?;
                    let version = store.max_version(&table.key)? + 1;
                    store.ensure_table(table)?;
                    store.insert_schema_version(table, version, &schema_json, now)?;
                    version
                }
            };
            registered.insert(table.key.clone(), version);
        }
        for (key, planned, table) in &plan.bind {
            let new = plan
                .new_versions
                .iter()
                .any(|(v, t)| v == planned && Rc::ptr_eq(t, table));
            let version = match registered.get(key) {
                Some(&v) if new => v,
                _ => *planned,
            };
            store.bind_schema(run_id, key, version)?;
            self.versions.insert((key.clone(), version), table.clone());
            bound.insert(key.clone(), version);
        }
        for (_, table) in &plan.new_versions {
            if let Some(&version) = registered.get(&table.key) {
                self.current
                    .insert(table.key.clone(), (version, table.clone()));
                self.versions
                    .insert((table.key.clone(), version), table.clone());
            }
        }
        Ok(())
    }
}

impl SchemaCache {
    /// Every output row of a run, read through the schema versions it is bound to.
    pub(crate) fn read_outputs(
        &mut self,
        store: &dyn Store,
        run_id: &str,
    ) -> Result<Vec<OutputRow>> {
        let mut bindings: Vec<(String, i64)> = store.schema_bindings(run_id)?.into_iter().collect();
        bindings.sort();
        let mut rows = Vec::new();
        let mut seen_tables = HashSet::new();
        for (key, version) in bindings {
            let table = self.version(store, &key, version)?;
            // Two keys that share a table (allowed before TABLE_NAME_CONFLICT existed) would
            // show every row twice.
            if !seen_tables.insert(table.table.clone()) {
                continue;
            }
            for (node_id, iteration, value) in store.read_outputs(&table, run_id)? {
                rows.push(OutputRow {
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

/// A schema not seen before for `key`: its table name must be the key's alone, and the
/// columns its fields share with earlier versions must hold what it writes.
fn check_new_version(store: &dyn Store, key: &str, table: &OutputTable) -> Result<()> {
    if let Some(other) = store.other_key_of_table(&table.table, key)? {
        return Err(Error::TableNameConflict {
            key: key.into(),
            other,
            table: table.table.clone(),
        });
    }
    let existing = store.table_columns(&table.table)?;
    for c in &table.columns {
        let wanted = c.codec.sql_type();
        let Some((_, stored)) = existing.iter().find(|(name, _)| *name == c.column) else {
            continue;
        };
        if !column_fits(stored, wanted) {
            return Err(Error::SchemaConflict {
                key: key.into(),
                field: c.field.clone(),
                table: table.table.clone(),
                version: store.max_version(key)?,
                stored: static_type(stored),
                wanted,
            });
        }
    }
    Ok(())
}

impl SchemaPlan {
    /// Logs what the plan wrote, once the transaction that wrote it committed.
    pub(crate) fn log_written(&self, run_id: &str) {
        for (version, table) in &self.new_versions {
            tracing::info!(
                run_id,
                key = table.key.as_str(),
                version,
                table = table.table.as_str(),
                "output schema version registered"
            );
        }
        if !self.bind.is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
            let bound: Vec<String> = self
                .bind
                .iter()
                .map(|(key, version, _)| format!("{key}@{version}"))
                .collect();
            tracing::debug!(run_id, bound = ?bound, "run bound to output schema versions");
        }
    }
}
