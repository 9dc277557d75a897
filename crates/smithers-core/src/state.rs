//! The node and run state machines, in one place.
//!
//! Every state change in the engine goes through [`NodeState::apply`] or
//! [`RunStatus::apply`]; the caller persists the result together with its events in one
//! transaction. Anything not listed here is an [`Error::IllegalTransition`].

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    Pending,
    InProgress,
    WaitingApproval,
    Finished,
    Failed,
    Skipped,
    Cancelled,
    /// A reviewed step whose reviewer rejected it: the run fails.
    Rejected,
}

/// What can happen to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// An attempt starts (compute task handed to JS, or a native body runs).
    Start,
    /// The attempt produced a valid output.
    Finish,
    /// The attempt failed and a retry is left.
    Retry,
    /// The attempt failed for good.
    Fail,
    /// The owner of the run died while the attempt was open.
    Abandon,
    /// A reachable approval gate asks for a decision.
    RequestApproval,
    /// `<Approval>` approved: the decision row is the output.
    ApproveDecision,
    /// `<Task needsApproval>` approved: the body still has to run.
    ApproveGate,
    /// Denied with `onDeny: "fail"`.
    DenyFail,
    /// Denied with `onDeny: "continue" | "skip"`: `approved: false` is the output.
    DenyContinue,
    /// `skipIf`, or a dependency was denied with `onDeny: "skip"`.
    Skip,
    /// The run ended while the node was still open.
    Cancel,
    /// A reviewed step's body succeeded: its output waits for a reviewer.
    AwaitReview,
    /// The reviewer approved the output.
    ApproveReview,
    /// The reviewer sent the step back to run again, with inputs.
    PushBack,
    /// The reviewer rejected the step.
    Reject,
    /// A sub-run the task started waits for a decision of its own: the task waits with it.
    AwaitSubRun,
    /// The sub-run a task waited on ended: the task runs again to collect its result.
    SubRunEnded,
    /// A push-back's reset scope (the step, or its `rewindTo` target, and what depends on
    /// it) takes the node back to pending, to run again.
    Rewind,
}

impl NodeState {
    pub fn apply(self, event: NodeEvent) -> Result<NodeState> {
        use NodeEvent as E;
        use NodeState as S;
        let next = match (self, event) {
            (S::Pending, E::Start) => S::InProgress,
            (S::InProgress, E::Finish) => S::Finished,
            // Static bodies and decided gates finish without a visible in-progress phase.
            (S::Pending, E::Finish) => S::Finished,
            (S::InProgress, E::Retry) => S::Pending,
            (S::InProgress | S::Pending, E::Fail) => S::Failed,
            (S::InProgress, E::Abandon) => S::Pending,
            (S::Pending, E::RequestApproval) => S::WaitingApproval,
            (S::WaitingApproval | S::Pending, E::ApproveDecision) => S::Finished,
            (S::WaitingApproval, E::ApproveGate) => S::Pending,
            (S::WaitingApproval | S::Pending, E::DenyFail) => S::Failed,
            (S::WaitingApproval | S::Pending, E::DenyContinue) => S::Finished,
            // Skip from waiting: a gate denied with onDeny continue/skip has no output.
            (S::Pending | S::WaitingApproval, E::Skip) => S::Skipped,
            (S::Pending | S::InProgress | S::WaitingApproval, E::Cancel) => S::Cancelled,
            // Static bodies have no visible in-progress phase.
            (S::InProgress | S::Pending, E::AwaitReview) => S::WaitingApproval,
            (S::WaitingApproval, E::ApproveReview) => S::Finished,
            (S::WaitingApproval, E::PushBack) => S::Pending,
            (S::WaitingApproval, E::Reject) => S::Rejected,
            (S::InProgress, E::AwaitSubRun) => S::WaitingApproval,
            (S::WaitingApproval, E::SubRunEnded) => S::Pending,
            (S::Pending | S::Finished | S::Failed | S::Skipped | S::WaitingApproval, E::Rewind) => {
                S::Pending
            }
            (from, event) => {
                return Err(Error::IllegalTransition {
                    machine: "node",
                    from: from.as_str().into(),
                    event: format!("{event:?}"),
                });
            }
        };
        Ok(next)
    }

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

    pub fn parse(s: &str) -> Option<NodeState> {
        Some(match s {
            "pending" => NodeState::Pending,
            "in-progress" => NodeState::InProgress,
            "waiting-approval" => NodeState::WaitingApproval,
            "finished" => NodeState::Finished,
            "failed" => NodeState::Failed,
            "skipped" => NodeState::Skipped,
            "cancelled" => NodeState::Cancelled,
            "rejected" => NodeState::Rejected,
            _ => return None,
        })
    }

