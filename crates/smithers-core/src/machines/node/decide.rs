//! The node's moves that decisions make: a gate or review decided, a human task's answer
//! refused, a push-back's scope rewound.

use std::rc::Rc;

use serde_json::{Value, json};

use super::super::approval::{self, ApprovalEvent, ApprovalStatus};
use super::super::attempt::{self, AttemptEvent};
use super::super::{DecisionRow, Effect, Field, HistoryRow, NodeChange, NodeKey};
use super::{E, Moved, NodeEvent, NodeState, S, SkipReason, next, set, write};
use crate::error::Result;
use crate::events::EventKind;
use crate::output::OutputTable;

/// What a decision does to the node it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Approve,
    Deny,
    PushBack,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
            Verdict::PushBack => "push-back",
        }
    }
}

/// The node event a verdict is, for a gate (`review` false) of `mode` and `on_deny`, or a
/// reviewed step, with the reason a skipped node records.
pub(crate) fn decision_event(
    verdict: Verdict,
    review: bool,
    gate_before_task: bool,
    denial_fails: bool,
) -> (NodeEvent, Option<SkipReason>) {
    match (verdict, review) {
        (Verdict::Approve, true) => (E::ApproveReview, None),
        (Verdict::Deny, true) => (E::Reject, None),
        (Verdict::PushBack, _) => (E::PushBack, None),
        (Verdict::Approve, false) if gate_before_task => (E::ApproveGate, None),
        (Verdict::Approve, false) => (E::ApproveDecision, None),
        (Verdict::Deny, false) if denial_fails => (E::DenyFail, None),
        (Verdict::Deny, false) if gate_before_task => (E::Skip, Some(SkipReason::Denied)),
        // `<Approval>`: continue and skip alike record `approved: false` and go on.
        (Verdict::Deny, false) => (E::DenyContinue, None),
    }
}

/// A decision on a node waiting for it: the approval row decided (with, for a review, its
/// round kept in the history), the node moved, the output written (an `<Approval>`'s
/// decision row, a human task's answer) or withdrawn (a review pushed back).
pub(crate) struct Decided {
    pub event: NodeEvent,
    pub skip_reason: Option<SkipReason>,
    pub decision: DecisionRow,
    /// JSON of the node's error (a denial that fails, a rejection).
    pub error: Option<String>,
    pub output: Option<(Rc<OutputTable>, Value)>,
    /// A review's round, for the history.
    pub history: Option<HistoryRow>,
    pub withdraw_output: Option<Rc<OutputTable>>,
}

pub(crate) fn decide(key: &NodeKey, from: NodeState, decided: Decided) -> Result<Moved> {
    let to = next(from, decided.event)?;
    let approval_event = match decided.decision.status {
        ApprovalStatus::Approved => ApprovalEvent::Approve,
        ApprovalStatus::Rejected => ApprovalEvent::Reject,
        ApprovalStatus::PushedBack => ApprovalEvent::PushBack,
        _ => ApprovalEvent::Deny,
    };
    approval::next(Some(ApprovalStatus::Requested), approval_event)?;
    let mut effects = vec![
        Effect::Decide {
            node: key.clone(),
            decision: Box::new(decided.decision),
        },
        set(
            key,
            to,
            NodeChange {
                attempts: Some(0),
                skip_reason: decided
                    .skip_reason
                    .map_or(Field::Keep, |r| Field::Set(r.as_str())),
                error: decided.error.map_or(Field::Clear, Field::Set),
                sub_run: Field::Keep,
            },
        ),
    ];
    if let Some((table, value)) = decided.output {
        effects.push(write(key, &table, value, false));
    }
    if let Some(row) = decided.history {
        effects.push(Effect::AppendHistory {
            node: key.clone(),
            row: Box::new(row),
        });
    }
    if let Some(table) = decided.withdraw_output {
        effects.push(Effect::DeleteOutput {
            node: key.clone(),
            table,
        });
    }
    Ok((to, effects))
}

/// The event that says where a decided node went (after the approval's own event).
pub(crate) fn decided_event(key: &NodeKey, to: NodeState, pushed_back: bool) -> Option<Effect> {
    let kind = match to {
        S::Finished => EventKind::NodeFinished,
        S::Failed => EventKind::NodeFailed,
        S::Skipped => EventKind::NodeSkipped,
        S::Rejected => EventKind::NodeRejected,
        S::Pending if pushed_back => EventKind::NodePushedBack,
        _ => return None,
    };
    Some(key.emit(kind, json!({})))
}

/// A human task's answer that does not fit: a failed attempt, and the task waits for the
/// next answer, or, out of attempts, fails (its request withdrawn).
pub(crate) fn refuse_answer(
    key: &NodeKey,
    from: NodeState,
    attempt: i64,
    attempt_error: &Value,
    event_payload: Value,
    exhausted: Option<(Value, Option<String>, Option<String>)>,
) -> Result<Moved> {
    attempt::next(None, AttemptEvent::Refuse)?;
    let mut effects = vec![
        Effect::RecordRefusedAnswer {
            node: key.clone(),
            attempt,
            error: attempt_error.to_string(),
        },
        key.emit(EventKind::HumanAnswerInvalid, event_payload),
    ];
    let Some((node_error, decided_by, note)) = exhausted else {
        let to = next(from, E::RefuseAnswer)?;
        effects.push(set(key, to, NodeChange::attempt(attempt)));
        return Ok((to, effects));
    };
    let to = next(from, E::DenyFail)?;
    approval::next(Some(ApprovalStatus::Requested), ApprovalEvent::Withdraw)?;
    effects.push(set(
        key,
        to,
        NodeChange {
            attempts: Some(attempt),
            error: Field::Set(node_error.to_string()),
            ..NodeChange::default()
        },
    ));
    effects.push(Effect::WithdrawApproval {
        node: key.clone(),
        decided_by,
        note,
    });
    effects.push(key.emit(
        EventKind::NodeFailed,
        json!({ "attempt": attempt, "error": node_error }),
    ));
    Ok((to, effects))
}

/// A node in a push-back's scope goes back to pending: its output withdrawn, its error and
/// skip reason cleared, and a decision it had undone (a gate is asked again; a review opens
/// its next round). `approval` is its approval row's status and whether it is a review.
pub(crate) fn rewind(
    key: &NodeKey,
    from: NodeState,
    table: Option<Rc<OutputTable>>,
    approval: Option<(ApprovalStatus, bool)>,
    by_gate: &str,
) -> Result<Moved> {
    let to = next(from, E::Rewind)?;
    let mut effects = vec![set(
        key,
        to,
        NodeChange {
            attempts: None,
            skip_reason: Field::Clear,
            error: Field::Clear,
            sub_run: Field::Clear,
        },
    )];
    if let Some(table) = table {
        effects.push(Effect::DeleteOutput {
            node: key.clone(),
            table,
        });
    }
    match approval {
        Some((status, false)) => {
            approval::next(Some(status), ApprovalEvent::Forget)?;
            effects.push(Effect::ForgetGate { node: key.clone() });
        }
        Some((status, true)) => {
            approval::next(Some(status), ApprovalEvent::Reopen)?;
            effects.push(Effect::ReopenReview { node: key.clone() });
        }
        None => {}
    }
    effects.push(key.emit(
        EventKind::NodeReset,
        json!({ "previous": from.as_str(), "pushedBackAt": by_gate }),
    ));
    Ok((to, effects))
}
