//! Durable timers: a due time is a row (`_smithers_timers`, the store's `TimerRows`), not a
//! thread or a process. A `<Timer>`, and three that belong to a waiting request (a gate's
//! deadline, its reminders and its escalation steps, all scheduled with the request by
//! [`request_timers`]; `approval-reminder` and `approval-escalation` are at the end of this
//! file):
//!
//! - `timer`: a `<Timer duration|until>` node. Starting it schedules its row (`round` = the
//!   node's attempt; a row that exists already keeps its due time, so a restart does not move
//!   it) and moves the node to `waiting-approval` (as a task waiting on a sub-run does); a
//!   run whose waiting nodes are all timers parks `waiting-timer`. Firing finishes the node
//!   (no output) and wakes the run.
//! - `approval-timeout`: a gate's or a review's deadline (`timeoutMs` / `deadline`), scheduled
//!   with its request (`round` = the review round). Firing records the gate's `onTimeout`
//!   decision (`deny` by default, `approve`, or `fail`: denied and failed whatever `onDeny`
//!   says) as decided by `system:timeout`, through the same code as a person's decision: the
//!   same row, output and events, plus `ApprovalTimedOut`. A gate decided before its deadline
//!   leaves its row to be closed `obsolete` when it comes due.
//!
//! **Exactly once.** [`Engine::fire_due_timers`] fires each due row in a write transaction of
//! its own that starts with `UPDATE … SET status = 'fired' WHERE … AND status = 'scheduled'`:
//! of several engines (processes, hosts) that find the same row due, the first one's update
//! takes it and carries out its effect in the same transaction; the others' update changes
//! nothing and they move on. Who calls it: every engine process that runs on the store
//! (`smithers up` while its run waits on timers, `smithers serve`, an embedding service's
//! `SmithersEngine`), each with one wake-up at the earliest due time
//! ([`Engine::next_timer_due`]), and the CLI commands `resume`, `approve` and `deny` before
//! they do anything else. A timer of a run another engine drives is fired all the same; that
//! engine's next driving call picks the change up (`refresh`), so a `<Timer>` that comes due
//! while tasks of its run are in flight finishes at the run's next driving call. "Now" is
//! the engine's clock.

use serde::Serialize;
use serde_json::json;

use crate::apply::Tx;
use crate::decision::{self, DecisionRequest};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::graph::{Escalation, OnTimeout, Remind};
use crate::logs::TIMER;
use crate::machines::{ApprovalStatus, Effect, NodeKey, NodeState, RunStatus, node};
use crate::time::iso8601;

/// Who decides a gate whose deadline passed.
pub const TIMEOUT_DECIDER: &str = "system:timeout";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// A `<Timer>` node.
    Timer,
    /// An approval's deadline.
    ApprovalTimeout,
    /// A reminder to a waiting gate's approvers (`remind`).
    ApprovalReminder,
    /// An escalation step of a waiting gate (`escalate`).
    ApprovalEscalation,
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Timer => "timer",
            TimerKind::ApprovalTimeout => "approval-timeout",
            TimerKind::ApprovalReminder => "approval-reminder",
            TimerKind::ApprovalEscalation => "approval-escalation",
        }
    }

    pub fn parse(s: &str) -> Result<TimerKind> {
        match s {
            "timer" => Ok(TimerKind::Timer),
            "approval-timeout" => Ok(TimerKind::ApprovalTimeout),
            "approval-reminder" => Ok(TimerKind::ApprovalReminder),
            "approval-escalation" => Ok(TimerKind::ApprovalEscalation),
            other => Err(Error::CorruptStore {
                what: "timer kind",
                value: other.into(),
            }),
        }
    }
}

/// A timer to schedule.
#[derive(Debug, Clone)]
pub(crate) struct NewTimer {
    pub key: NodeKey,
    pub kind: TimerKind,
    pub round: i64,
    pub due_at_ms: i64,
    /// What firing does (`{"onTimeout": "deny"}`).
    pub spec_json: Option<String>,
}

