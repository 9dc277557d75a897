//! The vocabulary every surface shares: run statuses, node states, approval statuses, what
//! each error code means to the CLI and to HTTP, scopes, run ids and SQL names.
//!
//! The JS layer, the CLI, `smithers serve` and the inbox read these from the binding
//! (`contract()` and the functions beside it) instead of keeping copies of their own.

#[cfg(test)]
use crate::error::Error;
use crate::graph::OnDeny;
use crate::machines::{ApprovalStatus, NodeState, RunStatus};

/// Every run status, in the order a run meets them.
pub const RUN_STATUSES: [RunStatus; 7] = [
    RunStatus::Running,
    RunStatus::WaitingApproval,
    RunStatus::WaitingTimer,
    RunStatus::Finished,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Rejected,
];

/// Every node state.
pub const NODE_STATES: [NodeState; 8] = [
    NodeState::Pending,
    NodeState::InProgress,
    NodeState::WaitingApproval,
    NodeState::Finished,
    NodeState::Failed,
    NodeState::Skipped,
    NodeState::Cancelled,
    NodeState::Rejected,
];

/// The statuses of an approval row (`_smithers_approvals.status`): open while `requested`.
pub const APPROVAL_STATUSES: [ApprovalStatus; 6] = [
    ApprovalStatus::Requested,
    ApprovalStatus::Approved,
    ApprovalStatus::Denied,
    ApprovalStatus::Rejected,
    ApprovalStatus::PushedBack,
    ApprovalStatus::Cancelled,
];

/// The statuses of a webhook delivery (`_smithers_deliveries.status`).
pub use crate::deliveries::DELIVERY_STATUSES;

/// What a denied `<Approval>` does (`onDeny`).
pub const ON_DENY: [OnDeny; 3] = [OnDeny::Fail, OnDeny::Continue, OnDeny::Skip];

/// What a loop does when `maxIterations` is reached (`onMaxReached`).
pub const ON_MAX_REACHED: [&str; 2] = ["return-last", "fail"];

/// The CLI's exit code for a run that stopped in `status` (as Smithers has them): 0 finished,
/// 3 waiting, 2 cancelled, 1 failed or rejected (or still running: the command could not
/// drive it to a stop).
pub fn run_exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Finished => 0,
        RunStatus::WaitingApproval | RunStatus::WaitingTimer => 3,
        RunStatus::Cancelled => 2,
        RunStatus::Running | RunStatus::Failed | RunStatus::Rejected => 1,
    }
}

/// What an error code means beyond its message: how the CLI exits and what HTTP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMeta {
    /// What the caller named does not exist, or names several things.
    pub lookup: bool,
    /// The CLI's exit code: 4 when the command line names nothing that exists or asks what
    /// can never be done (fixing the command by hand makes it succeed), else 1.
    pub exit_code: u8,
    pub http_status: u16,
    /// Asking again cannot succeed: the gate was decided, stopped waiting, or is gone.
    pub final_for_decision: bool,
}

/// What any other code means: a failure (exit 1); over HTTP, a bad request.
pub const OTHER_ERROR: ErrorMeta = ErrorMeta {
    lookup: false,
    exit_code: 1,
    http_status: 400,
    final_for_decision: false,
};

const fn meta(code: &'static str, exit_code: u8, http_status: u16) -> (&'static str, ErrorMeta) {
    let meta = ErrorMeta {
        exit_code,
        http_status,
        ..OTHER_ERROR
    };
    (code, meta)
}

const fn lookup(code: &'static str, http_status: u16) -> (&'static str, ErrorMeta) {
    let (code, mut m) = meta(code, 4, http_status);
    m.lookup = true;
    (code, m)
}

