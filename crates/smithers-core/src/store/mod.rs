//! The store boundary: everything the engine asks of its database, as one interface
//! ([`Store`]), so that another database is an implementation of it, not a fork of the engine.
//! SQLite (`sqlite/`, one file, WAL) is the embedded default; PostgreSQL (`postgres/`, a
//! `postgres://` URL) lets several processes on several hosts share runs.
//!
//! The interface is synchronous and transactional: a driving call (submit, complete,
//! advance), a decision or a claim opens one write transaction ([`Transactions::begin`]), asks
//! and writes through the methods below, and commits (or rolls back) once. Reads under an
//! open transaction see its writes and hold its lock, which is how first-writer-wins
//! decisions, fencing and claims work: the check and the write happen in one transaction
//! (on SQLite its `BEGIN IMMEDIATE` lock; on a server database `SELECT … FOR UPDATE` or a
//! conditional `UPDATE`). States come back typed: a stored state that is not one of its
//! machine's is `CORRUPT_STORE`. Why it is synchronous, and how a server database fits: see
//! ARCHITECTURE.md ("The store").

mod postgres;
pub(crate) mod shared;
mod sqlite;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::api::{ParentRef, RunError};
use crate::audit::AuditEntry;
use crate::deliveries::{Delivery, DeliveryFilter, LinkUse, NewDelivery, Settled};
use crate::error::Result;
use crate::events::{Event, EventKind};
use crate::machines::{
    AgentRecord, ApprovalRequest, ApprovalStatus, AttemptState, DecisionRow, HistoryRow,
    NodeChange, NodeKey, NodeState, RunChange, RunInsert, RunStatus,
};
use crate::output::OutputTable;
use crate::timers::{NewTimer, TimerKind, TimerRow};
use crate::views::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, LoopSummary, NodeSummary, OrphanCursor,
    RunFilter, RunSummary, StoreMetrics,
};

pub use postgres::{is_postgres_url, pg_client, redact};
pub use sqlite::SCHEMA_VERSION;

/// How a database is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The file must exist already (every command but `up` and `serve`): a mistyped path is
    /// `DB_NOT_FOUND`, not a new empty database.
    pub must_exist: bool,
    /// Read only (`ps`, `inspect`, `why`, `logs`): nothing is written, not even a migration.
    /// A database of another schema version is refused (`SCHEMA_TOO_NEW`, `SCHEMA_OUTDATED`).
    pub read_only: bool,
}

/// Opens the store a database string names — a `postgres://` or `postgresql://` URL is a
/// PostgreSQL database, anything else a SQLite file — bringing its schema up to date unless
/// read only.
pub(crate) fn open(path: &Path, options: OpenOptions) -> Result<Box<dyn Store>> {
    match path.to_str() {
        Some(url) if is_postgres_url(url) => Ok(Box::new(postgres::PgStore::open(url, options)?)),
        _ => Ok(Box::new(sqlite::SqliteStore::open(path, options)?)),
    }
}

/// Opens a store for copying rows between databases (`smithers migrate --from --to`,
/// `crate::migrate`): the [`Store`] and its raw rows ([`CopyRows`]).
pub(crate) fn open_copy(path: &Path, options: OpenOptions) -> Result<Box<dyn CopyStore>> {
    match path.to_str() {
        Some(url) if is_postgres_url(url) => Ok(Box::new(postgres::PgStore::open(url, options)?)),
        _ => Ok(Box::new(sqlite::SqliteStore::open(path, options)?)),
    }
}

/// A store whose tables can be read and written row by row, whatever they hold.
pub(crate) trait CopyStore: Store + CopyRows {}

impl<T: Store + CopyRows> CopyStore for T {}

