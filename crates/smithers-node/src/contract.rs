//! The vocabulary the JS layer, the CLI, `smithers serve` and the inbox share with the core
//! (`smithers_core::contract`): statuses, what each error code means, scopes, run ids, SQL
//! names. JS reads it from here instead of keeping copies (`src/contract.js`).

use napi_derive::napi;
use smithers_core as core;
use smithers_core::contract::{self as vocab, ErrorMeta};
use smithers_core::machines::{NodeState, RunStatus};

#[napi(string_enum = "kebab-case")]
pub enum BindingRunStatus {
    Running,
    WaitingApproval,
    WaitingTimer,
    Finished,
    Failed,
    Cancelled,
    Rejected,
}

impl From<RunStatus> for BindingRunStatus {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Running => Self::Running,
            RunStatus::WaitingApproval => Self::WaitingApproval,
            RunStatus::WaitingTimer => Self::WaitingTimer,
            RunStatus::Finished => Self::Finished,
            RunStatus::Failed => Self::Failed,
            RunStatus::Cancelled => Self::Cancelled,
            RunStatus::Rejected => Self::Rejected,
        }
    }
}

#[napi(string_enum = "kebab-case")]
pub enum BindingNodeState {
    Pending,
    InProgress,
    WaitingApproval,
    Finished,
    Failed,
    Skipped,
    Cancelled,
    Rejected,
}

impl From<NodeState> for BindingNodeState {
    fn from(s: NodeState) -> Self {
        match s {
            NodeState::Pending => Self::Pending,
            NodeState::InProgress => Self::InProgress,
            NodeState::WaitingApproval => Self::WaitingApproval,
            NodeState::Finished => Self::Finished,
            NodeState::Failed => Self::Failed,
            NodeState::Skipped => Self::Skipped,
            NodeState::Cancelled => Self::Cancelled,
            NodeState::Rejected => Self::Rejected,
        }
    }
}

#[napi(string_enum = "kebab-case")]
pub enum BindingApprovalStatus {
    Requested,
    Approved,
    Denied,
    Rejected,
    PushedBack,
    Cancelled,
}

