//! The node machine: one task (or gate) of a run at one loop iteration.
//!
//! Each function below is one event: it checks the move against [`MOVES`] and returns the
//! node's new state with the effects of the move (the node row, its attempt, its output, its
//! approval request, the events), in the order they are written.

use std::rc::Rc;

use serde_json::{Value, json};

use super::approval::{self, ApprovalEvent, ApprovalStatus};
use super::attempt::{self, AttemptEvent, AttemptState};
use super::{ApprovalRequest, Effect, Field, Move, NodeChange, NodeKey, Stored, Taken};
use crate::api::{RunError, TaskError};
use crate::error::Result;
use crate::events::EventKind;
use crate::output::OutputTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    Pending,
    InProgress,
    WaitingApproval,
    Finished,
    Failed,
    Skipped,
    Cancelled,
    /// A reviewed step whose reviewer rejected it: the run ends `rejected`.
    Rejected,
}

impl Stored for NodeState {
    const MACHINE: &'static str = "node";
    const ALL: &'static [NodeState] = &[
        NodeState::Pending,
        NodeState::InProgress,
        NodeState::WaitingApproval,
        NodeState::Finished,
        NodeState::Failed,
        NodeState::Skipped,
        NodeState::Cancelled,
        NodeState::Rejected,
    ];

    fn as_str(self) -> &'static str {
        self.as_str()
    }
}

impl NodeState {
    pub const ALL: &'static [NodeState] = <NodeState as Stored>::ALL;

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::InProgress => "in-progress",
            NodeState::WaitingApproval => "waiting-approval",
            NodeState::Finished => "finished",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Cancelled => "cancelled",
            NodeState::Rejected => "rejected",
        }
    }

    /// Open nodes are cancelled when their run ends early.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            NodeState::Pending | NodeState::InProgress | NodeState::WaitingApproval
        )
    }
}

/// What can happen to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// An attempt starts (compute task handed to JS, or a native body runs).
    Start,
    /// The attempt produced a valid output.
    Finish,
    /// The attempt failed and a retry is left (or its sub-run ended before it could wait).
    Retry,
    /// The attempt failed for good.
    Fail,
    /// The owner of the run died while the attempt was open.
    Abandon,
    /// A reachable gate asks for a decision.
    RequestApproval,
    /// `<Approval>` approved (by a person, by `autoApprove`, or found decided): the decision
    /// row is the output.
    ApproveDecision,
    /// `<Task needsApproval>` approved: the body still has to run.
    ApproveGate,
    /// Denied with `onDeny: "fail"`, or a human task out of answers.
    DenyFail,
    /// `<Approval>` denied with `onDeny: "continue" | "skip"`: `approved: false` is the output.
    DenyContinue,
    /// `skipIf`, or a gate before a task denied without failing.
    Skip,
    /// The run ended while the node was still open.
    Cancel,
    /// A reviewed step's body succeeded: its output waits for a reviewer.
    AwaitReview,
    /// The reviewer approved the output.
    ApproveReview,
    /// The reviewer sent the step back to run again, in a new round.
    PushBack,
    /// The reviewer rejected the step.
    Reject,
    /// A sub-run the task started waits for a decision of its own: the task waits with it.
    AwaitSubRun,
    /// The sub-run a task waited on ended: the task runs again to collect its result.
    SubRunEnded,
    /// A push-back's scope takes the node back to pending, to run again.
    Rewind,
    /// A human task's answer that does not fit: counted, and the task keeps waiting.
    RefuseAnswer,
    /// A `<Timer>` started: it waits (as a sub-run caller does) until its due time.
    AwaitTimer,
    /// The `<Timer>`'s due time passed and it was fired (once, by whichever engine fired it).
    TimerFired,
}

impl NodeEvent {
    pub const ALL: &'static [NodeEvent] = &[
        NodeEvent::Start,
        NodeEvent::Finish,
        NodeEvent::Retry,
        NodeEvent::Fail,
        NodeEvent::Abandon,
        NodeEvent::RequestApproval,
        NodeEvent::ApproveDecision,
        NodeEvent::ApproveGate,
        NodeEvent::DenyFail,
        NodeEvent::DenyContinue,
        NodeEvent::Skip,
        NodeEvent::Cancel,
        NodeEvent::AwaitReview,
        NodeEvent::ApproveReview,
        NodeEvent::PushBack,
        NodeEvent::Reject,
        NodeEvent::AwaitSubRun,
        NodeEvent::SubRunEnded,
        NodeEvent::Rewind,
        NodeEvent::RefuseAnswer,
        NodeEvent::AwaitTimer,
        NodeEvent::TimerFired,
    ];
}

