//! The run machine. A run is created `running`, parks `waiting-approval` when only decisions
//! can move it, wakes when one is made, and ends `finished`, `failed`, `cancelled` or
//! `rejected`. `waiting-timer` is the status of a run that waits only on timers (`<Timer>`
//! nodes, `timers.rs`): a timer fired wakes the run, as a decision does.

use serde_json::json;

use super::approval::{self, ApprovalEvent, ApprovalStatus};
use super::attempt::{self, AttemptEvent, AttemptState};
use super::{Effect, Move, RunChange, RunInsert, Stored, Taken};
use crate::api::RunError;
use crate::error::Result;
use crate::events::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Running,
    WaitingApproval,
    WaitingTimer,
    Finished,
    Failed,
    Cancelled,
    /// A reviewer rejected a reviewed step: the run ends, dependents never run.
    Rejected,
}

impl Stored for RunStatus {
    const MACHINE: &'static str = "run";
    const ALL: &'static [RunStatus] = &[
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::WaitingTimer,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Rejected,
    ];

    fn as_str(self) -> &'static str {
        self.as_str()
    }
}

impl RunStatus {
    pub const ALL: &'static [RunStatus] = <RunStatus as Stored>::ALL;

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting-approval",
            RunStatus::WaitingTimer => "waiting-timer",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Rejected => "rejected",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Rejected
        )
    }

    /// Waiting for something outside the engine (a decision, a timer), driven by nobody.
    pub fn is_waiting(self) -> bool {
        matches!(self, RunStatus::WaitingApproval | RunStatus::WaitingTimer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// The run is recorded.
    Start,
    /// An engine takes the run to drive it (resume).
    Claim,
    /// A decision (or a sub-run's end, or a due timer) makes a parked run movable again.
    Wake,
    /// Only decisions are left to wait for; the driver lets go of the run.
    Park,
    /// Only timers are left to wait for (issue 15: durable timers).
    ParkOnTimer,
    /// A parked caller follows what its sub-run now waits on: a sub-run that parked again on
    /// another kind of wait (a decision made, now on a `<Timer>`; a timer fired, now on a
    /// gate) changes what the caller waits on, and so its status.
    FollowSubRun,
    Finish,
    Fail,
    Cancel,
    Reject,
}

impl RunEvent {
    pub const ALL: &'static [RunEvent] = &[
        RunEvent::Start,
        RunEvent::Claim,
        RunEvent::Wake,
        RunEvent::Park,
        RunEvent::ParkOnTimer,
        RunEvent::FollowSubRun,
        RunEvent::Finish,
        RunEvent::Fail,
        RunEvent::Cancel,
        RunEvent::Reject,
    ];
}

use RunEvent as E;
use RunStatus as S;

const fn m(
    from: Option<RunStatus>,
    event: RunEvent,
    to: Option<RunStatus>,
) -> Move<Option<RunStatus>, RunEvent> {
    Move { from, event, to }
}

/// Every legal move of a run (`None`: no run yet).
pub(crate) static MOVES: [Move<Option<RunStatus>, RunEvent>; 16] = [
    m(None, E::Start, Some(S::Running)),
    m(Some(S::Running), E::Claim, Some(S::Running)),
    m(Some(S::WaitingApproval), E::Claim, Some(S::Running)),
    m(Some(S::WaitingTimer), E::Claim, Some(S::Running)),
    m(Some(S::WaitingApproval), E::Wake, Some(S::Running)),
    m(Some(S::WaitingTimer), E::Wake, Some(S::Running)),
    m(Some(S::Running), E::Park, Some(S::WaitingApproval)),
    m(Some(S::Running), E::ParkOnTimer, Some(S::WaitingTimer)),
    m(
        Some(S::WaitingApproval),
        E::FollowSubRun,
        Some(S::WaitingTimer),
    ),
    m(
        Some(S::WaitingTimer),
        E::FollowSubRun,
        Some(S::WaitingApproval),
    ),
    m(Some(S::Running), E::Finish, Some(S::Finished)),
    m(Some(S::Running), E::Fail, Some(S::Failed)),
    m(Some(S::Running), E::Reject, Some(S::Rejected)),
    m(Some(S::Running), E::Cancel, Some(S::Cancelled)),
    m(Some(S::WaitingApproval), E::Cancel, Some(S::Cancelled)),
    m(Some(S::WaitingTimer), E::Cancel, Some(S::Cancelled)),
];