    /// Open nodes are cancelled when their run ends early.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            NodeState::Pending | NodeState::InProgress | NodeState::WaitingApproval
        )
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// Only approvals are left to wait for; the driver lets go of the run.
    Park,
    /// A decision (or a resume) makes the run movable again.
    Wake,
    Finish,
    Fail,
    Cancel,
    Reject,
}

impl RunStatus {
    pub fn apply(self, event: RunEvent) -> Result<RunStatus> {
        use RunEvent as E;
        use RunStatus as S;
        let next = match (self, event) {
            (S::Running, E::Park) => S::WaitingApproval,
            (S::WaitingApproval | S::WaitingTimer | S::Running, E::Wake) => S::Running,
            (S::Running, E::Finish) => S::Finished,
            (S::Running | S::WaitingApproval | S::WaitingTimer, E::Fail) => S::Failed,
            (S::Running | S::WaitingApproval | S::WaitingTimer, E::Cancel) => S::Cancelled,
            (S::Running | S::WaitingApproval | S::WaitingTimer, E::Reject) => S::Rejected,
            (from, event) => {
                return Err(Error::IllegalTransition {
                    machine: "run",
                    from: from.as_str().into(),
                    event: format!("{event:?}"),
                });
            }
        };
        Ok(next)
    }

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

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "waiting-approval" => RunStatus::WaitingApproval,
            "waiting-timer" => RunStatus::WaitingTimer,
            "finished" => RunStatus::Finished,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            "rejected" => RunStatus::Rejected,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Rejected
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_nodes_never_restart() {
        for event in [
            NodeEvent::Start,
            NodeEvent::RequestApproval,
            NodeEvent::Skip,
        ] {
            assert!(NodeState::Finished.apply(event).is_err());
        }
    }

    #[test]
    fn a_gate_goes_back_to_pending_when_approved() {
        let s = NodeState::Pending
            .apply(NodeEvent::RequestApproval)
            .unwrap();
        assert_eq!(s, NodeState::WaitingApproval);
        assert_eq!(s.apply(NodeEvent::ApproveGate).unwrap(), NodeState::Pending);
    }

    #[test]
    fn a_second_decision_is_illegal() {
        let s = NodeState::WaitingApproval
            .apply(NodeEvent::DenyFail)
            .unwrap();
        assert!(s.apply(NodeEvent::ApproveDecision).is_err());
    }

    #[test]
    fn a_reviewed_step_waits_after_it_ran() {
        let s = NodeState::InProgress.apply(NodeEvent::AwaitReview).unwrap();
        assert_eq!(s, NodeState::WaitingApproval);
        assert_eq!(s.apply(NodeEvent::PushBack).unwrap(), NodeState::Pending);
        assert_eq!(
            s.apply(NodeEvent::ApproveReview).unwrap(),
            NodeState::Finished
        );
        let rejected = s.apply(NodeEvent::Reject).unwrap();
        assert_eq!(rejected, NodeState::Rejected);
        for e in [
            NodeEvent::Start,
            NodeEvent::ApproveReview,
            NodeEvent::PushBack,
            NodeEvent::Skip,
        ] {
            assert!(rejected.apply(e).is_err(), "{e:?}");
        }
    }

    #[test]
    fn a_task_waits_on_its_sub_run_and_runs_again_when_it_ends() {
        let s = NodeState::InProgress.apply(NodeEvent::AwaitSubRun).unwrap();
        assert_eq!(s, NodeState::WaitingApproval);
        assert_eq!(s.apply(NodeEvent::SubRunEnded).unwrap(), NodeState::Pending);
        assert!(NodeState::Pending.apply(NodeEvent::SubRunEnded).is_err());
    }

    #[test]
    fn rewinding_takes_ended_nodes_back_but_never_a_running_or_rejected_one() {
        for from in [NodeState::Finished, NodeState::Failed, NodeState::Skipped] {
            assert_eq!(from.apply(NodeEvent::Rewind).unwrap(), NodeState::Pending);
        }
        assert!(NodeState::InProgress.apply(NodeEvent::Rewind).is_err());
        assert!(NodeState::Rejected.apply(NodeEvent::Rewind).is_err());
    }

    #[test]
    fn terminal_runs_stay_terminal() {
        for s in [
            RunStatus::Finished,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Rejected,
        ] {
            for e in [RunEvent::Park, RunEvent::Wake, RunEvent::Finish] {
                assert!(s.apply(e).is_err(), "{s:?} {e:?}");
            }
        }
    }
}