const fn m(from: NodeState, event: NodeEvent, to: NodeState) -> Move<NodeState, NodeEvent> {
    Move { from, event, to }
}

use NodeEvent as E;
use NodeState as S;

/// Every legal move of a node.
pub(crate) static MOVES: [Move<NodeState, NodeEvent>; 29] = [
    m(S::Pending, E::Start, S::InProgress),
    m(S::InProgress, E::Finish, S::Finished),
    m(S::InProgress, E::Retry, S::Pending),
    m(S::InProgress, E::Fail, S::Failed),
    m(S::InProgress, E::Abandon, S::Pending),
    m(S::Pending, E::RequestApproval, S::WaitingApproval),
    // A decided gate found pending (auto-approved, or decided by an older engine that did
    // not finish the node) finishes without waiting.
    m(S::Pending, E::ApproveDecision, S::Finished),
    m(S::WaitingApproval, E::ApproveDecision, S::Finished),
    m(S::WaitingApproval, E::ApproveGate, S::Pending),
    m(S::WaitingApproval, E::DenyFail, S::Failed),
    m(S::WaitingApproval, E::DenyContinue, S::Finished),
    m(S::Pending, E::Skip, S::Skipped),
    // A gate before a task denied without failing: the task does not run.
    m(S::WaitingApproval, E::Skip, S::Skipped),
    m(S::Pending, E::Cancel, S::Cancelled),
    m(S::InProgress, E::Cancel, S::Cancelled),
    m(S::WaitingApproval, E::Cancel, S::Cancelled),
    m(S::InProgress, E::AwaitReview, S::WaitingApproval),
    m(S::WaitingApproval, E::ApproveReview, S::Finished),
    m(S::WaitingApproval, E::PushBack, S::Pending),
    m(S::WaitingApproval, E::Reject, S::Rejected),
    m(S::InProgress, E::AwaitSubRun, S::WaitingApproval),
    m(S::WaitingApproval, E::SubRunEnded, S::Pending),
    m(S::Finished, E::Rewind, S::Pending),
    m(S::Failed, E::Rewind, S::Pending),
    m(S::Skipped, E::Rewind, S::Pending),
    m(S::WaitingApproval, E::Rewind, S::Pending),
    m(S::WaitingApproval, E::RefuseAnswer, S::WaitingApproval),
    m(S::InProgress, E::AwaitTimer, S::WaitingApproval),
    m(S::WaitingApproval, E::TimerFired, S::Finished),
];

pub(crate) static TAKEN: Taken<29> = Taken::new();

/// The state `event` takes a node in `from` to, or `ILLEGAL_TRANSITION`.
pub fn next(from: NodeState, event: NodeEvent) -> Result<NodeState> {
    super::take("node", &MOVES, &TAKEN, from, event)
}

/// A new state and what the move writes.
pub(crate) type Moved = (NodeState, Vec<Effect>);

/// An attempt starts: the node is in progress with a new attempt row.
pub(crate) fn start(key: &NodeKey, from: NodeState, attempt: i64, owner: &str) -> Result<Moved> {
    let to = next(from, E::Start)?;
    attempt::next(None, AttemptEvent::Open)?;
    Ok((
        to,
        vec![
            set(key, to, NodeChange::attempt(attempt)),
            Effect::OpenAttempt {
                node: key.clone(),
                attempt,
                owner: owner.into(),
            },
            key.emit(EventKind::NodeStarted, json!({ "attempt": attempt })),
        ],
    ))
}

/// The attempt produced its output: written, the node finished, the attempt closed.
pub(crate) fn finish(
    key: &NodeKey,
    from: NodeState,
    attempt: i64,
    table: &Rc<OutputTable>,
    value: Value,
) -> Result<Moved> {
    let to = next(from, E::Finish)?;
    Ok((
        to,
        vec![
            write(key, table, value, true),
            set(key, to, NodeChange::attempt(attempt)),
            close(key, attempt, AttemptEvent::Finish, None)?,
            key.emit(EventKind::NodeFinished, json!({ "attempt": attempt })),
        ],
    ))
}

/// A decided `<Approval>` (by `autoApprove`, or a decision an older engine recorded without
/// finishing the node) finishes with the decision row as its output.
pub(crate) fn finish_decided(
    key: &NodeKey,
    from: NodeState,
    table: &Rc<OutputTable>,
    value: Value,
) -> Result<Moved> {
    let to = next(from, E::ApproveDecision)?;
    Ok((
        to,
        vec![
            write(key, table, value, true),
            set(key, to, NodeChange::attempt(0)),
            key.emit(EventKind::NodeFinished, json!({})),
        ],
    ))
}