/// A timer's row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerRow {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub kind: String,
    pub round: i64,
    pub due_at_ms: i64,
    pub due_at: String,
    /// `scheduled`, `fired`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_json: Option<String>,
    pub created_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub fired_by: Option<String>,
    /// What firing did: `finished` (a `<Timer>`), `approved` / `denied` / `rejected` /
    /// `failed` (a deadline's decision), `obsolete` (nothing left to do: the gate was
    /// decided, the run ended).
    pub outcome: Option<String>,
}

/// One timer this engine fired.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredTimer {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub kind: String,
    pub due_at_ms: i64,
    pub lag_ms: i64,
    pub outcome: String,
    /// The run's status after the fire.
    pub run_status: String,
    /// The run can move and nobody drives it: the caller (or a watcher) should resume it.
    pub needs_resume: bool,
}

/// How many due timers one call fires at most (the caller calls again while it fires any).
pub const FIRE_BATCH: usize = 100;

impl Engine {
    /// The earliest due time of a scheduled timer in the store, if any: when to wake up next.
    pub fn next_timer_due(&self) -> Result<Option<i64>> {
        self.store.next_timer_due()
    }

    /// The timers of a run, earliest due first.
    pub fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRow>> {
        self.store.run_timers(run_id)
    }

    /// Fires every timer due at this engine's "now" (at most `limit`, earliest first), each
    /// in a write transaction of its own: the conditional update that takes the row and the
    /// effect commit together, so a timer fires once whoever races for it. Returns the timers
    /// this call fired (not those another engine took first).
    pub fn fire_due_timers(&mut self, limit: usize) -> Result<Vec<FiredTimer>> {
        self.fire_due_timers_of(None, limit)
    }

