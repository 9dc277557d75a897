//! The state machines of the engine: nodes, runs, approvals and attempts.
//!
//! Each machine is a table of legal moves (`MOVES`: from, event, to) and functions that, for
//! one event, check the move and return the **effects** it has: rows to write, outputs to
//! write or withdraw, events to emit. Nothing here touches the store: the applier
//! (`apply.rs`) is the only code that carries effects out, on the store and on the in-memory
//! copy of a driven run, so the two cannot drift. A move not in its table is
//! `ILLEGAL_TRANSITION`; a state read from the store that is not one of a machine's is
//! `CORRUPT_STORE`.
//!
//! Every move taken is counted ([`moves_taken`]), so a test can check that the engine, driven
//! through its scenarios, takes every move of every table (`tests/transitions.rs`).

pub mod approval;
pub mod attempt;
pub mod node;
pub mod run;

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::api::RunError;
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::output::OutputTable;

pub use approval::{ApprovalEvent, ApprovalStatus};
pub use attempt::{AttemptEvent, AttemptState};
pub use node::{NodeEvent, NodeState};
pub use run::{RunEvent, RunStatus};

/// A state that is stored as text.
pub(crate) trait Stored: Copy + Sized + 'static {
    /// The machine's name, for errors.
    const MACHINE: &'static str;
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;

    /// The state a stored text names; anything else means the store was written by
    /// something that is not this engine (or damaged): `CORRUPT_STORE`, never a default.
    fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::CorruptStore {
                what: Self::MACHINE,
                value: text.into(),
            })
    }
}

/// One legal move of a machine.
pub(crate) struct Move<S: 'static, E: 'static> {
    pub from: S,
    pub event: E,
    pub to: S,
}

/// How often each move of each machine was taken in this process.
pub(crate) struct Taken<const N: usize>([AtomicU32; N]);

impl<const N: usize> Taken<N> {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU32 = AtomicU32::new(0);

    pub(crate) const fn new() -> Self {
        Taken([Self::ZERO; N])
    }

    fn counts(&self) -> Vec<u32> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Finds the move for `(from, event)` in `moves` and counts it in `taken`.
pub(crate) fn take<S, E, const N: usize>(
    machine: &'static str,
    moves: &'static [Move<S, E>; N],
    taken: &Taken<N>,
    from: S,
    event: E,
) -> Result<S>
where
    S: Copy + PartialEq + std::fmt::Debug,
    E: Copy + PartialEq + std::fmt::Debug,
{
    match moves
        .iter()
        .position(|m| m.from == from && m.event == event)
    {
        Some(i) => {
            taken.0[i].fetch_add(1, Ordering::Relaxed);
            Ok(moves[i].to)
        }
        None => Err(Error::IllegalTransition {
            machine,
            from: format!("{from:?}"),
            event: format!("{event:?}"),
        }),
    }
}

/// One move of one machine and how often this process took it.
#[derive(Debug, Clone)]
pub struct MoveTaken {
    pub machine: &'static str,
    pub from: String,
    pub event: String,
    pub to: String,
    pub count: u32,
}

fn report<S: std::fmt::Debug, E: std::fmt::Debug, const N: usize>(
    machine: &'static str,
    moves: &[Move<S, E>; N],
    taken: &Taken<N>,
) -> impl Iterator<Item = MoveTaken> {
    let counts = taken.counts();
    moves
        .iter()
        .zip(counts)
        .map(move |(m, count)| MoveTaken {
            machine,
            from: format!("{:?}", m.from),
            event: format!("{:?}", m.event),
            to: format!("{:?}", m.to),
            count,
        })
        .collect::<Vec<_>>()
        .into_iter()
}

/// Every move of every machine with the number of times this process took it (for the
/// transition coverage check).
#[doc(hidden)]
pub fn moves_taken() -> Vec<MoveTaken> {
    report("node", &node::MOVES, &node::TAKEN)
        .chain(report("run", &run::MOVES, &run::TAKEN))
        .chain(report("approval", &approval::MOVES, &approval::TAKEN))
        .chain(report("attempt", &attempt::MOVES, &attempt::TAKEN))
        .collect()
}

/// A node of a run: `(run, node id, iteration)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeKey {
    pub run: String,
    pub node: String,
    pub iteration: i64,
}

