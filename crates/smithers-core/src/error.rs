//! Every error the engine reports, each with a stable code.
//!
//! Codes are part of the public contract: the CLI, the Node API and (later) HTTP surface
//! them verbatim, and scripts match on them.

use serde_json::{Value, json};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Codes the engine compares with what it reads back (a node's stored error, a run's
/// failure): the same strings as [`Error::code`] gives their errors.
pub mod codes {
    pub const TASK_FAILED: &str = "TASK_FAILED";
    pub const APPROVAL_DENIED: &str = "APPROVAL_DENIED";
    pub const APPROVAL_REJECTED: &str = "APPROVAL_REJECTED";
    pub const RUN_STUCK: &str = "RUN_STUCK";
    pub const LOOP_MAX_REACHED: &str = "LOOP_MAX_REACHED";
    pub const SUBRUN_FAILED: &str = "SUBRUN_FAILED";
    pub const COMMAND_NOT_STARTED: &str = "COMMAND_NOT_STARTED";
    pub const COMMAND_FAILED: &str = "COMMAND_FAILED";
    pub const TASK_TIMEOUT: &str = "TASK_TIMEOUT";
    pub const INVALID_OUTPUT: &str = "INVALID_OUTPUT";
}

/// A voter's earlier vote on a quorum gate, for `ALREADY_VOTED`.
#[derive(Debug, Clone)]
pub struct PriorVote {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub voter: String,
    pub verdict: String,
    pub at: String,
}

/// Who decided a gate first, for `ALREADY_DECIDED`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "Approval {node_id} (iteration {iteration}) was already {status} by {} at {decided_at}",
    decided_by.as_deref().unwrap_or("an unnamed approver")
)]
pub struct PriorDecision {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Run not found: {run_id}")]
    RunNotFound { run_id: String },

    #[error("Run {run_id} already exists")]
    RunExists { run_id: String },

    #[error("Node {node_id} (iteration {iteration}) not found in run {run_id}")]
    NodeNotFound {
        run_id: String,
        node_id: String,
        iteration: i64,
    },

    #[error("No pending approvals for run: {run_id}")]
    NoPendingApprovals { run_id: String },