    /// As [`Engine::fire_due_timers`], limited to one run's timers when `run` is given: what
    /// a driver with task bodies in flight fires of its own run (a `<Timer>` beside a long
    /// task), without taking on other runs' timers.
    pub fn fire_due_timers_of(
        &mut self,
        run: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FiredTimer>> {
        let now = self.now();
        let mut fired = Vec::new();
        // One due row at a time, earliest first, re-read after each fire: a fire may schedule
        // a timer due before the rest (the next reminder before the deadline). A read first:
        // no write lock is taken when nothing is due.
        // A row another engine took is not `scheduled` any more, so the next read skips it.
        for _ in 0..limit.max(1) {
            let Some(row) = self.store.due_timers(now, run, 1)?.into_iter().next() else {
                break;
            };
            let me = self.config.owner.clone();
            let bound = self
                .runs
                .get(&row.run_id)
                .map(|r| r.schema_versions.clone());
            let driving = self.runs.contains_key(&row.run_id);
            let done = self.transaction(|tx| fire_one(tx, &row, &me, bound.as_ref()))?;
            let Some(mut done) = done else {
                tracing::debug!(
                    target: TIMER,
                    run_id = row.run_id.as_str(),
                    node_id = row.node_id.as_str(),
                    kind = row.kind.as_str(),
                    "timer taken by another engine"
                );
                continue;
            };
            if driving {
                // This engine drives the run: its next driving call picks the change up.
                done.needs_resume = false;
            }
            tracing::info!(
                target: TIMER,
                run_id = done.run_id.as_str(),
                node_id = done.node_id.as_str(),
                iteration = done.iteration,
                kind = done.kind.as_str(),
                due_at_ms = done.due_at_ms,
                lag_ms = done.lag_ms,
                outcome = done.outcome.as_str(),
                run_status = done.run_status.as_str(),
                "timer fired"
            );
            fired.push(done);
        }
        Ok(fired)
    }
}

/// Fires one row inside its transaction; `None` when another engine fired it first.
fn fire_one(
    tx: &mut Tx<'_>,
    row: &TimerRow,
    me: &str,
    bound: Option<&std::collections::HashMap<String, i64>>,
) -> Result<Option<FiredTimer>> {
    let key = NodeKey::new(&row.run_id, &row.node_id, row.iteration);
    let kind = TimerKind::parse(&row.kind)?;
    if !tx.store.take_timer(&key, kind, row.round, me, tx.now)? {
        return Ok(None);
    }
    let lag_ms = (tx.now - row.due_at_ms).max(0);
    let run_row = tx.store.run(&row.run_id)?;
    let run_status = run_row.as_ref().map(|r| r.status);
    let owner = run_row.and_then(|r| r.owner);
    let open = run_status.is_some_and(|s| !s.is_terminal());
    let outcome = match (kind, open) {
        (_, false) => "obsolete".to_string(),
        (TimerKind::Timer, true) => {
            let state = tx.store.node(&key)?.map(|n| (n.state, n.attempts));
            match state {
                Some((NodeState::WaitingApproval, attempts)) if attempts == row.round => {
                    let (_, effects) = node::timer_fired(&key, NodeState::WaitingApproval, lag_ms)?;
                    tx.apply(effects)?;
                    if let Some(status) = run_status {
                        crate::runs::wake(tx, &row.run_id, status)?;
                    }
                    "finished".to_string()
                }
                _ => "obsolete".to_string(),
            }
        }
        (TimerKind::ApprovalTimeout, true) => fire_deadline(tx, row, &key, bound)?,
        (TimerKind::ApprovalReminder, true) => fire_reminder(tx, row, &key)?,
        (TimerKind::ApprovalEscalation, true) => fire_escalation(tx, row, &key)?,
    };
    tx.store
        .set_timer_outcome(&key, kind, row.round, &outcome)?;
    tx.apply(vec![Effect::Emit {
        run: row.run_id.clone(),
        kind: EventKind::TimerFired,
        payload: json!({
            "nodeId": row.node_id, "iteration": row.iteration, "kind": row.kind,
            "dueAtMs": row.due_at_ms, "dueAt": iso8601(row.due_at_ms), "lagMs": lag_ms,
            "outcome": outcome,
        }),
    }])?;
    let after = tx.store.run(&row.run_id)?;
    let status = after.as_ref().map_or(RunStatus::Cancelled, |r| r.status);
    let owned = after
        .as_ref()
        .and_then(|r| r.owner.as_ref().map(|o| (o.clone(), r.lease_expires_at_ms)))
        .or(owner.map(|o| (o, None)))
        .is_some_and(|(o, lease)| o == me || crate::owner::holds(&o, lease, tx.now));
    Ok(Some(FiredTimer {
        run_id: row.run_id.clone(),
        node_id: row.node_id.clone(),
        iteration: row.iteration,
        kind: row.kind.clone(),
        due_at_ms: row.due_at_ms,
        lag_ms,
        needs_resume: outcome != "obsolete" && status == RunStatus::Running && !owned,
        outcome,
        run_status: status.as_str().to_string(),
    }))
}

/// A deadline passed: the gate's `onTimeout` decision, recorded as `system:timeout`, when
/// the gate still waits in the round the deadline was set for.
fn fire_deadline(
    tx: &mut Tx<'_>,
    row: &TimerRow,
    key: &NodeKey,
    bound: Option<&std::collections::HashMap<String, i64>>,
) -> Result<String> {
    let open = tx
        .store
        .approval(key)?
        .filter(|a| a.status == ApprovalStatus::Requested && a.round == row.round);
    if open.is_none() {
        return Ok("obsolete".into());
    }
    let on_timeout = row
        .spec_json
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("onTimeout").cloned())
        .and_then(|v| serde_json::from_value::<OnTimeout>(v).ok())
        .unwrap_or_default();
    let req = DecisionRequest {
        run_id: row.run_id.clone(),
        node_id: Some(row.node_id.clone()),
        iteration: Some(row.iteration),
        note: Some(format!(
            "No decision by {}: {} (onTimeout)",
            iso8601(row.due_at_ms),
            on_timeout.as_str()
        )),
        decided_by: Some(TIMEOUT_DECIDER.into()),
        ..DecisionRequest::default()
    };
    let status = match decision::record_timeout(tx, &req, on_timeout, bound) {
        Ok(status) => status,
        // Decided meanwhile, or no longer waiting: nothing for the deadline to do.
        Err(
            Error::AlreadyDecided(_)
            | Error::NotWaiting { .. }
            | Error::RunRejected { .. }
            | Error::NoPendingApprovals { .. },
        ) => return Ok("obsolete".into()),
        Err(e) => return Err(e),
    };
    let outcome = if on_timeout == OnTimeout::Fail {
        "failed".to_string()
    } else {
        status.to_string()
    };
    tx.apply(vec![Effect::Emit {
        run: row.run_id.clone(),
        kind: EventKind::ApprovalTimedOut,
        payload: json!({
            "nodeId": row.node_id, "iteration": row.iteration, "onTimeout": on_timeout.as_str(),
            "status": status, "decidedBy": TIMEOUT_DECIDER, "dueAtMs": row.due_at_ms,
            "dueAt": iso8601(row.due_at_ms), "round": row.round,
        }),
    }])?;
    Ok(outcome)
}