impl NodeKey {
    pub(crate) fn new(run: &str, node: &str, iteration: i64) -> NodeKey {
        NodeKey {
            run: run.into(),
            node: node.into(),
            iteration,
        }
    }

    /// `{nodeId, iteration}`, the start of every node event's payload.
    pub(crate) fn payload(&self) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("nodeId".into(), Value::String(self.node.clone()));
        map.insert("iteration".into(), Value::from(self.iteration));
        map
    }

    pub(crate) fn emit(&self, kind: EventKind, extra: Value) -> Effect {
        let mut payload = self.payload();
        if let Value::Object(extra) = extra {
            payload.extend(extra);
        }
        Effect::Emit {
            run: self.run.clone(),
            kind,
            payload: Value::Object(payload),
        }
    }
}

/// A field of a row that a write keeps, sets or clears.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Field<T> {
    #[default]
    Keep,
    Set(T),
    Clear,
}

/// What a node move writes besides the state.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeChange {
    /// The node's attempt count grows to this (never shrinks).
    pub attempts: Option<i64>,
    pub skip_reason: Field<&'static str>,
    /// JSON of the node's error.
    pub error: Field<String>,
    pub sub_run: Field<String>,
}

impl NodeChange {
    /// The usual write of a move that settles an attempt: its number, and no error.
    pub(crate) fn attempt(attempt: i64) -> NodeChange {
        NodeChange {
            attempts: Some(attempt),
            error: Field::Clear,
            ..NodeChange::default()
        }
    }
}

/// What a run move writes besides the status.
#[derive(Debug, Clone)]
pub(crate) enum RunChange {
    /// The status only.
    Status,
    /// Taken by an owner, with a lease until then; a watcher's mark is history.
    Claim { owner: String, lease_until: i64 },
    /// Nobody drives it now (parked).
    Release,
    /// It ended: nobody drives it, and the error (if any) says why.
    End { error: Option<RunError> },
}

/// An approval request as stored (`_smithers_approvals`).
#[derive(Debug, Clone)]
pub(crate) struct ApprovalRequest {
    pub kind: &'static str,
    pub mode: &'static str,
    pub on_deny: &'static str,
    pub output_table: String,
    pub request_json: String,
    pub round: i64,
}

/// A decision as stored on its approval row.
#[derive(Debug, Clone)]
pub(crate) struct DecisionRow {
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    pub decision_json: Option<String>,
    /// Approver inputs (kept for an approval only).
    pub inputs_json: Option<String>,
    /// Why it was denied or rejected.
    pub reason: Option<String>,
    pub pushback_json: Option<String>,
}

/// One round of a review, as `_smithers_approval_history` keeps it.
#[derive(Debug, Clone)]
pub(crate) struct HistoryRow {
    pub round: i64,
    pub status: ApprovalStatus,
    pub requested_at_ms: i64,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    pub inputs_json: Option<String>,
    pub output_json: Option<String>,
    pub stdout_path: Option<String>,
}

/// A new run's row.
#[derive(Debug, Clone)]
pub(crate) struct RunInsert {
    pub run_id: String,
    pub workflow_name: String,
    pub workflow_path: Option<String>,
    pub input_json: String,
    pub owner: String,
    pub lease_until: i64,
    pub started_by: Option<String>,
    pub parent: Option<(String, String, i64)>,
}

/// What an agent attempt asked and answered, kept on its attempt row.
#[derive(Debug, Clone)]
pub(crate) struct AgentRecord {
    pub prompt: String,
    pub text: Option<String>,
    pub usage_json: Option<String>,
    pub agent_json: String,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
}

