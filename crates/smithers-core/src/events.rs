//! Events: written in the transaction that caused them (`_smithers_events`), and handed to
//! in-process subscribers after that transaction commits. Their kinds are one enum: those the
//! core's moves emit, and those a driver records about what it ran outside the core.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $name:ident $(= $driver:ident)?),* $(,)?) => {
        /// Every kind of event the engine writes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $name),*
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$name => stringify!($name)),*
                }
            }

            /// Kinds a driver may record (`record_driver_event`) about what it ran outside
            /// the core: handlers, mail, an agent's tool calls.
            pub fn is_driver(self) -> bool {
                match self {
                    $(EventKind::$name => event_kinds!(@driver $($driver)?)),*
                }
            }
        }
    };
    (@driver driver) => { true };
    (@driver) => { false };
}

event_kinds! {
    RunStarted,
    RunStatusChanged,
    RunFinished,
    RunFailed,
    RunRejected,
    NodeStarted,
    NodeFinished,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeCancelled,
    NodeAbandoned,
    NodeWaitingApproval,
    NodeRejected,
    NodePushedBack,
    /// A push-back's scope took the node back to pending.
    NodeReset,
    NodeWaitingSubRun,
    NodeSubRunEnded,
    /// A `<Timer>` waits for its due time (`dueAtMs`).
    NodeWaitingTimer,
    /// A durable timer was scheduled (`kind`, `dueAtMs`): a `<Timer>`'s or a gate's deadline.
    TimerScheduled,
    /// A durable timer fired (`kind`, `dueAtMs`, `lagMs`, `outcome`), once.
    TimerFired,
    /// A gate's deadline passed undecided: its `onTimeout` decision was recorded as
    /// `system:timeout` (`onTimeout`, `status`, `dueAtMs`).
    ApprovalTimedOut,
    /// A gate still waits: its approvers are reminded (`n`, `max`).
    ApprovalReminder,
    /// An escalation widened who may decide a waiting gate (`allowedUsers`, `allowedScopes`).
    ApprovalEscalated,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
    ApprovalAutoApproved,
    ApprovalRejected,
    ApprovalPushedBack,
    /// One person's vote on a quorum gate that did not decide it.
    ApprovalVoted,
    HumanAnswerInvalid,
    LoopIteration,
    LoopFinished,
    /// An agent attempt's tokens, with its result.
    TokenUsageReported,
    /// A watcher could not resume the run.
    ResumeFailed,
    HandlerStarted = driver,
    HandlerFinished = driver,
    HandlerFailed = driver,
    WaitMailSent = driver,
    WaitMailFailed = driver,
    FailureMailSent = driver,
    FailureMailFailed = driver,
    ToolCallStarted = driver,
    ToolCallFinished = driver,
    /// A git worktree the driver made for `<Worktree>`.
    WorktreeCreated = driver,
}

impl EventKind {
    /// The kind a stored name is; an unknown one is `CORRUPT_STORE`.
    pub fn parse(name: &str) -> Result<EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| Error::CorruptStore {
                what: "event",
                value: name.into(),
            })
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub run_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub timestamp_ms: i64,
    /// Position in the database-wide order of events (`feed`); absent on events written
    /// before schema v3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_id: Option<i64>,
    #[serde(flatten)]
    pub payload: Map<String, Value>,
}

/// One debug line per committed event (target `smithers_core::events`): every transition of
/// every node and run, in commit order. Called after the transaction commits, never before.
pub(crate) fn log_committed(events: &[Event]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for e in events {
        let payload = serde_json::to_string(&e.payload).unwrap_or_default();
        tracing::debug!(run_id = e.run_id.as_str(), seq = e.seq, event = e.kind.as_str(), payload = %payload, "committed");
    }
}