/// One value of a row as a copy carries it from one store to another: SQLite's storage
/// classes (PostgreSQL's BOOLEAN travels as 0/1, as SQLite keeps it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// Raw rows of any table of the database, for `crate::migrate`: read in one consistent
/// snapshot of the source, written inside one write transaction of the target.
pub(crate) trait CopyRows {
    /// Starts a read-only transaction whose reads all see one moment of the database (SQLite:
    /// a WAL read snapshot; PostgreSQL: REPEATABLE READ).
    fn begin_snapshot(&self) -> Result<()>;
    fn end_snapshot(&self);
    /// The names of the database's tables (of its schema, on PostgreSQL).
    fn table_names(&self) -> Result<Vec<String>>;
    fn count_rows(&self, table: &str) -> Result<i64>;
    /// Hands every row of `table` (its `columns`, in that order) to `f`, one at a time.
    fn scan_rows(
        &self,
        table: &str,
        columns: &[String],
        f: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
    ) -> Result<()>;
    /// Inserts rows of `columns`, each value converted to its column's type (a value that
    /// does not fit is `MIGRATE_VALUE_UNFIT`).
    fn insert_rows(&self, table: &str, columns: &[String], rows: &[Vec<Cell>]) -> Result<()>;
}

/// Every part of the interface; implemented by each store.
pub(crate) trait Store:
    Transactions
    + RunRows
    + NodeRows
    + AttemptRows
    + ApprovalRows
    + OutputRows
    + EventRows
    + Views
    + DeliveryRows
    + TimerRows
    + AuditRows
{
}

impl<T> Store for T where
    T: Transactions
        + RunRows
        + NodeRows
        + AttemptRows
        + ApprovalRows
        + OutputRows
        + EventRows
        + Views
        + DeliveryRows
        + TimerRows
        + AuditRows
{
}

/// Wakes a waiter when another connection commits, without polling (PostgreSQL's
/// LISTEN/NOTIFY); on a connection of its own, used from a thread of its own.
pub(crate) trait ChangeListener: Send {
    /// Waits up to `timeout_ms` for a commit of another connection; true when one came (or
    /// may have: the connection was lost and made again).
    fn wait(&mut self, timeout_ms: u64) -> Result<bool>;
}

/// Renews the leases of an owner's runs from a thread of its own, on a connection of its own.
pub(crate) trait LeaseRenewer: Send {
    /// Moves the expiry of every open run `owner` holds to `until`; returns how many.
    fn renew(&mut self, owner: &str, until: i64) -> Result<usize>;
}

pub(crate) trait Transactions: Send {
    /// Starts a write transaction (SQLite: taking the file's write lock at once; PostgreSQL:
    /// locking each run's row as the transaction first touches it).
    fn begin(&self) -> Result<()>;
    fn commit(&self) -> Result<()>;
    fn rollback(&self);
    /// The feed id of the first event the last committed transaction inserted, when the store
    /// gives feed ids at commit (PostgreSQL) rather than as events are inserted: that
    /// transaction's events have the ids that follow, in the order they were inserted.
    fn committed_feed_base(&self) -> Option<i64> {
        None
    }
    /// Makes the open write transaction the schema's only writer of shared state (PostgreSQL:
    /// its advisory lock; SQLite's write transactions are that already).
    fn lock_all(&self) -> Result<()> {
        Ok(())
    }
    /// Changes whenever another connection commits: a cheap way to notice decisions made by
    /// other processes.
    fn change_counter(&self) -> Result<i64>;
    fn renewer(&self) -> Result<Box<dyn LeaseRenewer>>;
    /// A listener for other connections' commits, where the database can push them (None:
    /// poll `change_counter`).
    fn listener(&self) -> Result<Option<Box<dyn ChangeListener>>>;
}

/// A run's row, as a claim or a decision reads it.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub status: RunStatus,
    pub owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub workflow_name: String,
    pub workflow_path: Option<String>,
    pub input_json: String,
    pub error: Option<RunError>,
    pub started_by: Option<String>,
}