pub(crate) static TAKEN: Taken<16> = Taken::new();

pub fn next(from: Option<RunStatus>, event: RunEvent) -> Result<RunStatus> {
    let to = super::take("run", &MOVES, &TAKEN, from, event)?;
    // Every move ends at a status.
    Ok(to.unwrap_or(S::Failed))
}

pub(crate) type Moved = (RunStatus, Vec<Effect>);

fn changed(run: &str, to: RunStatus, from: RunStatus) -> Effect {
    Effect::Emit {
        run: run.into(),
        kind: EventKind::RunStatusChanged,
        payload: json!({ "status": to.as_str(), "previous": from.as_str() }),
    }
}

/// A new run, owned by its creator.
pub(crate) fn start(insert: RunInsert) -> Result<Moved> {
    let to = next(None, E::Start)?;
    let run = insert.run_id.clone();
    let name = insert.workflow_name.clone();
    Ok((
        to,
        vec![
            Effect::CreateRun(Box::new(insert)),
            Effect::Emit {
                run,
                kind: EventKind::RunStarted,
                payload: json!({ "workflowName": name, "status": to.as_str() }),
            },
        ],
    ))
}

/// An engine takes the run over, with a lease.
pub(crate) fn claim(run: &str, from: RunStatus, owner: &str, lease_until: i64) -> Result<Moved> {
    let to = next(Some(from), E::Claim)?;
    let mut effects = vec![Effect::SetRun {
        run: run.into(),
        status: to,
        change: RunChange::Claim {
            owner: owner.into(),
            lease_until,
        },
    }];
    if to != from {
        effects.push(changed(run, to, from));
    }
    Ok((to, effects))
}

/// A decision (or a sub-run's end) wakes a parked run: whoever resumes it picks it up. A run
/// that is not waiting stays as it is.
pub(crate) fn wake(run: &str, from: RunStatus) -> Result<Moved> {
    if !from.is_waiting() {
        return Ok((from, Vec::new()));
    }
    let to = next(Some(from), E::Wake)?;
    Ok((
        to,
        vec![
            Effect::SetRun {
                run: run.into(),
                status: to,
                change: RunChange::Status,
            },
            changed(run, to, from),
        ],
    ))
}

/// Only decisions can move the run: nobody drives it until one is made.
pub(crate) fn park(run: &str, from: RunStatus) -> Result<Moved> {
    park_for(run, from, E::Park)
}

/// Only timers are left to wait for: the run is `waiting-timer`, released like a parked run.
pub(crate) fn park_on_timer(run: &str, from: RunStatus) -> Result<Moved> {
    park_for(run, from, E::ParkOnTimer)
}

/// A parked caller whose sub-run now waits on another kind of wait: `waiting-approval` ⇄
/// `waiting-timer` (`runs::follow_sub_run`). Nobody drives it, so nothing else changes.
pub(crate) fn follow_sub_run(run: &str, from: RunStatus) -> Result<Moved> {
    let to = next(Some(from), E::FollowSubRun)?;
    Ok((
        to,
        vec![
            Effect::SetRun {
                run: run.into(),
                status: to,
                change: RunChange::Status,
            },
            changed(run, to, from),
        ],
    ))
}

fn park_for(run: &str, from: RunStatus, event: RunEvent) -> Result<Moved> {
    let to = next(Some(from), event)?;
    Ok((
        to,
        vec![
            Effect::SetRun {
                run: run.into(),
                status: to,
                change: RunChange::Release,
            },
            changed(run, to, from),
        ],
    ))
}