    #[error(
        "Multiple pending approvals. Specify --node:\n{}",
        candidates.iter().map(|(n, i)| format!("  {n} (iteration {i})")).collect::<Vec<_>>().join("\n")
    )]
    AmbiguousApproval {
        run_id: String,
        candidates: Vec<(String, i64)>,
    },

    #[error("Invalid run id {0:?}: use 1-128 letters, digits and _ . : -")]
    InvalidRunId(String),

    #[error("{0}")]
    AlreadyDecided(Box<PriorDecision>),

    #[error("Node {node_id} (iteration {iteration}) is not waiting for approval (state: {state})")]
    NotWaiting {
        run_id: String,
        node_id: String,
        iteration: i64,
        state: String,
    },

    #[error("{message}")]
    Forbidden { message: String },

    #[error(
        "{} already voted {} on {} (iteration {}) of run {} at {}: one person counts once",
        .0.voter, .0.verdict, .0.node_id, .0.iteration, .0.run_id, .0.at
    )]
    AlreadyVoted(Box<PriorVote>),

    #[error(
        "{node_id} (iteration {iteration}) of run {run_id} no longer shows what the decider saw (digest {expected}; now {current}): look again and decide on what it shows now"
    )]
    StaleView {
        run_id: String,
        node_id: String,
        iteration: i64,
        expected: String,
        current: String,
    },

    #[error("Run {run_id} is {status}: {message}")]
    RunNotResumable {
        run_id: String,
        status: String,
        message: String,
    },

    #[error(
        "Run {run_id} is being driven by another live process ({owner}); pass force to take it over"
    )]
    RunOwned { run_id: String, owner: String },

    #[error("Run {run_id} is not being driven by this engine; claim it first")]
    RunNotClaimed { run_id: String },

    #[error("Invalid workflow graph: {0}")]
    InvalidGraph(String),

    #[error(
        "Run {run_id}: graph {given} is not the one its plan was built from ({current}); send the graph text"
    )]
    StaleGraph {
        run_id: String,
        given: u64,
        current: u64,
    },

    #[error("Duplicate node id: {0}")]
    DuplicateId(String),

    #[error("Output schema {key:?} is not declared (node {node_id})")]
    UnknownOutputSchema { key: String, node_id: String },

    #[error("{what} {name:?} is not a valid SQL identifier: {why}")]
    InvalidIdentifier {
        what: &'static str,
        name: String,
        why: &'static str,
    },

    #[error("Approval {node_id} in {mode} mode needs options")]
    ApprovalOptionsRequired { node_id: String, mode: String },

    #[error(
        "Approval {node_id} writes {{{}}} to {output:?}, whose schema also requires {}: no decision can fit it (give the approval a decision schema such as approvalDecisionSchema, or make those fields optional)",
        fields.join(", "),
        missing.join(", ")
    )]
    ApprovalSchemaMismatch {
        node_id: String,
        output: String,
        missing: Vec<String>,
        fields: Vec<String>,
    },

    #[error("Invalid JSON Schema for {key:?}: {message}")]
    InvalidSchema { key: String, message: String },

    #[error("Output table {table:?} already exists with a different primary key")]
    TableConflict { table: String },

    #[error("Output of {node_id} does not match schema {key:?}: {}", errors.join("; "))]
    InvalidOutput {
        node_id: String,
        key: String,
        errors: Vec<String>,
    },

    #[error("Input does not match the workflow's input schema: {}", errors.join("; "))]
    InvalidInput { errors: Vec<String> },

    #[error("Invalid decision: {0}")]
    InvalidDecision(String),

    #[error("Approving {node_id} needs the inputs: {}", missing.join(", "))]
    MissingRequiredInputs {
        node_id: String,
        missing: Vec<String>,
    },

    #[error(
        "{node_id} does not declare the input{} {} (declared: {})",
        if keys.len() == 1 { "" } else { "s" },
        keys.join(", "),
        if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
    )]
    UndeclaredInput {
        node_id: String,
        keys: Vec<String>,
        allowed: Vec<String>,
    },

    #[error("{node_id}: required input{} {} not in its input list", if keys.len() == 1 { " is" } else { "s are" }, keys.join(", "))]
    RequiredNotInInput { node_id: String, keys: Vec<String> },

    #[error("{node_id}: input name {name:?} {why}")]
    InvalidInputName {
        node_id: String,
        name: String,
        why: &'static str,
    },

    #[error("{node_id} cannot be pushed back: {why}")]
    PushBackUnsupported { node_id: String, why: &'static str },

    #[error(
        "{node_id} cannot be pushed back while {busy} (which the push-back would run again) is running; push back once it has ended"
    )]
    PushBackBusy { node_id: String, busy: String },

    #[error("Run {run_id} was rejected at {node_id}; no other gate of it can be decided")]
    RunRejected { run_id: String, node_id: String },

    #[error("Task {node_id} has no open attempt {attempt} (iteration {iteration})")]
    NoSuchAttempt {
        node_id: String,
        iteration: i64,
        attempt: i64,
    },

    #[error("Illegal {machine} transition: {from} --{event}--> (not allowed)")]
    IllegalTransition {
        machine: &'static str,
        from: String,
        event: String,
    },

    #[error("No smithers database at {path}: {why}")]
    DbNotFound { path: String, why: &'static str },

    #[error(
        "{path} was written by a newer smithers (database schema v{found}; this one reads v{supported}): upgrade smithers-rs to use it. Nothing was changed"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },

    #[error(
        "{path} has database schema v{found}; this smithers reads v{supported}. A read-only command does not upgrade it: run `smithers migrate --db {path}` (or any command that writes)"
    )]
    SchemaOutdated {
        path: String,
        found: i64,
        supported: i64,
    },

    #[error(
        "Output key {key:?}: field {field:?} is stored as {stored} in table {table:?} (schema v{version} of {key:?}, written by earlier runs), but this workflow declares it as {wanted}. Rename the field or the output key"
    )]
    SchemaConflict {
        key: String,
        field: String,
        table: String,
        version: i64,
        stored: &'static str,
        wanted: &'static str,
    },

    #[error(
        "Output keys {key:?} and {other:?} both map to the SQL table {table:?}: rename one of them"
    )]
    TableNameConflict {
        key: String,
        other: String,
        table: String,
    },

    #[error(
        "Run {run_id} wrote {key:?} rows with schema v{version} of that key; the workflow now gives {key:?} another schema, which cannot read them. Restore the schema the run was started with, or start a new run"
    )]
    SchemaChanged {
        run_id: String,
        key: String,
        version: i64,
    },

    #[error(
        "Run {run_id} belongs to workflow {recorded}, not {given}: resuming it with another workflow would run that workflow's tasks inside it. Pass force to do it anyway"
    )]
    WorkflowMismatch {
        run_id: String,
        recorded: String,
        given: String,
    },

    #[error(
        "The database holds a {what} state smithers does not know: {value:?}. It was written by something other than this engine, or damaged; nothing was changed"
    )]
    CorruptStore { what: &'static str, value: String },

    #[error(
        "The database has a row smithers cannot read: column {column}: {why}. The table was made by something other than this engine, or damaged; nothing was changed"
    )]
    UnreadableRow { column: String, why: String },

    #[error(
        "{to} already holds smithers data ({table}: {rows} row(s)): migrate copies into an empty database only, so nothing is merged or overwritten; nothing was changed"
    )]
    TargetNotEmpty {
        to: String,
        table: String,
        rows: i64,
    },

    #[error("{from} and {to} are the same database: migrate copies from one database to another")]
    SameDatabase { from: String, to: String },

    #[error(
        "Run(s) {} of {from} are being driven (an owner holds a lease on them): a copy now would leave their progress behind. Stop the processes driving them (serve, workers, `smithers up`) or wait for them to park, then migrate again; nothing was changed",
        runs.join(", ")
    )]
    SourceInUse { from: String, runs: Vec<String> },

    #[error(
        "{from} changed while it was being copied (another process committed): the copy was rolled back, nothing was changed. Stop what writes to it and migrate again"
    )]
    SourceChanged { from: String },

    #[error(
        "The copy does not match its source ({what}: {source_value} in the source, {target_value} in the copy): it was rolled back, nothing was changed"
    )]
    MigrateMismatch {
        what: String,
        source_value: String,
        target_value: String,
    },

    #[error(
        "{table}.{column} holds {value}, which the target's {target_type} column cannot hold: nothing was changed"
    )]
    MigrateValueUnfit {
        table: String,
        column: String,
        value: String,
        target_type: String,
    },

    #[error("The engine is closed")]
    EngineClosed,

    #[error("Task {node_id} failed: {message}")]
    TaskFailed { node_id: String, message: String },

    #[error("timed out after {ms} ms")]
    TaskTimeout { ms: u64 },

    #[error("{0}")]
    CommandNotStarted(String),

    #[error("the command {how}")]
    CommandFailed { how: String },

    #[error("{0}")]
    SubRunFailed(String),

    #[error("Approval {node_id} was denied")]
    ApprovalDenied { node_id: String },

    #[error("{node_id} was rejected by {}{}", by.as_deref().unwrap_or("its reviewer"), reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    ApprovalRejected {
        node_id: String,
        by: Option<String>,
        reason: Option<String>,
    },

    #[error("the answer for {node_id} is not JSON: {message}")]
    HumanTaskInvalidJson { node_id: String, message: String },

    #[error("the answer for {node_id} does not fit its schema: {message}")]
    HumanTaskValidationFailed { node_id: String, message: String },

    #[error("Loop {loop_id} reached maxIterations ({max}) without its until condition")]
    LoopMaxReached { loop_id: String, max: u32 },

    #[error("no task can run and nothing is waiting for a decision")]
    RunStuck,

    #[error("Invalid delivery: {0}")]
    InvalidDelivery(String),

    #[error("No delivery {delivery_id}")]
    DeliveryNotFound { delivery_id: String },

    #[error("This link was already used (at {used_at}); a decision link works once")]
    LinkUsed {
        link_id: String,
        used_at: String,
        outcome: Option<Value>,
    },

    #[error("Invalid JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("Database error: {0}")]
    Db(rusqlite::Error),

    #[error("Database error: {}", pg_message(.0))]
    Pg(postgres::Error),

    /// A TLS session with a PostgreSQL server could not be had: its certificate is not
    /// trusted or does not name the host, it does not speak TLS under `sslmode=require`, or
    /// it accepts this client over TLS only under `sslmode=disable`.
    #[error("TLS with {db} failed: {why}")]
    DbTlsFailed { db: String, why: String },

    /// The URL's TLS parameters cannot be used: an unknown `sslmode`, an `sslrootcert` /
    /// `sslcert` / `sslkey` file that cannot be read or holds none. Nothing is opened.
    #[error("The TLS settings of {db} cannot be used: {why}")]
    DbTlsConfig { db: String, why: String },

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The stable code scripts and tests match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::RunNotFound { .. } => "RUN_NOT_FOUND",
            Error::RunExists { .. } => "RUN_EXISTS",
            Error::NodeNotFound { .. } => "NODE_NOT_FOUND",
            Error::NoPendingApprovals { .. } => "NO_PENDING_APPROVALS",
            Error::AmbiguousApproval { .. } => "AMBIGUOUS_APPROVAL",
            Error::InvalidRunId(_) => "INVALID_RUN_ID",
            Error::AlreadyDecided(_) => "ALREADY_DECIDED",
            Error::NotWaiting { .. } => "NOT_WAITING",
            Error::Forbidden { .. } => "FORBIDDEN",
            Error::StaleView { .. } => "STALE_VIEW",
            Error::AlreadyVoted(_) => "ALREADY_VOTED",
            Error::RunNotResumable { .. } => "RUN_NOT_RESUMABLE",
            Error::RunOwned { .. } => "RUN_OWNED",
            Error::RunNotClaimed { .. } => "RUN_NOT_CLAIMED",
            Error::InvalidGraph(_) => "INVALID_GRAPH",
            Error::StaleGraph { .. } => "STALE_GRAPH",
            Error::DuplicateId(_) => "DUPLICATE_ID",
            Error::UnknownOutputSchema { .. } => "UNKNOWN_OUTPUT_SCHEMA",
            Error::InvalidIdentifier { .. } => "INVALID_IDENTIFIER",
            Error::ApprovalOptionsRequired { .. } => "APPROVAL_OPTIONS_REQUIRED",
            Error::ApprovalSchemaMismatch { .. } => "APPROVAL_SCHEMA_MISMATCH",
            Error::InvalidSchema { .. } => "INVALID_SCHEMA",
            Error::TableConflict { .. } => "TABLE_CONFLICT",
            Error::InvalidOutput { .. } => "INVALID_OUTPUT",
            Error::InvalidInput { .. } => "INVALID_INPUT",
            Error::InvalidDecision(_) => "INVALID_DECISION",
            Error::MissingRequiredInputs { .. } => "MISSING_REQUIRED_INPUTS",
            Error::UndeclaredInput { .. } => "UNDECLARED_INPUT",
            Error::RequiredNotInInput { .. } => "REQUIRED_NOT_IN_INPUT",
            Error::InvalidInputName { .. } => "INVALID_INPUT_NAME",
            Error::PushBackUnsupported { .. } => "PUSH_BACK_UNSUPPORTED",
            Error::PushBackBusy { .. } => "PUSH_BACK_BUSY",
            Error::RunRejected { .. } => "RUN_REJECTED",
            Error::NoSuchAttempt { .. } => "NO_SUCH_ATTEMPT",
            Error::IllegalTransition { .. } => "ILLEGAL_TRANSITION",
            Error::DbNotFound { .. } => "DB_NOT_FOUND",
            Error::SchemaTooNew { .. } => "SCHEMA_TOO_NEW",
            Error::SchemaOutdated { .. } => "SCHEMA_OUTDATED",
            Error::SchemaConflict { .. } => "SCHEMA_CONFLICT",
            Error::TableNameConflict { .. } => "TABLE_NAME_CONFLICT",
            Error::SchemaChanged { .. } => "SCHEMA_CHANGED",
            Error::WorkflowMismatch { .. } => "WORKFLOW_MISMATCH",
            Error::CorruptStore { .. } | Error::UnreadableRow { .. } => "CORRUPT_STORE",
            Error::TargetNotEmpty { .. } => "TARGET_NOT_EMPTY",
            Error::SameDatabase { .. } => "SAME_DATABASE",
            Error::SourceInUse { .. } => "SOURCE_IN_USE",
            Error::SourceChanged { .. } => "SOURCE_CHANGED",
            Error::MigrateMismatch { .. } => "MIGRATE_VERIFY_FAILED",
            Error::MigrateValueUnfit { .. } => "MIGRATE_VALUE_UNFIT",
            Error::EngineClosed => "ENGINE_CLOSED",
            Error::TaskFailed { .. } => codes::TASK_FAILED,
            Error::TaskTimeout { .. } => "TASK_TIMEOUT",
            Error::CommandNotStarted(_) => "COMMAND_NOT_STARTED",
            Error::CommandFailed { .. } => "COMMAND_FAILED",
            Error::SubRunFailed(_) => "SUBRUN_FAILED",
            Error::ApprovalDenied { .. } => codes::APPROVAL_DENIED,
            Error::ApprovalRejected { .. } => codes::APPROVAL_REJECTED,
            Error::HumanTaskInvalidJson { .. } => "HUMAN_TASK_INVALID_JSON",
            Error::HumanTaskValidationFailed { .. } => "HUMAN_TASK_VALIDATION_FAILED",
            Error::LoopMaxReached { .. } => "LOOP_MAX_REACHED",
            Error::RunStuck => "RUN_STUCK",
            Error::InvalidDelivery(_) => "INVALID_DELIVERY",
            Error::DeliveryNotFound { .. } => "DELIVERY_NOT_FOUND",
            Error::LinkUsed { .. } => "LINK_USED",
            Error::Json(_) => "INVALID_JSON",
            Error::Db(_) | Error::Pg(_) => "DB_ERROR",
            Error::DbTlsFailed { .. } => "DB_TLS_FAILED",
            Error::DbTlsConfig { .. } => "DB_TLS_CONFIG",
            Error::Io(_) => "IO_ERROR",
        }
    }

    /// Lookup errors: the thing named does not exist or is ambiguous (CLI exit 4).
    pub fn is_lookup(&self) -> bool {
        crate::contract::error_meta(self.code()).lookup
    }

    /// Structured fields for callers (the binding puts them on `error.details`).
    pub fn details(&self) -> Value {
        match self {
            Error::RunNotFound { run_id } | Error::NoPendingApprovals { run_id } => {
                json!({ "runId": run_id })
            }
            Error::AmbiguousApproval { run_id, candidates } => {
                let candidates: Vec<Value> = candidates
                    .iter()
                    .map(|(n, i)| json!({ "nodeId": n, "iteration": i }))
                    .collect();
                json!({ "runId": run_id, "candidates": candidates })
            }
            Error::AlreadyDecided(d) => {
                json!({ "runId": d.run_id, "nodeId": d.node_id, "iteration": d.iteration,
                        "status": d.status, "decidedBy": d.decided_by, "decidedAt": d.decided_at })
            }
            Error::NotWaiting {
                run_id,
                node_id,
                iteration,
                state,
            } => {
                json!({ "runId": run_id, "nodeId": node_id, "iteration": iteration, "state": state })
            }
            Error::NodeNotFound {
                run_id,
                node_id,
                iteration,
            } => {
                json!({ "runId": run_id, "nodeId": node_id, "iteration": iteration })
            }
            Error::AlreadyVoted(v) => json!({ "runId": v.run_id, "nodeId": v.node_id,
                "iteration": v.iteration, "voter": v.voter, "verdict": v.verdict, "votedAt": v.at }),
            Error::StaleView {
                run_id,
                node_id,
                iteration,
                expected,
                current,
            } => json!({ "runId": run_id, "nodeId": node_id, "iteration": iteration,
                         "expectedDigest": expected, "currentDigest": current }),
            Error::RunOwned { run_id, owner } => json!({ "runId": run_id, "owner": owner }),
            Error::StaleGraph {
                run_id,
                given,
                current,
            } => json!({ "runId": run_id, "graphId": given, "currentGraphId": current }),
            Error::DbNotFound { path, .. } => json!({ "dbPath": path }),
            Error::SchemaTooNew {
                path,
                found,
                supported,
            }
            | Error::SchemaOutdated {
                path,
                found,
                supported,
            } => json!({ "dbPath": path, "found": found, "supported": supported }),
            Error::SchemaConflict {
                key,
                field,
                table,
                version,
                stored,
                wanted,
            } => {
                json!({ "key": key, "field": field, "table": table, "version": version, "stored": stored, "wanted": wanted })
            }
            Error::TableNameConflict { key, other, table } => {
                json!({ "key": key, "other": other, "table": table })
            }
            Error::SchemaChanged {
                run_id,
                key,
                version,
            } => json!({ "runId": run_id, "key": key, "version": version }),
            Error::WorkflowMismatch {
                run_id,
                recorded,
                given,
            } => json!({ "runId": run_id, "recorded": recorded, "given": given }),
            Error::InvalidOutput {
                node_id,
                key,
                errors,
            } => {
                json!({ "nodeId": node_id, "output": key, "errors": errors })
            }
            Error::InvalidInput { errors } => json!({ "errors": errors }),
            Error::MissingRequiredInputs { node_id, missing } => {
                json!({ "nodeId": node_id, "missing": missing })
            }
            Error::UndeclaredInput {
                node_id,
                keys,
                allowed,
            } => json!({ "nodeId": node_id, "keys": keys, "allowed": allowed }),
            Error::RequiredNotInInput { node_id, keys } => {
                json!({ "nodeId": node_id, "keys": keys })
            }
            Error::InvalidInputName { node_id, name, .. } => {
                json!({ "nodeId": node_id, "name": name })
            }
            Error::PushBackUnsupported { node_id, .. } => json!({ "nodeId": node_id }),
            Error::PushBackBusy { node_id, busy } => json!({ "nodeId": node_id, "busy": busy }),
            Error::ApprovalSchemaMismatch {
                node_id,
                output,
                missing,
                fields,
            } => {
                json!({ "nodeId": node_id, "output": output, "missing": missing, "decisionFields": fields })
            }
            Error::RunRejected { run_id, node_id } => {
                json!({ "runId": run_id, "nodeId": node_id })
            }
            Error::CorruptStore { what, value } => json!({ "what": what, "value": value }),
            Error::TargetNotEmpty { to, table, rows } => {
                json!({ "to": to, "table": table, "rows": rows })
            }
            Error::SameDatabase { from, to } => json!({ "from": from, "to": to }),
            Error::SourceInUse { from, runs } => json!({ "from": from, "runs": runs }),
            Error::SourceChanged { from } => json!({ "from": from }),
            Error::MigrateMismatch {
                what,
                source_value,
                target_value,
            } => json!({ "what": what, "source": source_value, "target": target_value }),
            Error::MigrateValueUnfit {
                table,
                column,
                value,
                target_type,
            } => {
                json!({ "table": table, "column": column, "value": value, "targetType": target_type })
            }
            Error::UnreadableRow { column, why } => {
                json!({ "what": "column", "value": column, "why": why })
            }
            Error::DeliveryNotFound { delivery_id } => json!({ "deliveryId": delivery_id }),
            Error::LinkUsed {
                link_id,
                used_at,
                outcome,
            } => json!({ "linkId": link_id, "usedAt": used_at, "outcome": outcome }),
            _ => json!({}),
        }
    }
}