const fn decided((code, mut m): (&'static str, ErrorMeta)) -> (&'static str, ErrorMeta) {
    m.final_for_decision = true;
    (code, m)
}

/// Codes that mean more than "failed" (exit 1, HTTP 400 for a `SmithersError`). Some are
/// raised by the JS layer (`USAGE`, `WORKFLOW_NOT_FOUND`) or by `smithers serve` alone
/// (`UNAUTHORIZED`, `NOT_FOUND`, …); their meaning is kept here all the same, with the rest.
pub const ERROR_CODES: &[(&str, ErrorMeta)] = &[
    decided(lookup("RUN_NOT_FOUND", 404)),
    decided(lookup("NODE_NOT_FOUND", 404)),
    lookup("NO_PENDING_APPROVALS", 404),
    lookup("AMBIGUOUS_APPROVAL", 409),
    lookup("INVALID_RUN_ID", 400),
    lookup("DB_NOT_FOUND", 400),
    // A PostgreSQL URL whose sslmode / sslrootcert / sslcert / sslkey cannot be used.
    meta("DB_TLS_CONFIG", 4, 400),
    lookup("USAGE", 400),
    lookup("WORKFLOW_NOT_FOUND", 404),
    lookup("DELIVERY_NOT_FOUND", 404),
    // The named gate can never take this decision as asked.
    meta("MISSING_REQUIRED_INPUTS", 4, 400),
    meta("UNDECLARED_INPUT", 4, 400),
    meta("PUSH_BACK_UNSUPPORTED", 4, 400),
    // State conflicts: the command was right, the run said no.
    decided(meta("ALREADY_DECIDED", 1, 409)),
    decided(meta("NOT_WAITING", 1, 409)),
    decided(meta("RUN_REJECTED", 1, 409)),
    meta("RUN_OWNED", 1, 409),
    meta("RUN_NOT_RESUMABLE", 1, 409),
    meta("RUN_EXISTS", 1, 409),
    meta("PUSH_BACK_BUSY", 1, 409),
    // A driver named a graph by an id that is not its run's plan's now (send the text).
    meta("STALE_GRAPH", 1, 409),
    meta("FORBIDDEN", 1, 403),
    // Approvals that cannot be faked (audit.rs): a decision on a view that changed; a second
    // vote by one person on a quorum gate; a decision log whose chain does not hold.
    decided(meta("STALE_VIEW", 1, 409)),
    decided(meta("ALREADY_VOTED", 1, 409)),
    meta("AUDIT_CHAIN_BROKEN", 1, 409),
    // Signed decision links (`smithers serve`): the signature or approver is not valid, the
    // link expired, or it was used before (the core's `_smithers_link_uses`).
    meta("LINK_INVALID", 1, 403),
    meta("LINK_EXPIRED", 1, 410),
    meta("LINK_USED", 1, 409),
    // A <HumanTask> answer that does not fit its schema (it counts as an attempt).
    meta("HUMAN_TASK_INVALID_JSON", 1, 422),
    meta("HUMAN_TASK_VALIDATION_FAILED", 1, 422),
    // `smithers migrate --from --to`: the target holds data; the source is the target; a run
    // of the source is being driven, or something committed to it during the copy; the copy
    // did not verify; a value the target's column cannot hold.
    meta("TARGET_NOT_EMPTY", 1, 409),
    meta("SAME_DATABASE", 4, 400),
    meta("SOURCE_IN_USE", 1, 409),
    meta("SOURCE_CHANGED", 1, 409),
    meta("MIGRATE_VERIFY_FAILED", 1, 500),
    meta("MIGRATE_VALUE_UNFIT", 1, 400),
    // HTTP only.
    meta("UNAUTHORIZED", 1, 401),
    meta("NOT_FOUND", 1, 404),
    meta("METHOD_NOT_ALLOWED", 1, 405),
    meta("PAYLOAD_TOO_LARGE", 1, 413),
    // Ours, not the caller's.
    meta("DB_ERROR", 1, 500),
    // No TLS session with the PostgreSQL server (certificate, host name, TLS refused).
    meta("DB_TLS_FAILED", 1, 500),
    meta("IO_ERROR", 1, 500),
    meta("INTERNAL", 1, 500),
];

/// The meaning of `code`: its entry in [`ERROR_CODES`], else [`OTHER_ERROR`].
pub fn error_meta(code: &str) -> ErrorMeta {
    ERROR_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(OTHER_ERROR, |(_, m)| *m)
}

/// Built-in scopes, each covering those before it (as Smithers' gateway ranks them).
pub const SCOPE_LEVELS: [&str; 4] = ["read", "execute", "approve", "admin"];

/// Whether holding scope `held` satisfies `needed`: the same scope, a higher built-in level
/// (`approve` covers `execute` and `read`; `admin` and `*` cover everything), or a
/// wildcard prefix (`deploy:*` covers `deploy:prod`).
pub fn scope_covers(held: &str, needed: &str) -> bool {
    if held == needed || held == "*" || held == "admin" {
        return true;
    }
    let level = |s: &str| SCOPE_LEVELS.iter().position(|l| *l == s);
    if let (Some(h), Some(n)) = (level(held), level(needed)) {
        return h >= n;
    }
    held.strip_suffix('*')
        .is_some_and(|prefix| needed.starts_with(prefix))
}

/// The longest run id.
pub const RUN_ID_MAX_LEN: usize = 128;

/// A run id: 1-128 letters, digits and `_ . : -`, not dots only (it names the run's log
/// directory, `<db stem>.logs/<run id>/`, so never `.` or `..`).
pub fn is_run_id(run_id: &str) -> bool {
    !run_id.is_empty()
        && run_id.len() <= RUN_ID_MAX_LEN
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
        && !run_id.chars().all(|c| c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machines::Stored;

    #[test]
    fn the_lists_hold_every_state_once_and_parse_back() {
        // A new variant fails to compile here until the lists above name it.
        let run_index = |s: RunStatus| match s {
            RunStatus::Running => 0,
            RunStatus::WaitingApproval => 1,
            RunStatus::WaitingTimer => 2,
            RunStatus::Finished => 3,
            RunStatus::Failed => 4,
            RunStatus::Cancelled => 5,
            RunStatus::Rejected => 6,
        };
        for (i, s) in RUN_STATUSES.iter().enumerate() {
            assert_eq!(run_index(*s), i);
            assert_eq!(RunStatus::parse(s.as_str()).ok(), Some(*s));
        }
        let node_index = |s: NodeState| match s {
            NodeState::Pending => 0,
            NodeState::InProgress => 1,
            NodeState::WaitingApproval => 2,
            NodeState::Finished => 3,
            NodeState::Failed => 4,
            NodeState::Skipped => 5,
            NodeState::Cancelled => 6,
            NodeState::Rejected => 7,
        };
        assert_eq!(APPROVAL_STATUSES.as_slice(), ApprovalStatus::ALL);
        for (i, s) in NODE_STATES.iter().enumerate() {
            assert_eq!(node_index(*s), i);
            assert_eq!(NodeState::parse(s.as_str()).ok(), Some(*s));
        }
    }

    #[test]
    fn graph_words_are_the_descriptor_s() {
        let on_deny = |d: OnDeny| match d {
            OnDeny::Fail | OnDeny::Continue | OnDeny::Skip => d.as_str(),
        };
        for d in ON_DENY {
            let parsed: OnDeny = serde_json::from_value(on_deny(d).into()).expect("onDeny");
            assert_eq!(parsed, d);
        }
        for word in ON_MAX_REACHED {
            serde_json::from_value::<crate::graph::OnMaxReached>(word.into()).expect(word);
        }
    }

    #[test]
    fn exit_codes_follow_smithers() {
        let exit = |s| run_exit_code(RunStatus::parse(s).expect("a status"));
        assert_eq!(exit("finished"), 0);
        assert_eq!(exit("waiting-approval"), 3);
        assert_eq!(exit("cancelled"), 2);
        assert_eq!(exit("failed"), 1);
        assert_eq!(exit("rejected"), 1);
    }

    #[test]
    fn every_code_is_listed_once_and_lookups_exit_4() {
        for (i, (code, m)) in ERROR_CODES.iter().enumerate() {
            assert!(
                ERROR_CODES[i + 1..].iter().all(|(other, _)| other != code),
                "{code} twice"
            );
            assert!(!m.lookup || m.exit_code == 4, "{code}");
        }
        assert_eq!(error_meta("TASK_FAILED").exit_code, 1);
        assert_eq!(error_meta("TASK_FAILED").http_status, 400);
        assert!(Error::RunNotFound { run_id: "x".into() }.is_lookup());
        assert!(!Error::InvalidGraph("x".into()).is_lookup());
    }

    #[test]
    fn run_ids() {
        for good in ["r1", "a.b:c-d_e", "..a", &"x".repeat(128)] {
            assert!(is_run_id(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }
}
