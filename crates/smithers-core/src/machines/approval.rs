//! The approval machine: the request row of a gate or a review (`_smithers_approvals`).
//! A gate is requested once and decided once (first writer wins); a review is requested
//! once per round, and a push-back opens the next one. `None` is "no row".

use super::{Move, Stored, Taken};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    Requested,
    Approved,
    Denied,
    /// A review's reviewer rejected the step: the run ends `rejected`.
    Rejected,
    /// A review sent back: the step runs again and asks for the next round.
    PushedBack,
    /// Withdrawn: the run ended, or a human task ran out of answers.
    Cancelled,
}

impl Stored for ApprovalStatus {
    const MACHINE: &'static str = "approval";
    const ALL: &'static [ApprovalStatus] = &[
        ApprovalStatus::Requested,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Rejected,
        ApprovalStatus::PushedBack,
        ApprovalStatus::Cancelled,
    ];

    fn as_str(self) -> &'static str {
        self.as_str()
    }
}

impl ApprovalStatus {
    pub const ALL: &'static [ApprovalStatus] = <ApprovalStatus as Stored>::ALL;

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Requested => "requested",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::PushedBack => "pushed-back",
            ApprovalStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalEvent {
    /// A gate is reached, or a reviewed step (again, after a push-back) ran.
    Request,
    /// `<Approval autoApprove>` decides it the moment it is reached.
    AutoApprove,
    Approve,
    /// A gate denied.
    Deny,
    /// A review denied: the step is rejected.
    Reject,
    PushBack,
    /// Nobody can answer it any more.
    Withdraw,
    /// A push-back's scope: a gate's decision is undone and it is asked again.
    Forget,
    /// A push-back's scope: a review opens its next round.
    Reopen,
}

impl ApprovalEvent {
    pub const ALL: &'static [ApprovalEvent] = &[
        ApprovalEvent::Request,
        ApprovalEvent::AutoApprove,
        ApprovalEvent::Approve,
        ApprovalEvent::Deny,
        ApprovalEvent::Reject,
        ApprovalEvent::PushBack,
        ApprovalEvent::Withdraw,
        ApprovalEvent::Forget,
        ApprovalEvent::Reopen,
    ];
}

use ApprovalEvent as E;
use ApprovalStatus as S;

const fn m(
    from: Option<ApprovalStatus>,
    event: ApprovalEvent,
    to: Option<ApprovalStatus>,
) -> Move<Option<ApprovalStatus>, ApprovalEvent> {
    Move { from, event, to }
}

pub(crate) static MOVES: [Move<Option<ApprovalStatus>, ApprovalEvent>; 14] = [
    m(None, E::Request, Some(S::Requested)),
    m(Some(S::PushedBack), E::Request, Some(S::Requested)),
    m(None, E::AutoApprove, Some(S::Approved)),
    m(Some(S::Requested), E::Approve, Some(S::Approved)),
    m(Some(S::Requested), E::Deny, Some(S::Denied)),
    m(Some(S::Requested), E::Reject, Some(S::Rejected)),
    m(Some(S::Requested), E::PushBack, Some(S::PushedBack)),
    m(Some(S::Requested), E::Withdraw, Some(S::Cancelled)),
    m(Some(S::Requested), E::Forget, None),
    m(Some(S::Approved), E::Forget, None),
    m(Some(S::Denied), E::Forget, None),
    // A human task that ran out of answers (its request withdrawn) is asked again.
    m(Some(S::Cancelled), E::Forget, None),
    m(Some(S::Requested), E::Reopen, Some(S::PushedBack)),
    m(Some(S::Approved), E::Reopen, Some(S::PushedBack)),
];

pub(crate) static TAKEN: Taken<14> = Taken::new();

pub fn next(from: Option<ApprovalStatus>, event: ApprovalEvent) -> Result<Option<ApprovalStatus>> {
    super::take("approval", &MOVES, &TAKEN, from, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(
        from: Option<ApprovalStatus>,
        event: ApprovalEvent,
    ) -> Option<Option<ApprovalStatus>> {
        Some(match (from, event) {
            (None | Some(S::PushedBack), E::Request) => Some(S::Requested),
            (None, E::AutoApprove) => Some(S::Approved),
            (Some(S::Requested), E::Approve) => Some(S::Approved),
            (Some(S::Requested), E::Deny) => Some(S::Denied),
            (Some(S::Requested), E::Reject) => Some(S::Rejected),
            (Some(S::Requested), E::PushBack) => Some(S::PushedBack),
            (Some(S::Requested), E::Withdraw) => Some(S::Cancelled),
            (Some(S::Requested | S::Approved | S::Denied | S::Cancelled), E::Forget) => None,
            (Some(S::Requested | S::Approved), E::Reopen) => Some(S::PushedBack),
            _ => return None,
        })
    }

    #[test]
    fn every_move_and_nothing_else() {
        let mut legal = 0;
        let froms = std::iter::once(None).chain(ApprovalStatus::ALL.iter().copied().map(Some));
        for from in froms {
            for &event in ApprovalEvent::ALL {
                let got = next(from, event).ok();
                assert_eq!(got, expected(from, event), "{from:?} --{event:?}-->");
                legal += usize::from(got.is_some());
            }
        }
        assert_eq!(legal, MOVES.len());
    }

    #[test]
    fn a_decision_is_made_once() {
        for first in [E::Approve, E::Deny, E::Reject, E::PushBack] {
            let decided = next(Some(S::Requested), first).unwrap();
            for second in [E::Approve, E::Deny, E::Reject, E::PushBack] {
                assert!(next(decided, second).is_err(), "{first:?} then {second:?}");
            }
        }
    }
}
