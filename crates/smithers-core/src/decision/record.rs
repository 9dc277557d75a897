//! Recording a decision, in its transaction: the request checked open under the lock (first
//! writer wins), the node moved, the output written, a push-back's scope rewound, the run
//! woken.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::values::{RefusedAnswer, human_answer};
use super::{DecisionOutcome, DecisionRequest, Gate, Tally, decision_value, gate, quorum};
use crate::api::OutputRow;
use crate::apply::Tx;
use crate::audit::{self, NewAuditEntry};
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::graph::{ApprovalMode, OnDeny};
use crate::machines::node::{self, Decided, Verdict};
use crate::machines::{
    ApprovalStatus, DecisionRow, Effect, HistoryRow, NodeEvent, NodeKey, NodeState, RunStatus,
};
use crate::runs::{self, SubRuns};
use crate::time::iso8601;

/// What was recorded, for the outcome.
pub(super) struct Recorded {
    pub(super) status: &'static str,
    pub(super) run_status: RunStatus,
    pub owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub at_ms: i64,
    reset: Vec<String>,
    output: Option<OutputRow>,
    /// A human task's answer that was refused: attempt, maxAttempts, why.
    refused: Option<(i64, i64, Value)>,
    /// The refused answer used the task's last attempt.
    exhausted: bool,
    approval_iteration: i64,
    /// A quorum gate's votes after this one.
    tally: Option<Tally>,
}

impl Recorded {
    pub(super) fn outcome(
        self,
        req: DecisionRequest,
        gate: Gate,
        live_owner: Option<String>,
    ) -> DecisionOutcome {
        // A vote that did not decide its gate moves nothing.
        let moves_on = (self.refused.is_none() || self.exhausted)
            && self.tally.as_ref().is_none_or(|t| t.decided);
        let (attempt, max_attempts, error) = match self.refused {
            Some((a, m, e)) => (Some(a), Some(m), Some(e)),
            None => (None, None, None),
        };
        DecisionOutcome {
            needs_resume: moves_on && !self.run_status.is_terminal() && live_owner.is_none(),
            run_id: req.run_id,
            node_id: gate.node_id,
            iteration: gate.iteration,
            status: self.status,
            decided_by: req.decided_by,
            decided_at: iso8601(self.at_ms),
            run_status: self.run_status.as_str(),
            kind: gate.kind,
            round: gate.round,
            approval_iteration: self.approval_iteration,
            reset: self.reset,
            inputs: req.inputs,
            owner: live_owner,
            output: self.output,
            attempt,
            max_attempts,
            error,
            quorum: self.tally,
        }
    }
}