/// The run ends: open requests withdrawn, running attempts cancelled (its open nodes are
/// cancelled by the caller, node by node, before), the status and why.
pub(crate) fn end(
    run: &str,
    from: RunStatus,
    event: RunEvent,
    error: Option<RunError>,
) -> Result<Moved> {
    let to = next(Some(from), event)?;
    let [withdraw, cancel] = close_open(run)?;
    let mut effects = vec![
        withdraw,
        cancel,
        Effect::SetRun {
            run: run.into(),
            status: to,
            change: RunChange::End {
                error: error.clone(),
            },
        },
        changed(run, to, from),
    ];
    let ended = match to {
        S::Finished => Some((EventKind::RunFinished, json!({}))),
        S::Failed => Some((EventKind::RunFailed, json!({ "error": error }))),
        S::Rejected => Some((EventKind::RunRejected, json!({ "error": error }))),
        _ => None,
    };
    if let Some((kind, payload)) = ended {
        effects.push(Effect::Emit {
            run: run.into(),
            kind,
            payload,
        });
    }
    Ok((to, effects))
}

/// An ending run's open requests are withdrawn and its running attempts cancelled: each row
/// those writes touch takes that move of its machine.
fn close_open(run: &str) -> Result<[Effect; 2]> {
    approval::next(Some(ApprovalStatus::Requested), ApprovalEvent::Withdraw)?;
    attempt::next(Some(AttemptState::Running), AttemptEvent::Cancel)?;
    Ok([
        Effect::WithdrawRequests { run: run.into() },
        Effect::CancelAttempts { run: run.into() },
    ])
}

/// A sub-run whose caller ended (or was sent back) is cancelled with everything open in it.
pub(crate) fn cancel_sub_run(sub_run: &str, from: RunStatus, reason: &str) -> Result<Moved> {
    let to = next(Some(from), E::Cancel)?;
    let [withdraw, cancel] = close_open(sub_run)?;
    Ok((
        to,
        vec![
            Effect::CancelOpenNodes {
                run: sub_run.into(),
            },
            withdraw,
            cancel,
            Effect::SetRun {
                run: sub_run.into(),
                status: to,
                change: RunChange::End { error: None },
            },
            Effect::Emit {
                run: sub_run.into(),
                kind: EventKind::RunStatusChanged,
                payload: json!({ "status": to.as_str(), "previous": from.as_str(), "reason": reason }),
            },
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(from: Option<RunStatus>, event: RunEvent) -> Option<RunStatus> {
        Some(match (from, event) {
            (None, E::Start) => S::Running,
            (Some(S::Running | S::WaitingApproval | S::WaitingTimer), E::Claim) => S::Running,
            (Some(S::WaitingApproval | S::WaitingTimer), E::Wake) => S::Running,
            (Some(S::Running), E::Park) => S::WaitingApproval,
            (Some(S::Running), E::ParkOnTimer) => S::WaitingTimer,
            (Some(S::WaitingApproval), E::FollowSubRun) => S::WaitingTimer,
            (Some(S::WaitingTimer), E::FollowSubRun) => S::WaitingApproval,
            (Some(S::Running), E::Finish) => S::Finished,
            (Some(S::Running), E::Fail) => S::Failed,
            (Some(S::Running), E::Reject) => S::Rejected,
            (Some(S::Running | S::WaitingApproval | S::WaitingTimer), E::Cancel) => S::Cancelled,
            _ => return None,
        })
    }

    #[test]
    fn every_move_and_nothing_else() {
        let mut legal = 0;
        let froms = std::iter::once(None).chain(RunStatus::ALL.iter().copied().map(Some));
        for from in froms {
            for &event in RunEvent::ALL {
                let got = next(from, event).ok();
                assert_eq!(got, expected(from, event), "{from:?} --{event:?}-->");
                legal += usize::from(got.is_some());
            }
        }
        assert_eq!(legal, MOVES.len());
    }

    #[test]
    fn terminal_runs_stay_terminal() {
        for &s in RunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            for &e in RunEvent::ALL {
                assert!(next(Some(s), e).is_err(), "{s:?} {e:?}");
            }
        }
    }

    #[test]
    fn waking_a_run_that_does_not_wait_changes_nothing() {
        let (to, effects) = wake("r", S::Running).unwrap();
        assert_eq!(to, S::Running);
        assert!(effects.is_empty());
        let (to, effects) = wake("r", S::WaitingApproval).unwrap();
        assert_eq!(to, S::Running);
        assert_eq!(effects.len(), 2);
    }
}