/// A SQLite error, or `CORRUPT_STORE` when it says a table is not the one the engine made
/// (a value of another type than the column's, a column missing): a table made by something
/// else, or damaged, is refused as an unknown stored state is, never read as something else.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::Error as E;
        let unreadable = |column: String, why: String| Error::UnreadableRow { column, why };
        match e {
            E::InvalidColumnType(_, name, ty) => unreadable(
                name,
                format!("holds a value of type {ty} the engine does not write there"),
            ),
            E::FromSqlConversionFailure(i, ty, why) => unreadable(
                format!("#{i}"),
                format!("holds a {ty} value that does not convert: {why}"),
            ),
            E::IntegralValueOutOfRange(i, v) => {
                unreadable(format!("#{i}"), format!("holds {v}, out of range"))
            }
            E::SqliteFailure(_, Some(ref msg)) | E::SqlInputError { ref msg, .. }
                if missing_column(msg) =>
            {
                let column = msg.rsplit([' ', ':', '.']).next().unwrap_or("").to_string();
                unreadable(column, format!("the table has no such column ({msg})"))
            }
            e => Error::Db(e),
        }
    }
}

/// SQLite's message for a statement naming a column its table does not have.
fn missing_column(msg: &str) -> bool {
    msg.starts_with("no such column") || msg.contains("has no column named")
}