pub(crate) trait RunRows {
    fn run_exists(&self, run_id: &str) -> Result<bool>;
    fn run(&self, run_id: &str) -> Result<Option<RunRow>>;
    /// Inside a write transaction, locks the run's row unless another transaction holds it
    /// now (PostgreSQL's `SKIP LOCKED`): false then. SQLite has one writer: always true.
    fn try_lock_run(&self, _run_id: &str) -> Result<bool> {
        Ok(true)
    }
    fn insert_run(&self, run: &RunInsert, now: i64) -> Result<()>;
    fn set_run_workflow(&self, run_id: &str, name: &str, path: Option<&str>) -> Result<()>;
    /// The name a render gives the workflow (when it changed).
    fn set_workflow_name(&self, run_id: &str, name: &str) -> Result<()>;
    fn set_run(&self, run_id: &str, status: RunStatus, change: &RunChange, now: i64) -> Result<()>;
    /// Lets go of a run this owner holds (owner and lease cleared).
    fn release_run(&self, run_id: &str, owner: &str) -> Result<()>;
    fn mark_unresumable(&self, run_id: &str, error: &RunError, now: i64) -> Result<()>;
    /// The task whose sub-run this run is.
    fn caller(&self, run_id: &str) -> Result<Option<ParentRef>>;
    /// Open sub-runs of `root` and theirs (`tree`: `root` itself and its sub-runs).
    fn open_sub_runs(&self, root: &str, tree: bool) -> Result<Vec<(String, RunStatus)>>;
    /// Statuses of the latest `limit` decisions on `node_id` in other runs of `run_id`'s
    /// workflow, newest first, not made by `except_by`.
    fn decisions_elsewhere(
        &self,
        run_id: &str,
        node_id: &str,
        except_by: &str,
        limit: u32,
    ) -> Result<Vec<ApprovalStatus>>;
}

/// A node as a claim loads it into memory.
#[derive(Debug, Clone)]
pub(crate) struct NodeRow {
    pub node_id: String,
    pub iteration: i64,
    pub state: NodeState,
    pub attempts: i64,
    pub loop_id: Option<String>,
    pub approval: Option<ApprovalStatus>,
}

/// One node's row.
#[derive(Debug, Clone)]
pub(crate) struct NodeDetail {
    pub state: NodeState,
    pub attempts: i64,
    pub output_table: String,
    pub error_json: Option<String>,
    pub sub_run_id: Option<String>,
}

/// A node a graph adds.
#[derive(Debug, Clone)]
pub(crate) struct NodeInsert<'a> {
    pub node_id: &'a str,
    pub iteration: i64,
    pub output_table: &'a str,
    pub loop_id: Option<&'a str>,
    pub label: Option<&'a str>,
    pub ordinal: i64,
}