/// Where a push-back restarts, stored on its request when the review was asked for:
/// `[[nodeId, iteration], …]`.
pub(crate) fn reset_scope_of(request: &Value) -> Vec<(String, i64)> {
    request
        .get("resetScope")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

pub(super) fn record(
    tx: &mut Tx<'_>,
    req: &DecisionRequest,
    gate: &Gate,
    verdict: Verdict,
    bound: Option<&HashMap<String, i64>>,
) -> Result<Recorded> {
    let run_id = &req.run_id;
    let approved = verdict == Verdict::Approve;
    let review = gate.is_review();
    let human = !review && gate.mode == ApprovalMode::Human;
    let table = match (review, gate.mode) {
        (false, ApprovalMode::Gate) => None,
        _ => Some(tx.table(run_id, bound, &gate.output_table)?),
    };
    let at_ms = tx.now;
    let decided_at = iso8601(at_ms);
    // A human task's answer is its output: valid for the schema, or a failed attempt.
    let answer = match (&table, human && approved) {
        (Some(table), true) => Some(human_answer(gate, req, table)?),
        _ => None,
    };
    let output_value = match (&table, &answer) {
        (_, Some(answer)) => answer.as_ref().ok().cloned(),
        (Some(table), None) if !review && (approved || gate.on_deny != OnDeny::Fail) => {
            let mut v = decision_value(
                gate.mode,
                &gate.request,
                approved,
                req.note.as_deref(),
                req.decided_by.as_deref(),
                &decided_at,
                req.decision.as_ref(),
            )?;
            if table.has_field("inputs")
                && let Some(obj) = v.as_object_mut()
            {
                obj.insert("inputs".into(), json!(req.inputs));
            }
            table.validate(&gate.node_id, &v)?;
            Some(v)
        }
        _ => None,
    };

    // Under the transaction's lock from here on.
    let Some(run) = tx.store.run(run_id)? else {
        return Err(Error::RunNotFound {
            run_id: run_id.clone(),
        });
    };
    let mut recorded = Recorded {
        status: "invalid",
        run_status: run.status,
        owner: run.owner.clone(),
        lease_expires_at_ms: run.lease_expires_at_ms,
        at_ms,
        reset: Vec::new(),
        output: None,
        refused: None,
        exhausted: false,
        approval_iteration: 0,
        tally: None,
    };
    // A rejection ends the run: nothing else of it may be decided, so a later approval
    // elsewhere can never bring the rejected step back.
    if let Some(node_id) = tx.store.rejected_node(run_id)? {
        return Err(Error::RunRejected {
            run_id: run_id.clone(),
            node_id,
        });
    }
    let key = NodeKey::new(run_id, &gate.node_id, gate.iteration);
    let view = check_view(tx, req, &key)?;
    if let Some(Err(refused)) = answer {
        return refuse_answer(tx, req, gate, &key, refused, recorded);
    }
    // What a push-back sends back to pending besides the step (its rewindTo target and what
    // depends on it).
    let scope: Vec<NodeKey> = match verdict {
        Verdict::PushBack => reset_scope_of(&gate.request)
            .into_iter()
            .filter(|(id, it)| !(id == &gate.node_id && *it == gate.iteration))
            .map(|(id, it)| NodeKey::new(run_id, &id, it))
            .collect(),
        _ => Vec::new(),
    };
    for k in &scope {
        if tx
            .store
            .node(k)?
            .is_some_and(|n| n.state == NodeState::InProgress)
        {
            return Err(Error::PushBackBusy {
                node_id: gate.node_id.clone(),
                busy: k.node.clone(),
            });
        }
    }
    // First writer wins: the request must still be open now that the lock is held.
    if tx
        .store
        .approval(&key)?
        .is_none_or(|a| a.status != ApprovalStatus::Requested)
    {
        return Err(gate::decided_meanwhile(tx.store, &key)?);
    }
    let state = tx.store.node(&key)?.map_or(NodeState::Pending, |n| n.state);
    if state != NodeState::WaitingApproval {
        return Err(Error::NotWaiting {
            run_id: run_id.clone(),
            node_id: gate.node_id.clone(),
            iteration: gate.iteration,
            state: state.as_str().into(),
        });
    }
    // A quorum gate: this decision is one vote; it decides the gate only when it makes up the
    // quorum, is a veto, or leaves too few voters.
    let tally = match quorum::of(&gate.request) {
        Some(q) if !review && verdict != Verdict::PushBack => {
            let asked_at = tx
                .store
                .approval(&key)?
                .map_or(gate.requested_at_ms, |a| a.requested_at_ms);
            let tally = quorum::vote(tx, req, &key, &q, verdict, view.as_deref(), asked_at, at_ms)?;
            if !tally.decided {
                recorded.status = "voted";
                recorded.tally = Some(tally);
                return Ok(recorded);
            }
            Some(tally)
        }
        _ => None,
    };
    let status = match (verdict, review) {
        (Verdict::Approve, _) => ApprovalStatus::Approved,
        (Verdict::Deny, true) => ApprovalStatus::Rejected,
        (Verdict::Deny, false) => ApprovalStatus::Denied,
        (Verdict::PushBack, _) => ApprovalStatus::PushedBack,
    };
    let reason = req.reason.clone().or_else(|| req.note.clone());
    let (event, skip_reason) = node::decision_event(
        verdict,
        review,
        gate.mode == ApprovalMode::Gate,
        gate.on_deny == OnDeny::Fail,
    );
    let error = match event {
        NodeEvent::DenyFail => {
            let denied = Error::ApprovalDenied {
                node_id: gate.node_id.clone(),
            };
            Some(
                json!({ "code": denied.code(), "message": denied.to_string(),
                         "note": req.note, "decidedBy": req.decided_by }),
            )
        }
        NodeEvent::Reject => {
            let rejected = Error::ApprovalRejected {
                node_id: gate.node_id.clone(),
                by: req.decided_by.clone(),
                reason: reason.clone(),
            };
            Some(
                json!({ "code": rejected.code(), "message": rejected.to_string(),
                         "reason": reason, "decidedBy": req.decided_by, "decidedAt": decided_at }),
            )
        }
        _ => None,
    };
    let history = match (&table, review) {
        // Every round of a review stays in the history, with the output it judged.
        (Some(table), true) => Some(HistoryRow {
            round: gate.round,
            status,
            requested_at_ms: gate.requested_at_ms,
            decided_by: req.decided_by.clone(),
            note: if verdict == Verdict::Deny {
                reason.clone()
            } else {
                req.note.clone()
            },
            inputs_json: (!req.inputs.is_empty()).then(|| json!(req.inputs).to_string()),
            output_json: tx.store.read_output(table, &key)?.map(|o| o.to_string()),
            stdout_path: gate
                .request
                .get("stdoutPath")
                .and_then(Value::as_str)
                .map(String::from),
        }),
        _ => None,
    };
    let decision = DecisionRow {
        status,
        decided_by: req.decided_by.clone(),
        note: req.note.clone(),
        // A human task's decision is its answer, in whatever form it came.
        decision_json: match &tally {
            // Who made up the quorum (or vetoed it), on the decision row.
            Some(t) => Some(json!({ "quorum": t }).to_string()),
            None => if human {
                output_value.as_ref()
            } else {
                req.decision.as_ref()
            }
            .map(serde_json::to_string)
            .transpose()?,
        },
        inputs_json: (approved && !req.inputs.is_empty())
            .then(|| serde_json::to_string(&req.inputs))
            .transpose()?,
        reason: (verdict == Verdict::Deny).then(|| reason.clone()).flatten(),
        pushback_json: (verdict == Verdict::PushBack).then(|| {
            json!({ "by": req.decided_by, "at": decided_at, "inputs": req.inputs, "note": req.note })
                .to_string()
        }),
    };
    let output = match (&table, &output_value) {
        (Some(t), Some(v)) => Some((t.clone(), v.clone())),
        _ => None,
    };
    let (to, effects) = node::decide(
        &key,
        state,
        Decided {
            event,
            skip_reason,
            decision,
            error: error.map(|e| e.to_string()),
            output,
            history,
            // The output was only proposed; the next round writes a new one.
            withdraw_output: table
                .clone()
                .filter(|_| verdict == Verdict::PushBack && review),
        },
    )?;
    tx.apply(effects)?;
    for k in &scope {
        if rewind(tx, k, &gate.node_id, bound)? {
            recorded.reset.push(k.node.clone());
        }
    }
    let kind = match status {
        ApprovalStatus::Approved => EventKind::ApprovalGranted,
        ApprovalStatus::Rejected => EventKind::ApprovalRejected,
        ApprovalStatus::PushedBack => EventKind::ApprovalPushedBack,
        _ => EventKind::ApprovalDenied,
    };
    let mut effects = vec![key.emit(
        kind,
        json!({ "decidedBy": req.decided_by, "note": req.note, "kind": gate.kind, "round": gate.round,
                "inputs": req.inputs, "reason": if verdict == Verdict::Deny { reason } else { None },
                "reset": recorded.reset,
                // How long the gate waited for this decision (the time-to-decision metric).
                "waitedMs": at_ms - gate.requested_at_ms }),
    )];
    effects.extend(node::decided_event(&key, to, verdict == Verdict::PushBack));
    effects.push(audit_entry(
        req,
        &key,
        gate,
        status,
        view.as_deref(),
        at_ms,
        tally.as_ref().map(|t| ("quorum", json!(t))),
    ));
    tx.apply(effects)?;
    recorded.run_status = runs::wake(tx, run_id, run.status)?;
    recorded.status = status.as_str();
    recorded.tally = tally;
    recorded.approval_iteration = match (review, verdict) {
        (false, _) => 0,
        (true, Verdict::PushBack) => gate.round,
        (true, _) => gate.round - 1,
    };
    recorded.output = output_value.map(|value| OutputRow {
        table: gate.output_table.clone(),
        node_id: gate.node_id.clone(),
        iteration: gate.iteration,
        value,
    });
    Ok(recorded)
}

/// An answer that is not valid is an attempt of the human task: recorded (with the answer
/// and why), and the request stays open for another, until `maxAttempts` is used up and the
/// task fails (which wakes the run).
fn refuse_answer(
    tx: &mut Tx<'_>,
    req: &DecisionRequest,
    gate: &Gate,
    key: &NodeKey,
    refused: RefusedAnswer,
    mut recorded: Recorded,
) -> Result<Recorded> {
    let open = tx
        .store
        .approval(key)?
        .is_some_and(|a| a.status == ApprovalStatus::Requested);
    let state = tx.store.node(key)?.map(|n| n.state);
    let state = match state {
        Some(NodeState::WaitingApproval) if open => NodeState::WaitingApproval,
        other => {
            return Err(Error::NotWaiting {
                run_id: key.run.clone(),
                node_id: gate.node_id.clone(),
                iteration: gate.iteration,
                state: match (open, other) {
                    (true, Some(s)) => s.as_str().into(),
                    _ => "decided".into(),
                },
            });
        }
    };
    let max_attempts = gate
        .request
        .get("maxAttempts")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    let attempt = tx.store.failed_attempts(key)? + 1;
    let (code, message) = (refused.error.code(), refused.error.to_string());
    let attempt_error = json!({ "code": code, "message": message, "answer": refused.answer,
                                "decidedBy": req.decided_by });
    let payload = json!({ "attempt": attempt, "maxAttempts": max_attempts, "decidedBy": req.decided_by,
                          "error": { "code": code, "message": message } });
    let exhausted = attempt >= max_attempts;
    let last = exhausted.then(|| {
        let node_error = json!({ "code": code,
            "message": format!("{} got no valid answer in {max_attempts} attempt{}; the last: {message}",
                gate.node_id, if max_attempts == 1 { "" } else { "s" }) });
        (node_error, req.decided_by.clone(), req.note.clone())
    });
    let (_, effects) = node::refuse_answer(key, state, attempt, &attempt_error, payload, last)?;
    tx.apply(effects)?;
    if exhausted {
        recorded.run_status = runs::wake(tx, &key.run, recorded.run_status)?;
    }
    recorded.exhausted = exhausted;
    recorded.refused = Some((
        attempt,
        max_attempts,
        json!({ "code": code, "message": message }),
    ));
    Ok(recorded)
}

/// One node of a push-back's scope goes back to pending (see `node::rewind`); a task that
/// waited on a sub-run no longer does (the sub-run is cancelled, the next attempt makes a new
/// one). Returns whether it moved: a node never reached, or pending already, does not.
fn rewind(
    tx: &mut Tx<'_>,
    key: &NodeKey,
    by_gate: &str,
    bound: Option<&HashMap<String, i64>>,
) -> Result<bool> {
    let Some(node) = tx.store.node(key)? else {
        return Ok(false); // never reached yet: it runs with the push-back's inputs anyway
    };
    if node.state == NodeState::Pending {
        return Ok(false);
    }
    if let Some(sub) = node
        .sub_run_id
        .as_deref()
        .filter(|_| node.state == NodeState::WaitingApproval)
    {
        runs::cancel_sub_runs(tx, SubRuns::Tree(sub))?;
    }
    let table = tx.table(&key.run, bound, &node.output_table)?;
    let approval = tx
        .store
        .approval(key)?
        .map(|a| (a.status, a.kind == "review"));
    let (_, effects) = node::rewind(key, node.state, Some(table), approval, by_gate)?;
    tx.apply(effects)?;
    Ok(true)
}

/// A decision sent with the digest of what its decider saw is refused when the request open
/// now shows something else (`STALE_VIEW`): the step was sent back and ran again, the gate
/// was asked again. Checked under the transaction's lock; a request no longer open is left to
/// the checks after (who decided it first).
/// Returns the digest of the open request (what the decision is on), if it is open.
fn check_view(tx: &Tx<'_>, req: &DecisionRequest, key: &NodeKey) -> Result<Option<String>> {
    let Some(row) = tx.store.approval(key)? else {
        return Ok(None);
    };
    if row.status != ApprovalStatus::Requested {
        return Ok(None);
    }
    let current = crate::audit::view_digest(
        &key.run,
        &key.node,
        key.iteration,
        &row.kind,
        row.round,
        row.requested_at_ms,
        &row.request_json,
    );
    if let Some(expected) = &req.expect_digest
        && &current != expected
    {
        return Err(Error::StaleView {
            run_id: key.run.clone(),
            node_id: key.node.clone(),
            iteration: key.iteration,
            expected: expected.clone(),
            current,
        });
    }
    Ok(Some(current))
}

/// The decision log's entry for a decision (`audit.rs`): what the decision row says, the
/// view digest it was made on, and whether the decider bound it to that view.
pub(super) fn audit_entry(
    req: &DecisionRequest,
    key: &NodeKey,
    gate: &Gate,
    status: ApprovalStatus,
    view: Option<&str>,
    at_ms: i64,
    extra: Option<(&str, Value)>,
) -> Effect {
    let mut data = json!({
        "status": status.as_str(), "kind": gate.kind, "round": gate.round,
        "note": req.note, "reason": req.reason, "inputs": req.inputs, "decision": req.decision,
        "digest": view, "bound": req.expect_digest.is_some(),
    });
    if let (Some((k, v)), Some(obj)) = (extra, data.as_object_mut()) {
        obj.insert(k.into(), v);
    }
    Effect::AppendAudit(Box::new(NewAuditEntry {
        kind: audit::kinds::DECISION,
        run_id: key.run.clone(),
        node_id: Some(key.node.clone()),
        iteration: Some(key.iteration),
        actor: req.decided_by.clone(),
        at_ms,
        data,
    }))
}
