//! The engine and its configuration. What it does is spread by concern: runs' lifecycle
//! (`runs.rs`), driving a run (`drive/`), decisions (`decision/`), read views
//! (`inspect.rs`). See ARCHITECTURE.md for the contract with the JS driver.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::apply::Tx;
use crate::error::Result;
use crate::events::{Event, log_committed};
use crate::logs::ENGINE;
use crate::memory::ActiveRun;
use crate::owner::{self, LeaseKeeper};
use crate::schemas::SchemaCache;
use crate::store::{self, Store};

pub use crate::api::{
    AgentCall, ClaimOptions, NewRun, OutputRef, OutputRow, ParentRef, RunError, Snapshot, Step,
    TaskError, TaskResult, TaskToRun,
};
pub use crate::ident::check_run_id;

/// The run's log in its log directory (`DAG_RUN_LOG_FILE`): the driver appends a line per
/// command step and handler it runs.
pub const RUN_LOG_FILE: &str = "run.log";

/// How an engine is set up.
pub(crate) struct Config {
    pub db_path: PathBuf,
    /// Where command tasks' stdout/stderr logs go: `<db stem>.logs/<run id>/`.
    pub log_dir: PathBuf,
    /// Recorded on the runs this engine drives (`host:pid:start-time:n`).
    pub owner: String,
    /// How long a claim on a run lasts without renewal (see `owner.rs`).
    pub lease_ms: i64,
    /// "Now", in milliseconds since the epoch.
    pub clock: crate::time::Clock,
}

/// Waits for commits of other connections (`Engine::change_waiter`).
pub struct ChangeWaiter(Box<dyn store::ChangeListener>);

impl ChangeWaiter {
    /// Waits up to `timeout_ms`; true when another connection committed (or may have).
    pub fn wait(&mut self, timeout_ms: u64) -> Result<bool> {
        self.0.wait(timeout_ms)
    }
}

pub struct Engine {
    pub(crate) store: Box<dyn Store>,
    pub(crate) config: Config,
    /// Renews this engine's leases while it lives; started when it first owns a run.
    lease_keeper: Option<LeaseKeeper>,
    pub(crate) schemas: SchemaCache,
    /// The runs this engine drives, in memory.
    pub(crate) runs: HashMap<String, ActiveRun>,
    /// Runs this engine may hold in the database without driving them: a claim or a driving
    /// call failed (the database out of reach, say) after which the row may still name this
    /// engine as owner. `release_run` lets go of them too, or the lease keeper would renew
    /// their leases for as long as this engine lives and nobody would ever take them.
    pub(crate) unsure: std::collections::HashSet<String>,
    /// Committed events kept for `take_events` (while someone in-process listens).
    events: Vec<Event>,
    buffer_events: bool,
}

impl Engine {
    /// Opens (or creates) a database for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, store::OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: store::OpenOptions) -> Result<Engine> {
        let path = path.as_ref();
        let log_dir = match path.to_str() {
            // A server database has no file to put logs next to: `./smithers.logs`.
            Some(url) if store::is_postgres_url(url) => {
                std::path::absolute("smithers.logs").unwrap_or_else(|_| "smithers.logs".into())
            }
            _ => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "smithers".into());
                std::path::absolute(path)
                    .unwrap_or_else(|_| path.to_path_buf())
                    .with_file_name(format!("{stem}.logs"))
            }
        };
        Ok(Engine {
            store: store::open(path, options)?,
            config: Config {
                db_path: path.to_path_buf(),
                log_dir,
                owner: owner::new_owner_id(),
                lease_ms: owner::DEFAULT_LEASE_MS,
                clock: crate::time::system_clock(),
            },
            lease_keeper: None,
            schemas: SchemaCache::default(),
            runs: HashMap::new(),
            unsure: std::collections::HashSet::new(),
            events: Vec::new(),
            buffer_events: false,
        })
    }

    pub fn log_dir(&self) -> &Path {
        &self.config.log_dir
    }

    pub fn set_log_dir(&mut self, dir: impl Into<PathBuf>) {
        self.config.log_dir = dir.into();
    }

    pub fn db_path(&self) -> &Path {
        &self.config.db_path
    }

    pub fn owner_id(&self) -> &str {
        &self.config.owner
    }

    /// In-process subscribers turn this on; events are always persisted either way.
    pub fn set_event_buffering(&mut self, on: bool) {
        self.buffer_events = on;
        if !on {
            self.events.clear();
        }
    }

    /// Events committed since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Changes whenever another connection commits: a cheap way for a driver to notice
    /// decisions made by other processes.
    pub fn data_version(&self) -> Result<i64> {
        self.store.change_counter()
    }

    /// A waiter woken by other connections' commits without polling, where the store can push
    /// them (PostgreSQL: LISTEN/NOTIFY); None on SQLite (poll `data_version`). It has a
    /// connection of its own and may be used from another thread.
    pub fn change_waiter(&self) -> Result<Option<ChangeWaiter>> {
        Ok(self.store.listener()?.map(ChangeWaiter))
    }

    /// How long a claim lasts without renewal; renewed every third of it.
    pub fn set_lease_ms(&mut self, lease_ms: i64) {
        self.config.lease_ms = lease_ms.max(30);
        self.lease_keeper = None;
    }

    pub fn is_driving(&self, run_id: &str) -> bool {
        self.runs.contains_key(run_id)
    }

    pub(crate) fn now(&self) -> i64 {
        (self.config.clock)()
    }

    /// "Now" as this engine sees it (its clock), in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now()
    }

    /// Takes "now" from `clock` from here on (timers' due times, leases, timestamps): a
    /// [`crate::time::ManualClock`] in tests. The lease keeper restarts with it.
    pub fn set_clock(&mut self, clock: crate::time::Clock) {
        self.config.clock = clock;
        self.lease_keeper = None;
    }

    /// The expiry of a lease taken now, with the thread that renews it started.
    pub(crate) fn lease_until(&mut self) -> Result<i64> {
        if self.lease_keeper.is_none() {
            self.lease_keeper = Some(LeaseKeeper::start(
                self.store.renewer()?,
                self.config.owner.clone(),
                self.config.lease_ms,
                self.config.clock.clone(),
            )?);
            tracing::debug!(
                target: ENGINE,
                owner = self.config.owner.as_str(),
                lease_ms = self.config.lease_ms,
                "lease keeper started"
            );
        }
        Ok(self.now() + self.config.lease_ms)
    }

    /// Runs `f` in one write transaction: everything it writes commits together, or nothing
    /// does. Its events reach subscribers once it committed.
    pub(crate) fn transaction<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let now = self.now();
        let store = &*self.store;
        store.begin()?;
        let mut tx = Tx {
            store,
            schemas: &mut self.schemas,
            events: Vec::new(),
            now,
        };
        let result = f(&mut tx).and_then(|v| store.commit().map(|()| v));
        let mut events = std::mem::take(&mut tx.events);
        match result {
            Ok(v) => {
                // PostgreSQL gives the feed's ids at commit, in the order of the inserts.
                if let Some(base) = store.committed_feed_base() {
                    for (i, e) in (0_i64..).zip(events.iter_mut()) {
                        e.feed_id = Some(base + i);
                    }
                }
                self.publish(events);
                Ok(v)
            }
            Err(e) => {
                store.rollback();
                // Schema versions registered inside the rolled-back transaction do not exist.
                self.schemas.clear();
                Err(e)
            }
        }
    }

    pub(crate) fn publish(&mut self, events: Vec<Event>) {
        log_committed(&events);
        if self.buffer_events {
            self.events.extend(events);
        }
    }
}