pub(crate) trait NodeRows {
    /// Adds nodes (pending) and loops a graph has and the run does not.
    fn insert_nodes(&self, run_id: &str, nodes: &[NodeInsert<'_>], now: i64) -> Result<()>;
    fn insert_loops(&self, run_id: &str, loop_ids: &[&str]) -> Result<()>;
    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRow>>;
    fn loops(&self, run_id: &str) -> Result<Vec<(String, i64, bool)>>;
    fn node(&self, key: &NodeKey) -> Result<Option<NodeDetail>>;
    /// `(node, iteration, state, attempts)` of the nodes of a run in one of `states`.
    fn nodes_in(
        &self,
        run_id: &str,
        states: &[NodeState],
    ) -> Result<Vec<(String, i64, NodeState, i64)>>;
    fn set_node(
        &self,
        key: &NodeKey,
        state: NodeState,
        change: &NodeChange,
        now: i64,
    ) -> Result<()>;
    fn cancel_open_nodes(&self, run_id: &str, now: i64) -> Result<()>;
    /// Nodes that waited on a sub-run and no longer wait (it ended).
    fn woken_nodes(&self, run_id: &str) -> Result<Vec<(String, i64, NodeState)>>;
    /// Nodes of the run that wait on a sub-run which waits only on timers (`waiting-timer`).
    fn nodes_on_timer_sub_runs(&self, run_id: &str) -> Result<Vec<(String, i64)>>;
    /// A node of the run that was rejected, if any.
    fn rejected_node(&self, run_id: &str) -> Result<Option<String>>;
    fn has_node(&self, run_id: &str, node_id: &str) -> Result<bool>;
    fn set_loop(&self, run_id: &str, loop_id: &str, iteration: i64, done: bool) -> Result<()>;
}

pub(crate) trait AttemptRows {
    fn open_attempt(&self, key: &NodeKey, attempt: i64, owner: &str, now: i64) -> Result<()>;
    fn close_attempt(
        &self,
        key: &NodeKey,
        attempt: i64,
        state: AttemptState,
        error_json: Option<&str>,
        only_running: bool,
        now: i64,
    ) -> Result<()>;
    fn record_refused_answer(
        &self,
        key: &NodeKey,
        attempt: i64,
        error_json: &str,
        now: i64,
    ) -> Result<()>;
    fn set_attempt_logs(
        &self,
        key: &NodeKey,
        attempt: i64,
        stdout: &str,
        stderr: &str,
    ) -> Result<()>;
    fn set_attempt_exit(&self, key: &NodeKey, attempt: i64, exit_code: Option<i32>) -> Result<()>;
    fn set_attempt_agent(&self, key: &NodeKey, attempt: i64, record: &AgentRecord) -> Result<()>;
    fn cancel_attempts(&self, run_id: &str, now: i64) -> Result<()>;
    fn failed_attempts(&self, key: &NodeKey) -> Result<i64>;
    fn attempt_stdout(&self, key: &NodeKey, attempt: i64) -> Result<Option<String>>;
    /// The stdout log of the latest finished attempt before `attempt`.
    fn previous_stdout(&self, key: &NodeKey, attempt: i64) -> Result<Option<String>>;
}

/// An approval row.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalRow {
    pub node_id: String,
    pub iteration: i64,
    pub status: ApprovalStatus,
    pub mode: String,
    pub on_deny: String,
    pub output_table: String,
    pub request_json: String,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub note: Option<String>,
    pub decision_json: Option<String>,
    pub kind: String,
    pub round: i64,
    pub requested_at_ms: i64,
}

/// A decided approval of a run with its node, as a driver of the run picks it up.
#[derive(Debug, Clone)]
pub(crate) struct DecidedRow {
    pub node_id: String,
    pub iteration: i64,
    pub node_state: NodeState,
    pub status: ApprovalStatus,
    pub output_table: String,
    pub node_error_json: Option<String>,
    pub request_json: String,
}

/// An approval that carries inputs or a push-back, for the tasks it reaches.
#[derive(Debug, Clone)]
pub(crate) struct InputRow {
    pub node_id: String,
    pub iteration: i64,
    pub status: ApprovalStatus,
    pub round: i64,
    pub inputs_json: Option<String>,
    pub pushback_json: Option<String>,
    pub request_json: String,
}

pub(crate) trait ApprovalRows {
    fn approval(&self, key: &NodeKey) -> Result<Option<ApprovalRow>>;
    /// A node's request: the open one, else its latest (any iteration unless given).
    fn approval_of_node(
        &self,
        run_id: &str,
        node_id: &str,
        iteration: Option<i64>,
    ) -> Result<Option<ApprovalRow>>;
    /// The open requests of a run, oldest first.
    fn open_requests(&self, run_id: &str, iteration: Option<i64>) -> Result<Vec<ApprovalRow>>;
    /// The state of a node (its latest iteration unless given), for a request that names it.
    fn node_state_named(
        &self,
        run_id: &str,
        node_id: &str,
        iteration: Option<i64>,
    ) -> Result<Option<NodeState>>;
    /// Inserts a request, or (a review's next round) reopens a pushed-back one.
    fn request_approval(
        &self,
        key: &NodeKey,
        request: &ApprovalRequest,
        status: ApprovalStatus,
        now: i64,
    ) -> Result<()>;
    fn decide(&self, key: &NodeKey, decision: &DecisionRow, now: i64) -> Result<()>;
    fn withdraw_approval(
        &self,
        key: &NodeKey,
        decided_by: Option<&str>,
        note: Option<&str>,
        now: i64,
    ) -> Result<()>;
    fn withdraw_requests(&self, run_id: &str) -> Result<()>;
    fn forget_gate(&self, key: &NodeKey) -> Result<()>;
    fn reopen_review(&self, key: &NodeKey) -> Result<()>;
    /// Replaces an open request's JSON (an escalation widened who may decide); false when the
    /// request is no longer open.
    fn set_request_json(&self, key: &NodeKey, request_json: &str) -> Result<bool>;
    fn append_history(&self, key: &NodeKey, row: &HistoryRow, now: i64) -> Result<()>;
    /// Earlier rounds of a review, oldest first, as JSON objects (`iteration`, `status`,
    /// `requestedAt`, `at`, `by`, `note`, `inputs`, `output`, `stdoutPath`).
    fn review_history(&self, key: &NodeKey) -> Result<Vec<Value>>;
    /// Decided approvals of a run, with their nodes.
    fn decided(&self, run_id: &str) -> Result<Vec<DecidedRow>>;
    /// Approvals of a run that carry inputs or a push-back, in the order they were decided.
    fn input_rows(&self, run_id: &str) -> Result<Vec<InputRow>>;
}

/// Output tables (one per output key, one column per field) and the versions of their
/// schemas.
pub(crate) trait OutputRows {
    /// Creates a key's table, or adds the columns a newer schema declares.
    fn ensure_table(&self, table: &OutputTable) -> Result<()>;
    /// The columns a table has now, with their declared types.
    fn table_columns(&self, table: &str) -> Result<Vec<(String, String)>>;
    fn write_output(&self, table: &OutputTable, key: &NodeKey, value: &Value) -> Result<()>;
    fn read_output(&self, table: &OutputTable, key: &NodeKey) -> Result<Option<Value>>;
    /// Every row of a run, as `(node, iteration, value)`.
    fn read_outputs(&self, table: &OutputTable, run_id: &str) -> Result<Vec<(String, i64, Value)>>;
    fn delete_output(&self, table: &OutputTable, key: &NodeKey) -> Result<()>;
    fn run_has_rows(&self, table: &str, run_id: &str) -> Result<bool>;