/// One write (or event) a move has. Effects are data: the applier carries them out, in the
/// order given, inside the transaction of the call that made the move.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    CreateRun(Box<RunInsert>),
    /// A durable timer's row (`timers.rs`); one that exists already keeps its due time.
    ScheduleTimer(Box<crate::timers::NewTimer>),
    SetRunWorkflow {
        run: String,
        name: String,
        path: Option<String>,
    },
    SetRun {
        run: String,
        status: RunStatus,
        change: RunChange,
    },
    /// Why a watcher could not resume the run (`orphaned_runs` passes it over until it changes).
    MarkUnresumable {
        run: String,
        error: RunError,
    },
    SetNode {
        node: NodeKey,
        state: NodeState,
        change: NodeChange,
    },
    /// Every open node of a run is cancelled (a sub-run whose caller ended).
    CancelOpenNodes {
        run: String,
    },
    /// `publish`: the driver learns of the row (and a render that read it is owed); a
    /// reviewed step's proposed output is shown to its reviewer only.
    WriteOutput {
        node: NodeKey,
        table: Rc<OutputTable>,
        value: Value,
        publish: bool,
    },
    DeleteOutput {
        node: NodeKey,
        table: Rc<OutputTable>,
    },
    OpenAttempt {
        node: NodeKey,
        attempt: i64,
        owner: String,
    },
    /// `only_running`: a late result closes an attempt only if nothing closed it before.
    CloseAttempt {
        node: NodeKey,
        attempt: i64,
        state: AttemptState,
        error: Option<String>,
        only_running: bool,
    },
    /// A human task's answer that was refused: an attempt that failed at once.
    RecordRefusedAnswer {
        node: NodeKey,
        attempt: i64,
        error: String,
    },
    SetAttemptLogs {
        node: NodeKey,
        attempt: i64,
        stdout_path: String,
        stderr_path: String,
    },
    SetAttemptExit {
        node: NodeKey,
        attempt: i64,
        exit_code: Option<i32>,
    },
    SetAttemptAgent {
        node: NodeKey,
        attempt: i64,
        record: Box<AgentRecord>,
    },
    CancelAttempts {
        run: String,
    },
    RequestApproval {
        node: NodeKey,
        request: Box<ApprovalRequest>,
    },
    /// A decided request: first writer wins, so the caller saw it `requested` under the
    /// transaction's lock.
    Decide {
        node: NodeKey,
        decision: Box<DecisionRow>,
    },
    /// `<Approval autoApprove>` with `audit`: the row is written decided.
    RecordAutoApproval {
        node: NodeKey,
        request: Box<ApprovalRequest>,
        decision: Box<DecisionRow>,
    },
    /// A request nobody can answer any more (a human task out of attempts).
    WithdrawApproval {
        node: NodeKey,
        decided_by: Option<String>,
        note: Option<String>,
    },
    /// Every open request of a run is withdrawn (it ended).
    WithdrawRequests {
        run: String,
    },
    /// A push-back's scope: a decided gate is asked again (its row goes).
    ForgetGate {
        node: NodeKey,
    },
    /// A push-back's scope: a review opens its next round.
    ReopenReview {
        node: NodeKey,
    },
    AppendHistory {
        node: NodeKey,
        row: Box<HistoryRow>,
    },
    SetLoop {
        run: String,
        loop_id: String,
        iteration: i64,
        done: bool,
    },
    Emit {
        run: String,
        kind: EventKind,
        payload: Value,
    },
    /// The driven run must end: why (the first reason found wins). Memory only; the drive
    /// ends the run at its next turn.
    FailRun(RunError),
    /// An entry of the decision log, sealed onto the chain's head by the applier.
    AppendAudit(Box<crate::audit::NewAuditEntry>),
    /// One person's vote on a quorum gate.
    RecordVote {
        node: NodeKey,
        vote: Box<crate::store::VoteRow>,
    },
}