/// Who widens a gate's deciders in the decision log when an escalation step fires.
pub const ESCALATION_ACTOR: &str = "system:escalation";

/// Key rounds of reminders and escalations: the approval's round times this, plus their number.
const ROUND_SPAN: i64 = 10_000;

/// The timers a request schedules with it: its deadline (`round` = the approval's round), its
/// first reminder and its escalation steps.
pub(crate) fn request_timers(
    key: &NodeKey,
    approval_round: i64,
    now: i64,
    deadline: Option<(i64, OnTimeout)>,
    remind: Option<&Remind>,
    escalate: &[Escalation],
) -> Vec<Effect> {
    let mut effects = Vec::new();
    if let Some((due, on_timeout)) = deadline {
        effects.push(Effect::ScheduleTimer(Box::new(NewTimer {
            key: key.clone(),
            kind: TimerKind::ApprovalTimeout,
            round: approval_round,
            due_at_ms: due,
            spec_json: Some(json!({ "onTimeout": on_timeout.as_str() }).to_string()),
        })));
    }
    if let Some(remind) = remind {
        effects.push(reminder(key, approval_round, 1, now, remind));
    }
    for (i, step) in escalate.iter().enumerate() {
        effects.push(Effect::ScheduleTimer(Box::new(NewTimer {
            key: key.clone(),
            kind: TimerKind::ApprovalEscalation,
            round: approval_round * ROUND_SPAN + i as i64 + 1,
            due_at_ms: now.saturating_add(ms(step.after_ms)),
            spec_json: Some(
                json!({ "approvalRound": approval_round, "step": i + 1, "allowedUsers": step.allowed_users,
                        "allowedScopes": step.allowed_scopes })
                .to_string(),
            ),
        })));
    }
    effects
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reminder `n` of a request, `every` after `from`.
fn reminder(key: &NodeKey, approval_round: i64, n: i64, from: i64, remind: &Remind) -> Effect {
    Effect::ScheduleTimer(Box::new(NewTimer {
        key: key.clone(),
        kind: TimerKind::ApprovalReminder,
        round: approval_round * ROUND_SPAN + n,
        due_at_ms: from.saturating_add(ms(remind.every_ms)),
        spec_json: Some(
            json!({ "approvalRound": approval_round, "n": n, "remind": remind }).to_string(),
        ),
    }))
}

fn spec(row: &TimerRow) -> serde_json::Value {
    row.spec_json
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The request a reminder or an escalation was set for, if it still waits in that round.
fn open_request(
    tx: &Tx<'_>,
    key: &NodeKey,
    spec: &serde_json::Value,
) -> Result<Option<crate::store::ApprovalRow>> {
    let round = spec
        .get("approvalRound")
        .and_then(serde_json::Value::as_i64);
    Ok(tx
        .store
        .approval(key)?
        .filter(|a| a.status == ApprovalStatus::Requested && Some(a.round) == round))
}

/// A gate still waits: its approvers are reminded (`ApprovalReminder`, which serve turns into
/// `gate.reminder` webhooks), and the next reminder is scheduled unless `max` is reached.
fn fire_reminder(tx: &mut Tx<'_>, row: &TimerRow, key: &NodeKey) -> Result<String> {
    let spec = spec(row);
    let Some(open) = open_request(tx, key, &spec)? else {
        return Ok("obsolete".into());
    };
    let Some(remind) = spec
        .get("remind")
        .cloned()
        .and_then(|r| serde_json::from_value::<Remind>(r).ok())
    else {
        return Ok("obsolete".into());
    };
    let n = spec
        .get("n")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(1);
    let request: serde_json::Value = serde_json::from_str(&open.request_json).unwrap_or_default();
    let more = remind.max.is_none_or(|max| n < i64::from(max));
    let mut effects = vec![key.emit(
        EventKind::ApprovalReminder,
        json!({ "n": n, "max": remind.max, "everyMs": remind.every_ms, "round": open.round,
                "title": request.get("title"), "summary": request.get("summary"),
                "allowedUsers": request.get("allowedUsers"), "allowedScopes": request.get("allowedScopes"),
                "requestedAtMs": open.requested_at_ms }),
    )];
    if more {
        // From the due time, not from when it fired: a late fire does not shift the series.
        effects.push(reminder(key, open.round, n + 1, row.due_at_ms, &remind));
    }
    tx.apply(effects)?;
    Ok("reminded".into())
}

/// An escalation step: its users and scopes may decide the gate from now on. A list the gate
/// did not restrict (empty: anyone) stays unrestricted; a restricted one gains the step's.
fn fire_escalation(tx: &mut Tx<'_>, row: &TimerRow, key: &NodeKey) -> Result<String> {
    let spec = spec(row);
    let Some(open) = open_request(tx, key, &spec)? else {
        return Ok("obsolete".into());
    };
    let mut request: serde_json::Value =
        serde_json::from_str(&open.request_json).unwrap_or_default();
    let mut added = serde_json::Map::new();
    for field in ["allowedUsers", "allowedScopes"] {
        let extra: Vec<String> = spec
            .get(field)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let mut now: Vec<String> = request
            .get(field)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if now.is_empty() {
            continue;
        }
        let new: Vec<String> = extra.into_iter().filter(|e| !now.contains(e)).collect();
        now.extend(new.iter().cloned());
        added.insert(field.into(), json!(new));
        request[field] = json!(now);
    }
    let escalations = request
        .get("escalated")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let step = spec.get("step").cloned().unwrap_or(json!(null));
    let mut escalated = escalations;
    escalated.push(json!({ "step": step, "at": iso8601(tx.now), "added": added }));
    request["escalated"] = json!(escalated);
    tx.store
        .set_request_json(key, &serde_json::to_string(&request)?)?;
    tx.apply(vec![
        key.emit(
            EventKind::ApprovalEscalated,
            json!({ "step": step, "round": open.round, "added": added,
                    "allowedUsers": request.get("allowedUsers"), "allowedScopes": request.get("allowedScopes"),
                    "title": request.get("title") }),
        ),
        // Who may decide changed: the decision log says when and to whom (audit.rs).
        Effect::AppendAudit(Box::new(crate::audit::NewAuditEntry {
            kind: crate::audit::kinds::ESCALATION,
            run_id: key.run.clone(),
            node_id: Some(key.node.clone()),
            iteration: Some(key.iteration),
            actor: Some(ESCALATION_ACTOR.into()),
            at_ms: tx.now,
            data: json!({ "step": step, "round": open.round, "added": added,
                          "allowedUsers": request.get("allowedUsers"),
                          "allowedScopes": request.get("allowedScopes") }),
        })),
    ])?;
    Ok("escalated".into())
}