    /// The JSON of one version of a key's schema.
    fn schema_json(&self, key: &str, version: i64) -> Result<Option<String>>;
    /// The version a run reads and writes a key through.
    fn bound_version(&self, run_id: &str, key: &str) -> Result<Option<i64>>;
    /// The version of a key's latest schema.
    fn latest_version(&self, key: &str) -> Result<Option<i64>>;
    fn version_of_schema(&self, key: &str, schema_json: &str) -> Result<Option<i64>>;
    fn max_version(&self, key: &str) -> Result<i64>;
    /// Another key whose table has this name.
    fn other_key_of_table(&self, table: &str, key: &str) -> Result<Option<String>>;
    fn insert_schema_version(
        &self,
        table: &OutputTable,
        version: i64,
        schema_json: &str,
        now: i64,
    ) -> Result<()>;
    fn bind_schema(&self, run_id: &str, key: &str, version: i64) -> Result<()>;
    fn schema_bindings(&self, run_id: &str) -> Result<HashMap<String, i64>>;
}

pub(crate) trait EventRows {
    /// Appends an event: its `seq` in the run and its place in the database-wide feed.
    fn insert_event(
        &self,
        run_id: &str,
        kind: EventKind,
        timestamp_ms: i64,
        payload_json: &str,
    ) -> Result<(i64, i64)>;
    fn events(&self, run_id: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>>;
    fn feed(&self, after_id: i64, limit: i64) -> Result<Vec<Event>>;
    fn feed_head(&self) -> Result<i64>;
}

/// The read views of operators (`ps`, `inspect`, the inbox).
pub(crate) trait Views {
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;
    fn run_summary(&self, run_id: &str) -> Result<Option<RunSummary>>;
    fn node_summaries(&self, run_id: &str) -> Result<Vec<NodeSummary>>;
    fn run_approvals(&self, run_id: &str) -> Result<Vec<ApprovalSummary>>;
    fn loop_summaries(&self, run_id: &str) -> Result<Vec<LoopSummary>>;
    fn agent_attempts(&self, run_id: &str) -> Result<Vec<AttemptLog>>;
    fn approvals(
        &self,
        filter: &ApprovalFilter,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalSummary>>;
    /// Runs `running` with no owner (or any owner, `include_dead`), oldest change first,
    /// after `after`, not marked unresumable since, with their `updated_at_ms`: the first
    /// `limit` that `keep` keeps.
    fn orphan_candidates(
        &self,
        include_dead: bool,
        after: Option<&OrphanCursor>,
        limit: usize,
        keep: &mut dyn FnMut(&mut RunSummary) -> bool,
    ) -> Result<Vec<(RunSummary, i64)>>;
    fn attempt_logs(&self, run_id: &str, filter: &LogFilter) -> Result<Vec<AttemptLog>>;
    /// Runs by workflow and status, and pending approvals by workflow.
    fn store_metrics(&self) -> Result<StoreMetrics>;
}

/// Outgoing notifications (`deliveries.rs`): webhook deliveries, claimed by one sender at a
/// time, and the single-use decision links they carry.
pub(crate) trait DeliveryRows {
    /// Writes the rows that do not exist yet (`pending`, due at `now`); returns how many.
    fn insert_deliveries(&self, rows: &[NewDelivery], now: i64) -> Result<usize>;
    /// Moves the feed position turned into deliveries forward to `cursor` (never back).
    fn advance_delivery_cursor(&self, cursor: i64) -> Result<()>;
    fn delivery_cursor(&self) -> Result<Option<i64>>;
    /// Some delivery is due at `now` (pending and due, or sending with an expired claim).
    fn deliveries_due(&self, now: i64) -> Result<bool>;
    /// Claims up to `limit` due deliveries to `targets` for `claimer` until `now + lease_ms`,
    /// counting an attempt on each; returned with their bodies.
    fn claim_deliveries(
        &self,
        claimer: &str,
        targets: &[String],
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>>;
    /// Settles a delivery `claimer` holds (`status`: delivered, pending or failed); false
    /// when it no longer holds it.
    fn settle_delivery(&self, id: &str, claimer: &str, settled: &Settled<'_>) -> Result<bool>;
    fn delivery_status(&self, id: &str) -> Result<Option<String>>;
    /// A failed delivery made due again at `now`, its attempts counted from zero.
    fn reopen_delivery(&self, id: &str, now: i64) -> Result<Delivery>;
    fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
    /// Records the first use of a link; false when it was used before.
    fn insert_link_use(&self, link: &LinkUse, now: i64) -> Result<bool>;
    /// When a link was used and what it did.
    fn link_use(&self, link_id: &str) -> Result<Option<(i64, Option<Value>)>>;
    fn set_link_outcome(&self, link_id: &str, outcome: &Value) -> Result<()>;
    fn delete_link_use(&self, link_id: &str) -> Result<()>;
}

/// Durable timers (`timers.rs`): due times as rows, fired once by a conditional update.
pub(crate) trait TimerRows {
    /// Schedules a timer unless it exists already (a restart does not move its due time);
    /// returns the due time stored.
    fn schedule_timer(&self, timer: &NewTimer, now: i64) -> Result<i64>;
    /// The earliest due time of a scheduled timer.
    fn next_timer_due(&self) -> Result<Option<i64>>;
    /// Scheduled timers due at `now`, earliest first; with `run`, that run's only.
    fn due_timers(&self, now: i64, run: Option<&str>, limit: usize) -> Result<Vec<TimerRow>>;
    /// `scheduled` → `fired` by `by` at `now`; false when it is not scheduled any more (another
    /// engine fired it first). Inside the transaction that carries out its effect.
    fn take_timer(
        &self,
        key: &NodeKey,
        kind: TimerKind,
        round: i64,
        by: &str,
        now: i64,
    ) -> Result<bool>;
    fn set_timer_outcome(
        &self,
        key: &NodeKey,
        kind: TimerKind,
        round: i64,
        outcome: &str,
    ) -> Result<()>;
    fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRow>>;
    /// `<Timer>` nodes of a run: still scheduled, or fired (their node finished).
    fn timer_nodes(&self, run_id: &str, fired: bool) -> Result<Vec<(String, i64)>>;
}

/// One vote on a quorum gate, as `_smithers_votes` keeps it: on the request asked at
/// `requested_at_ms` (a gate asked again starts its count afresh).
#[derive(Debug, Clone)]
pub(crate) struct VoteRow {
    pub requested_at_ms: i64,
    pub voter: String,
    /// `approve` or `deny`.
    pub verdict: String,
    /// A denial by a veto holder.
    pub veto: bool,
    pub note: Option<String>,
    pub at_ms: i64,
}

/// The decision log (`audit.rs`): a hash chain of every decision and vote, appended in the
/// decision's transaction, and the votes of quorum gates. A store keeps the entries as sealed
/// (the hashes are the core's) and the head (`seq`, `entry_hash` of the last entry) beside
/// them, written with each entry, so an entry removed from the end is found too.
pub(crate) trait AuditRows {
    /// The head the next entry chains to: the recorded head, else the last entry.
    fn audit_tail(&self) -> Result<Option<(i64, String)>>;
    /// Appends a sealed entry and makes it the head.
    fn insert_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Entries after `after_seq`, oldest first, at most `limit`.
    fn audit_entries(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    /// The head recorded with the log.
    fn audit_head(&self) -> Result<Option<(i64, String)>>;
    /// Records a vote; false when this voter voted on this request before.
    fn insert_vote(&self, key: &NodeKey, vote: &VoteRow) -> Result<bool>;
    /// The votes on the request asked at `requested_at_ms`, oldest first.
    fn votes(&self, key: &NodeKey, requested_at_ms: i64) -> Result<Vec<VoteRow>>;
}

/// A value bound to the approvals listing's query ([`approval_listing`]).
pub(crate) enum ListingParam<'a> {
    Text(&'a str),
    Int(i64),
}

/// The approvals listing's query (`pendingApprovals`, the inbox, `GET /v1/approvals`), with
/// only the conditions the filter uses: a catch-all `(?1 IS NULL OR a.status = ?1)` keeps
/// the planner from the `(status, requested_at_ms, run_id, node_id, iteration)` index, so the
/// first page sorted every matching row (about 1 s at 100,000 pending gates). Written this
/// way the database walks that index in the listing's order from the cursor and stops after
/// `limit` rows. `place(n, param)` writes the n-th (1-based) placeholder in the store's
/// dialect; `cols` is the store's column list; `seed_collate` follows the run id that seeds
/// the sub-run walk (PostgreSQL: ` COLLATE "C"`, as the run ids compare).
///
/// Every status at once (`status: "all"`, `None` here) is the same walk once per status,
/// each from the cursor and stopped after the page (plus `offset`) rows, merged: the index
/// leads with the status, so a listing of all of them in one order has no index of its own
/// to walk, and sorting every approval of the database (what it did before) grows with it.
pub(crate) fn approval_listing<'a>(
    cols: &str,
    filter: &'a ApprovalFilter,
    status: Option<&'a str>,
    seed_collate: &str,
    place: &dyn Fn(usize, &ListingParam<'_>) -> String,
) -> (String, Vec<ListingParam<'a>>) {
    let mut params: Vec<ListingParam<'a>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let bind = |params: &mut Vec<ListingParam<'a>>, p: ListingParam<'a>| -> String {
        let text = place(params.len() + 1, &p);
        params.push(p);
        text
    };
    let mut with = String::new();
    if let Some(run_id) = filter.run_id.as_deref() {
        // A caller waits on its sub-runs' gates: the run and its descendants.
        let seed = bind(&mut params, ListingParam::Text(run_id));
        with = format!(
            "WITH RECURSIVE sub(id) AS (SELECT {seed}{seed_collate} UNION SELECT s.run_id FROM _smithers_runs s \
             JOIN sub ON s.parent_run_id = sub.id) "
        );
        conds.push("a.run_id IN (SELECT id FROM sub)".into());
    }
    let status_param = status.map(|status| bind(&mut params, ListingParam::Text(status)));
    let by_workflow = filter.workflow_name.is_some();
    if let Some(name) = filter.workflow_name.as_deref() {
        let p = bind(&mut params, ListingParam::Text(name));
        conds.push(format!("r.workflow_name = {p}"));
    }
    if let Some(node) = filter.node_id.as_deref() {
        let p = bind(&mut params, ListingParam::Text(node));
        conds.push(format!("a.node_id = {p}"));
    }
    if let Some(c) = filter.after.as_ref() {
        // Row values compare lexicographically: (t, run, node, iteration) > the cursor.
        let t = bind(&mut params, ListingParam::Int(c.requested_at_ms));
        let run = bind(&mut params, ListingParam::Text(&c.run_id));
        let node = bind(&mut params, ListingParam::Text(&c.node_id));
        let it = bind(&mut params, ListingParam::Int(c.iteration));
        conds.push(format!(
            "(a.requested_at_ms, a.run_id, a.node_id, a.iteration) > ({t}, {run}, {node}, {it})"
        ));
    }
    let limit_value = filter.limit.unwrap_or(100).clamp(1, 10_000);
    let offset_value = filter.offset.unwrap_or(0).max(0);
    let limit = bind(&mut params, ListingParam::Int(limit_value));
    let offset = bind(&mut params, ListingParam::Int(offset_value));
    const ORDER: &str = "a.requested_at_ms, a.run_id, a.node_id, a.iteration";
    let where_ = |status: &str| {
        let all: Vec<String> = std::iter::once(format!("a.status = {status}"))
            .chain(conds.iter().cloned())
            .collect();
        format!("WHERE {}", all.join(" AND "))
    };
    let sql = match status_param {
        Some(status) => format!(
            "{with}SELECT {cols} FROM _smithers_approvals a JOIN _smithers_runs r ON r.run_id = a.run_id \
             {} ORDER BY {ORDER} LIMIT {limit} OFFSET {offset}",
            where_(&status)
        ),
        None => {
            // The page's keys, at most `limit + offset` of each status (the statuses are the
            // machine's own names, not user text), then the page's rows by primary key.
            let per_status = bind(
                &mut params,
                ListingParam::Int(limit_value.saturating_add(offset_value)),
            );
            let join_runs = if by_workflow {
                " JOIN _smithers_runs r ON r.run_id = a.run_id"
            } else {
                ""
            };
            let branches: Vec<String> = ApprovalStatus::ALL
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "SELECT * FROM (SELECT a.requested_at_ms AS t, a.run_id AS run, a.node_id AS node, \
                         a.iteration AS it FROM _smithers_approvals a{join_runs} {} ORDER BY {ORDER} \
                         LIMIT {per_status}) s{i}",
                        where_(&format!("'{}'", s.as_str()))
                    )
                })
                .collect();
            format!(
                "{with}SELECT {cols} FROM ({}) k JOIN _smithers_approvals a ON a.run_id = k.run \
                 AND a.node_id = k.node AND a.iteration = k.it JOIN _smithers_runs r ON r.run_id = a.run_id \
                 ORDER BY k.t, k.run, k.node, k.it LIMIT {limit} OFFSET {offset}",
                branches.join(" UNION ALL ")
            )
        }
    };
    (sql, params)
}