impl BindingApprovalStatus {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "rejected" => Self::Rejected,
            "pushed-back" => Self::PushedBack,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

#[napi(object)]
pub struct BindingRunStatusInfo {
    pub status: BindingRunStatus,
    /// The run has ended: nothing moves it again.
    pub terminal: bool,
    /// The CLI's exit code for a run that stopped here.
    pub exit_code: u32,
}

#[napi(object)]
pub struct BindingNodeStateInfo {
    pub state: BindingNodeState,
    /// Cancelled when the run ends early.
    pub open: bool,
}

#[napi(object)]
pub struct BindingApprovalStatusInfo {
    pub status: BindingApprovalStatus,
    /// Waiting for a decision.
    pub open: bool,
}

/// What an error code means to the CLI and to HTTP.
#[napi(object)]
pub struct BindingErrorMeta {
    /// What the caller named does not exist, or names several things.
    pub lookup: bool,
    /// 4: the command line names nothing that exists or asks what can never be done; else 1.
    pub exit_code: u32,
    pub http_status: u32,
    /// Asking again cannot succeed: the gate was decided, stopped waiting, or is gone.
    pub final_for_decision: bool,
}

impl From<ErrorMeta> for BindingErrorMeta {
    fn from(m: ErrorMeta) -> Self {
        let ErrorMeta {
            lookup,
            exit_code,
            http_status,
            final_for_decision,
        } = m;
        BindingErrorMeta {
            lookup,
            exit_code: exit_code.into(),
            http_status: http_status.into(),
            final_for_decision,
        }
    }
}

/// Environment variable names no approver input or workflow param may use.
#[napi(object)]
pub struct BindingReservedEnv {
    pub exact: Vec<String>,
    pub prefixes: Vec<String>,
}

#[napi(object)]
pub struct BindingContract {
    /// Every run status, in the order a run meets them.
    pub run_statuses: Vec<BindingRunStatusInfo>,
    pub node_states: Vec<BindingNodeStateInfo>,
    pub approval_statuses: Vec<BindingApprovalStatusInfo>,
    /// The statuses of a webhook delivery.
    pub delivery_statuses: Vec<String>,
    /// The codes that mean more than "failed", by code.
    pub error_codes: std::collections::HashMap<String, BindingErrorMeta>,
    /// What every other code means.
    pub other_error: BindingErrorMeta,
    /// Built-in scopes, each covering those before it.
    pub scope_levels: Vec<String>,
    pub run_id_max_length: u32,
    /// What a denied `<Approval>` may do (`onDeny`).
    pub on_deny: Vec<String>,
    /// What a loop may do when `maxIterations` is reached (`onMaxReached`).
    pub on_max_reached: Vec<String>,
    /// The columns every output table has first; no schema field may take their names.
    pub key_columns: Vec<String>,
    pub reserved_env: BindingReservedEnv,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The shared vocabulary, in one object (read once by `src/contract.js`).
#[napi]
pub fn contract() -> BindingContract {
    BindingContract {
        run_statuses: vocab::RUN_STATUSES
            .iter()
            .map(|&s| BindingRunStatusInfo {
                status: s.into(),
                terminal: s.is_terminal(),
                exit_code: vocab::run_exit_code(s).into(),
            })
            .collect(),
        node_states: vocab::NODE_STATES
            .iter()
            .map(|&s| BindingNodeStateInfo {
                state: s.into(),
                open: s.is_open(),
            })
            .collect(),
        approval_statuses: vocab::APPROVAL_STATUSES
            .iter()
            .filter_map(|&s| {
                Some(BindingApprovalStatusInfo {
                    status: BindingApprovalStatus::parse(s.as_str())?,
                    open: s == core::ApprovalStatus::Requested,
                })
            })
            .collect(),
        delivery_statuses: strings(&vocab::DELIVERY_STATUSES),
        error_codes: vocab::ERROR_CODES
            .iter()
            .map(|(code, meta)| (code.to_string(), (*meta).into()))
            .collect(),
        other_error: vocab::OTHER_ERROR.into(),
        scope_levels: strings(&vocab::SCOPE_LEVELS),
        run_id_max_length: vocab::RUN_ID_MAX_LEN as u32,
        on_deny: vocab::ON_DENY
            .iter()
            .map(|d| d.as_str().to_string())
            .collect(),
        on_max_reached: strings(&vocab::ON_MAX_REACHED),
        key_columns: strings(&core::ident::KEY_COLUMNS),
        reserved_env: BindingReservedEnv {
            exact: strings(core::graph::RESERVED_ENV),
            prefixes: strings(core::graph::RESERVED_ENV_PREFIXES),
        },
    }
}

/// Whether holding scope `held` satisfies `needed` (the core's rule for `allowedScopes`).
#[napi]
pub fn scope_covers(held: String, needed: String) -> bool {
    vocab::scope_covers(&held, &needed)
}

/// Whether `runId` is a valid run id: 1-128 letters, digits and `_ . : -`, not dots only.
#[napi]
pub fn is_run_id(run_id: String) -> bool {
    vocab::is_run_id(&run_id)
}

/// The SQL name of an output key or field: `publishApproval` → `publish_approval`.
#[napi]
pub fn snake_case(name: String) -> String {
    core::ident::snake_case(&name)
}

/// Why `name` cannot be an SQL identifier, or null.
#[napi]
pub fn identifier_problem(name: String) -> Option<String> {
    core::ident::identifier_problem(&name).map(str::to_string)
}

/// Why `key` cannot be an output key (its table's name is reserved, …), or null.
#[napi]
pub fn table_key_problem(key: String) -> Option<String> {
    core::ident::table_key_problem(&key).map(str::to_string)
}

/// Why `name` cannot be a field of an output schema (a key column, …), or null.
#[napi]
pub fn field_problem(name: String) -> Option<String> {
    core::ident::field_problem(&name).map(str::to_string)
}