/// A PostgreSQL error, or `CORRUPT_STORE` when it says a table is not the one the engine made:
/// a column of another type than the engine's (the client refuses to convert a parameter, the
/// server to compare or cast a value) or a column missing.
impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        use postgres::error::SqlState;
        use std::error::Error as _;
        if let Some(wrong) = e
            .source()
            .and_then(|s| s.downcast_ref::<postgres::types::WrongType>())
        {
            return Error::UnreadableRow {
                column: "(a parameter)".into(),
                why: wrong.to_string(),
            };
        }
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::UNDEFINED_COLUMN
                || *code == SqlState::DATATYPE_MISMATCH
                || *code == SqlState::UNDEFINED_FUNCTION
                || *code == SqlState::INVALID_TEXT_REPRESENTATION
            {
                // The server names the column only when it is missing.
                // (`column "x" does not exist`, `column t.x does not exist`).
                let named = (*code == SqlState::UNDEFINED_COLUMN)
                    .then(|| {
                        let m = db.message().strip_prefix("column ")?;
                        let name = m.split(' ').next()?.rsplit('.').next()?;
                        Some(name.trim_matches('"'))
                    })
                    .flatten();
                let column = db
                    .column()
                    .or(named)
                    .unwrap_or("(one a statement compares with a value)")
                    .to_string();
                return Error::UnreadableRow {
                    column,
                    why: format!("{} ({})", db.message(), code.code()),
                };
            }
        }
        Error::Pg(e)
    }
}

/// A PostgreSQL error with the server's own message and code when there is one (the client's
/// `Display` says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