/// The attempt failed: the node goes back to pending (`retry`) or fails, the attempt is
/// closed with the error, and a failure that is not `continueOnFail` fails the run.
pub(crate) fn fail(
    key: &NodeKey,
    from: NodeState,
    attempt: i64,
    error: &TaskError,
    retry: bool,
    continue_on_fail: bool,
) -> Result<Moved> {
    let to = next(from, if retry { E::Retry } else { E::Fail })?;
    let error_json = serde_json::to_string(error)?;
    let mut effects = vec![
        set(
            key,
            to,
            NodeChange {
                attempts: Some(attempt),
                error: Field::Set(error_json.clone()),
                ..NodeChange::default()
            },
        ),
        close(key, attempt, AttemptEvent::Fail, Some(error_json))?,
        key.emit(
            if retry {
                EventKind::NodeRetrying
            } else {
                EventKind::NodeFailed
            },
            json!({ "attempt": attempt, "error": error }),
        ),
    ];
    if to == S::Failed && !continue_on_fail {
        effects.push(Effect::FailRun(RunError {
            code: error
                .code
                .clone()
                .unwrap_or_else(|| crate::error::codes::TASK_FAILED.into()),
            message: format!("Task {} failed: {}", key.node, error.message),
            node_id: Some(key.node.clone()),
        }));
    }
    Ok((to, effects))
}

/// The run's previous owner died during the attempt: the node runs again.
pub(crate) fn abandon(key: &NodeKey, from: NodeState, attempt: i64) -> Result<Moved> {
    let to = next(from, E::Abandon)?;
    Ok((
        to,
        vec![
            set(key, to, NodeChange::default()),
            close(key, attempt, AttemptEvent::Abandon, None)?,
            key.emit(EventKind::NodeAbandoned, json!({ "attempt": attempt })),
        ],
    ))
}

/// A late result for an attempt the run no longer waits for, or for a node a later render
/// unmounted: the attempt is closed if nothing closed it; the node does not move.
pub(crate) fn close_late(key: &NodeKey, attempt: i64, orphaned: bool) -> Result<Effect> {
    let event = if orphaned {
        AttemptEvent::Orphan
    } else {
        AttemptEvent::Ignore
    };
    let state = attempt::next(Some(AttemptState::Running), event)?;
    Ok(Effect::CloseAttempt {
        node: key.clone(),
        attempt,
        state,
        error: None,
        only_running: true,
    })
}

/// A reachable gate asks for a decision. `shown` is what its events say of the request
/// (title, summary).
pub(crate) fn request_approval(
    key: &NodeKey,
    from: NodeState,
    request: ApprovalRequest,
    shown: Value,
) -> Result<Moved> {
    let to = next(from, E::RequestApproval)?;
    approval::next(None, ApprovalEvent::Request)?;
    let mut effects = vec![
        Effect::RequestApproval {
            node: key.clone(),
            request: Box::new(request),
        },
        set(key, to, NodeChange::attempt(0)),
    ];
    effects.extend(waiting_events(key, shown, false));
    Ok((to, effects))
}

/// A reviewed step's body succeeded: its output is written for the reviewer (not published:
/// no render, no dependent until approval), the attempt closed, the review requested (the
/// next round of a step sent back).
pub(crate) fn await_review(
    key: &NodeKey,
    from: NodeState,
    attempt: i64,
    (table, value): (&Rc<OutputTable>, Value),
    request: ApprovalRequest,
    prior: Option<ApprovalStatus>,
    shown: Value,
) -> Result<Moved> {
    let to = next(from, E::AwaitReview)?;
    approval::next(prior, ApprovalEvent::Request)?;
    let mut effects = vec![
        write(key, table, value, false),
        set(key, to, NodeChange::attempt(attempt)),
        close(key, attempt, AttemptEvent::Finish, None)?,
        Effect::RequestApproval {
            node: key.clone(),
            request: Box::new(request),
        },
    ];
    effects.extend(waiting_events(key, shown, true));
    Ok((to, effects))
}

/// `ApprovalRequested` (with what is shown of the request) and `NodeWaitingApproval` (with
/// a review's kind and round).
fn waiting_events(key: &NodeKey, shown: Value, review: bool) -> [Effect; 2] {
    let mut waiting = json!({});
    if review {
        for k in ["kind", "round"] {
            if let Some(v) = shown.get(k) {
                waiting[k] = v.clone();
            }
        }
    }
    [
        key.emit(EventKind::ApprovalRequested, shown),
        key.emit(EventKind::NodeWaitingApproval, waiting),
    ]
}

