//! The attempt machine: one run of a task's body (`_smithers_attempts`). An attempt is opened
//! `running` when the node starts and closed exactly once, with how it ended.

use super::{Move, Stored, Taken};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptState {
    Running,
    Finished,
    Failed,
    /// Its engine died while it ran; the node runs again.
    Abandoned,
    /// Its run ended while it ran.
    Cancelled,
    /// Its result came after a render had unmounted the node.
    Orphaned,
    /// Its result came for an attempt the run no longer waited for.
    Ignored,
    /// It started a sub-run that waits for a decision; the node waits with it.
    Waiting,
}

impl Stored for AttemptState {
    const MACHINE: &'static str = "attempt";
    const ALL: &'static [AttemptState] = &[
        AttemptState::Running,
        AttemptState::Finished,
        AttemptState::Failed,
        AttemptState::Abandoned,
        AttemptState::Cancelled,
        AttemptState::Orphaned,
        AttemptState::Ignored,
        AttemptState::Waiting,
    ];

    fn as_str(self) -> &'static str {
        self.as_str()
    }
}

impl AttemptState {
    pub const ALL: &'static [AttemptState] = <AttemptState as Stored>::ALL;

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Running => "running",
            AttemptState::Finished => "finished",
            AttemptState::Failed => "failed",
            AttemptState::Abandoned => "abandoned",
            AttemptState::Cancelled => "cancelled",
            AttemptState::Orphaned => "orphaned",
            AttemptState::Ignored => "ignored",
            AttemptState::Waiting => "waiting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEvent {
    Open,
    Finish,
    Fail,
    Abandon,
    Cancel,
    Orphan,
    Ignore,
    Wait,
    /// A human task's answer that does not fit: an attempt that failed as it was made.
    Refuse,
}

impl AttemptEvent {
    pub const ALL: &'static [AttemptEvent] = &[
        AttemptEvent::Open,
        AttemptEvent::Finish,
        AttemptEvent::Fail,
        AttemptEvent::Abandon,
        AttemptEvent::Cancel,
        AttemptEvent::Orphan,
        AttemptEvent::Ignore,
        AttemptEvent::Wait,
        AttemptEvent::Refuse,
    ];
}

use AttemptEvent as E;
use AttemptState as S;

const fn m(
    from: Option<AttemptState>,
    event: AttemptEvent,
    to: AttemptState,
) -> Move<Option<AttemptState>, AttemptEvent> {
    Move {
        from,
        event,
        to: Some(to),
    }
}

pub(crate) static MOVES: [Move<Option<AttemptState>, AttemptEvent>; 9] = [
    m(None, E::Open, S::Running),
    m(None, E::Refuse, S::Failed),
    m(Some(S::Running), E::Finish, S::Finished),
    m(Some(S::Running), E::Fail, S::Failed),
    m(Some(S::Running), E::Abandon, S::Abandoned),
    m(Some(S::Running), E::Cancel, S::Cancelled),
    m(Some(S::Running), E::Orphan, S::Orphaned),
    m(Some(S::Running), E::Ignore, S::Ignored),
    m(Some(S::Running), E::Wait, S::Waiting),
];

pub(crate) static TAKEN: Taken<9> = Taken::new();

pub fn next(from: Option<AttemptState>, event: AttemptEvent) -> Result<AttemptState> {
    let to = super::take("attempt", &MOVES, &TAKEN, from, event)?;
    Ok(to.unwrap_or(S::Failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_and_nothing_else() {
        let mut legal = 0;
        let froms = std::iter::once(None).chain(AttemptState::ALL.iter().copied().map(Some));
        for from in froms {
            for &event in AttemptEvent::ALL {
                let expected = match (from, event) {
                    (None, E::Open) => Some(S::Running),
                    (None, E::Refuse) => Some(S::Failed),
                    (None, _) | (_, E::Open | E::Refuse) => None,
                    (Some(S::Running), E::Finish) => Some(S::Finished),
                    (Some(S::Running), E::Fail) => Some(S::Failed),
                    (Some(S::Running), E::Abandon) => Some(S::Abandoned),
                    (Some(S::Running), E::Cancel) => Some(S::Cancelled),
                    (Some(S::Running), E::Orphan) => Some(S::Orphaned),
                    (Some(S::Running), E::Ignore) => Some(S::Ignored),
                    (Some(S::Running), E::Wait) => Some(S::Waiting),
                    (Some(_), _) => None,
                };
                let got = next(from, event).ok();
                assert_eq!(got, expected, "{from:?} --{event:?}-->");
                legal += usize::from(got.is_some());
            }
        }
        assert_eq!(legal, MOVES.len());
    }
}