/// The task's sub-run waits for a decision of its own: the task waits with it, its attempt
/// closed as `waiting`. A sub-run that ended meanwhile sends the task back to pending at
/// once, to read its result.
pub(crate) fn await_sub_run(
    key: &NodeKey,
    from: NodeState,
    attempt: i64,
    sub_run: &str,
    sub_run_ended: bool,
) -> Result<Moved> {
    let to = next(
        from,
        if sub_run_ended {
            E::Retry
        } else {
            E::AwaitSubRun
        },
    )?;
    Ok((
        to,
        vec![
            set(
                key,
                to,
                NodeChange {
                    sub_run: Field::Set(sub_run.into()),
                    ..NodeChange::attempt(attempt)
                },
            ),
            close(key, attempt, AttemptEvent::Wait, None)?,
            key.emit(
                if sub_run_ended {
                    EventKind::NodeSubRunEnded
                } else {
                    EventKind::NodeWaitingSubRun
                },
                json!({ "subRunId": sub_run }),
            ),
        ],
    ))
}

/// A `<Timer>` started: its attempt closes as waiting, the node waits until the timer row
/// (scheduled with it, `timers.rs`) is fired.
pub(crate) fn await_timer(
    key: &NodeKey,
    from: NodeState,
    attempt: i64,
    due_at_ms: i64,
) -> Result<Moved> {
    let to = next(from, E::AwaitTimer)?;
    Ok((
        to,
        vec![
            set(key, to, NodeChange::attempt(attempt)),
            close(key, attempt, AttemptEvent::Wait, None)?,
            key.emit(
                EventKind::NodeWaitingTimer,
                json!({ "attempt": attempt, "dueAtMs": due_at_ms, "dueAt": crate::time::iso8601(due_at_ms) }),
            ),
        ],
    ))
}

/// A `<Timer>`'s due time passed: the node finishes, with no output (as in Smithers).
pub(crate) fn timer_fired(key: &NodeKey, from: NodeState, lag_ms: i64) -> Result<Moved> {
    let to = next(from, E::TimerFired)?;
    Ok((
        to,
        vec![
            set(key, to, NodeChange::default()),
            key.emit(
                EventKind::NodeFinished,
                json!({ "timer": true, "lagMs": lag_ms }),
            ),
        ],
    ))
}

/// The sub-run a waiting task started ended: the task runs again (in its caller's run).
pub(crate) fn sub_run_ended(key: &NodeKey, from: NodeState, sub_run: &str) -> Result<Moved> {
    let to = next(from, E::SubRunEnded)?;
    Ok((
        to,
        vec![
            set(key, to, NodeChange::default()),
            key.emit(EventKind::NodeSubRunEnded, json!({ "subRunId": sub_run })),
        ],
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `skipIf` held.
    SkipIf,
    /// The gate before the task was denied (without failing).
    Denied,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SkipIf => "skipIf",
            SkipReason::Denied => "denied",
        }
    }
}

pub(crate) fn skip(key: &NodeKey, from: NodeState, reason: SkipReason) -> Result<Moved> {
    let to = next(from, E::Skip)?;
    Ok((
        to,
        vec![
            set(
                key,
                to,
                NodeChange {
                    skip_reason: Field::Set(reason.as_str()),
                    ..NodeChange::attempt(0)
                },
            ),
            key.emit(EventKind::NodeSkipped, json!({ "reason": reason.as_str() })),
        ],
    ))
}

/// The run ended while the node was open.
pub(crate) fn cancel(key: &NodeKey, from: NodeState) -> Result<Moved> {
    let to = next(from, E::Cancel)?;
    Ok((
        to,
        vec![
            set(key, to, NodeChange::default()),
            key.emit(EventKind::NodeCancelled, json!({})),
        ],
    ))
}

pub(super) fn set(key: &NodeKey, state: NodeState, change: NodeChange) -> Effect {
    Effect::SetNode {
        node: key.clone(),
        state,
        change,
    }
}

pub(super) fn write(key: &NodeKey, table: &Rc<OutputTable>, value: Value, publish: bool) -> Effect {
    Effect::WriteOutput {
        node: key.clone(),
        table: table.clone(),
        value,
        publish,
    }
}

pub(super) fn close(
    key: &NodeKey,
    attempt: i64,
    event: AttemptEvent,
    error: Option<String>,
) -> Result<Effect> {
    Ok(Effect::CloseAttempt {
        node: key.clone(),
        attempt,
        state: attempt::next(Some(AttemptState::Running), event)?,
        error,
        only_running: false,
    })
}

mod decide;
pub(crate) use decide::{
    Decided, Verdict, decide, decided_event, decision_event, refuse_answer, rewind,
};

#[cfg(test)]
mod tests;
