//! Decisions on approval gates: found, authorised, validated and recorded in one
//! transaction, first writer wins. A decision never runs user code; resuming the run is the
//! caller's next step.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{Engine, OutputRow, Step, begin, request_json, set_node_row};
use crate::error::{Error, PriorDecision, Result};
use crate::events::EventBatch;
use crate::graph::{ApprovalMode, OnDeny, TaskNode};
use crate::output::OutputTable;
use crate::owner;
use crate::plan::ApprovalStatus;
use crate::state::{NodeEvent, NodeState, RunEvent, RunStatus};
use crate::store::{iso8601, now_ms};

/// Scope matching is part of the contract every surface shares.
pub use crate::contract::scope_covers;

const MAX_NOTE: usize = 64 * 1024;
const MAX_NAME: usize = 256;
/// Who decides an auto-approved gate (as in Smithers); names starting with `smithers:` are
/// the engine's, never a person's.
pub const AUTO_DECIDER: &str = "smithers:auto";
const AUTO_NOTE: &str = "Auto-approved";

/// A person's or a scope's name (`decidedBy`, `startedBy`, scopes): 1-256 characters, no
/// control characters. Names are printed by the CLI and the inbox: a raw escape sequence in
/// one would be sent to a terminal.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::InvalidDecision(format!(
            "{what} must be 1-256 characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidDecision(format!(
            "{what} must not contain control characters (got {name:?})"
        )));
    }
    Ok(())
}

/// Free text (notes, reasons, input values): tabs and line breaks are text, other control
/// characters (escape sequences, NUL) are refused.
fn check_text(what: &str, text: &str) -> Result<()> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Error::InvalidDecision(format!(
            "{what} must not contain control characters (found U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRequest {
    pub run_id: String,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub iteration: Option<i64>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub decided_by: Option<String>,
    /// Scopes the decider holds (checked against a gate's `allowedScopes`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The payload of `select` / `rank` gates: `{selected}` or `{ranked}`, plus `notes`.
    #[serde(default)]
    pub decision: Option<Value>,
    /// Approver inputs (`--input K=V`): only names the gate declares in `input`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Why a reviewed step is rejected (a deny); defaults to the note.
    #[serde(default)]
    pub reason: Option<String>,
    /// Refuse an approve by the user who started the run (four-eyes rule).
    #[serde(default)]
    pub forbid_starter: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionOutcome {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub status: &'static str,
    pub decided_by: Option<String>,
    pub decided_at: String,
    pub run_status: &'static str,
    /// `gate` (decided before the step runs) or `review` (after it ran).
    pub kind: String,
    /// The review round the decision closed (1 unless the step was pushed back before).
    pub round: i64,
    /// Dagu's count of push-backs of the step, from 0: after this decision.
    pub approval_iteration: i64,
    /// Nodes a push-back sent back to pending besides the step itself (its `rewindTo`
    /// target and what depends on it), to run again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<String>,
    pub inputs: BTreeMap<String, String>,
    /// Another live process that drives the run and will pick the decision up.
    pub owner: Option<String>,
    /// Nobody drives the run: the caller should resume it.
    pub needs_resume: bool,
    pub output: Option<OutputRow>,
    /// A `<HumanTask>` answer that was not valid (`status: "invalid"`): which attempt it
    /// was, how many the task takes, and why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

struct Gate {
    node_id: String,
    iteration: i64,
    mode: ApprovalMode,
    on_deny: OnDeny,
    output_table: String,
    request: Value,
    kind: String,
    round: i64,
    requested_at_ms: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Approve,
    Deny,
    PushBack,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
            Verdict::PushBack => "push-back",
        }
    }
}

const MAX_INPUT: usize = 64 * 1024;

/// Inputs must be declared by the gate; an approve must carry the required ones.
fn check_inputs(gate: &Gate, req: &DecisionRequest, verdict: Verdict) -> Result<()> {
    let declared = strings(&gate.request, "input");
    let undeclared: Vec<String> = req
        .inputs
        .keys()
        .filter(|k| !declared.contains(k))
        .cloned()
        .collect();
    if !undeclared.is_empty() {
        return Err(Error::UndeclaredInput {
            node_id: gate.node_id.clone(),
            keys: undeclared,
            allowed: declared,
        });
    }
    if let Some((k, _)) = req
        .inputs
        .iter()
        .find(|(_, v)| v.len() > MAX_INPUT || v.contains('\0'))
    {
        return Err(Error::InvalidDecision(format!(
            "input {k} must be text without NUL bytes, at most 64 KiB"
        )));
    }
    for (k, v) in &req.inputs {
        check_text(&format!("input {k}"), v)?;
    }
    if verdict == Verdict::Approve {
        let missing: Vec<String> = strings(&gate.request, "required")
            .into_iter()
            .filter(|r| req.inputs.get(r).is_none_or(|v| v.trim().is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingRequiredInputs {
                node_id: gate.node_id.clone(),
                missing,
            });
        }
    }
    Ok(())
}

/// Earlier review rounds of a step, oldest first: who, when, what they sent back, the
/// output they saw.
pub(crate) fn review_history(
    conn: &Connection,
    run_id: &str,
    node_id: &str,
    iteration: i64,
) -> Result<Vec<Value>> {
    let rows = conn
        .prepare_cached(
            "SELECT round, status, requested_at_ms, decided_at_ms, decided_by, note, inputs_json, output_json, stdout_path \
             FROM _smithers_approval_history WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 ORDER BY round",
        )?
        .query_map(params![run_id, node_id, iteration], |r| {
            let json = |s: Option<String>| {
                s.and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .unwrap_or(Value::Null)
            };
            Ok(json!({
                "iteration": r.get::<_, i64>(0)?,
                "status": r.get::<_, String>(1)?,
                "requestedAt": iso8601(r.get(2)?),
                "at": iso8601(r.get(3)?),
                "by": r.get::<_, Option<String>>(4)?,
                "note": r.get::<_, Option<String>>(5)?,
                "inputs": json(r.get(6)?),
                "output": json(r.get(7)?),
                "stdoutPath": r.get::<_, Option<String>>(8)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn authorise(gate: &Gate, req: &DecisionRequest) -> Result<()> {
    let users = strings(&gate.request, "allowedUsers");
    if !users.is_empty() && !req.decided_by.as_ref().is_some_and(|u| users.contains(u)) {
        return Err(Error::Forbidden {
            message: format!(
                "{} may not decide {} (allowed users: {})",
                req.decided_by
                    .as_deref()
                    .map(|u| format!("user {u:?}"))
                    .unwrap_or_else(|| "an unnamed user".into()),
                gate.node_id,
                users.join(", ")
            ),
        });
    }
    let scopes = strings(&gate.request, "allowedScopes");
    let held = |s: &String| req.scopes.iter().any(|h| scope_covers(h, s));
    if !scopes.is_empty() && !scopes.iter().any(held) {
        return Err(Error::Forbidden {
            message: format!(
                "deciding {} needs one of the scopes: {}",
                gate.node_id,
                scopes.join(", ")
            ),
        });
    }
    Ok(())
}

/// The value an `<Approval>` writes to its output table.
fn decision_value(
    mode: ApprovalMode,
    request: &Value,
    approved: bool,
    note: Option<&str>,
    decided_by: Option<&str>,
    decided_at: &str,
    payload: Option<&Value>,
) -> Result<Value> {
    let notes = payload
        .and_then(|p| p.get("notes"))
        .and_then(Value::as_str)
        .or(note);
    let keys: Vec<String> = request
        .get("options")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("key").and_then(Value::as_str))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(match mode {
        ApprovalMode::Gate | ApprovalMode::Decision | ApprovalMode::Human => {
            json!({ "approved": approved, "note": note, "decidedBy": decided_by, "decidedAt": decided_at })
        }
        ApprovalMode::Select => {
            let selected = payload
                .and_then(|p| p.get("selected"))
                .and_then(Value::as_str);
            let selected = match (approved, selected) {
                (true, Some(s)) if keys.iter().any(|k| k == s) => s.to_string(),
                (true, Some(s)) => {
                    return Err(Error::InvalidDecision(format!(
                        "{s:?} is not one of the options: {}",
                        keys.join(", ")
                    )));
                }
                (true, None) => {
                    return Err(Error::InvalidDecision(
                        "a select approval needs decision.selected (one of the option keys)".into(),
                    ));
                }
                (false, _) => String::new(),
            };
            json!({ "selected": selected, "notes": notes })
        }
        ApprovalMode::Rank => {
            let ranked: Vec<String> = match payload.and_then(|p| p.get("ranked")) {
                Some(Value::Array(items)) => {
                    let ranked: Vec<String> = items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect();
                    if let Some(bad) = ranked.iter().find(|r| !keys.contains(r)) {
                        return Err(Error::InvalidDecision(format!(
                            "{bad:?} is not one of the options: {}",
                            keys.join(", ")
                        )));
                    }
                    ranked
                }
                _ if approved => {
                    return Err(Error::InvalidDecision(
                        "a rank approval needs decision.ranked (option keys in order)".into(),
                    ));
                }
                _ => Vec::new(),
            };
            json!({ "ranked": ranked, "notes": notes })
        }
    })
}

impl Engine {
    pub fn approve(&mut self, req: DecisionRequest) -> Result<DecisionOutcome> {
        self.decide(req, Verdict::Approve)
    }

    /// Denies a gate (per its `onDeny`), or rejects a reviewed step (the run fails).
    pub fn deny(&mut self, req: DecisionRequest) -> Result<DecisionOutcome> {
        self.decide(req, Verdict::Deny)
    }

    /// Sends a reviewed step back: it runs again with the inputs, in a new review round.
    pub fn push_back(&mut self, req: DecisionRequest) -> Result<DecisionOutcome> {
        self.decide(req, Verdict::PushBack)
    }

    /// Records a decision, and logs it (target `smithers_core::decision`): recorded at info
    /// (with the nodes a push-back sent back), a `<HumanTask>` answer that does not fit at
    /// info, refused at debug with the error's code.
    fn decide(&mut self, req: DecisionRequest, verdict: Verdict) -> Result<DecisionOutcome> {
        let run_id = req.run_id.clone();
        let asked_node = req.node_id.clone().unwrap_or_default();
        let result = self.record_decision(req, verdict);
        match &result {
            Ok(d) if d.error.is_some() => tracing::info!(
                run_id = d.run_id.as_str(),
                node_id = d.node_id.as_str(),
                iteration = d.iteration,
                attempt = d.attempt.unwrap_or(0),
                max_attempts = d.max_attempts.unwrap_or(0),
                code = d
                    .error
                    .as_ref()
                    .and_then(|e| e.get("code"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(""),
                decided_by = d.decided_by.as_deref().unwrap_or(""),
                run_status = d.run_status,
                "human answer refused"
            ),
            Ok(d) => tracing::info!(
                run_id = d.run_id.as_str(),
                node_id = d.node_id.as_str(),
                iteration = d.iteration,
                status = d.status,
                kind = d.kind.as_str(),
                round = d.round,
                approval_iteration = d.approval_iteration,
                reset = d.reset.join(",").as_str(),
                decided_by = d.decided_by.as_deref().unwrap_or(""),
                run_status = d.run_status,
                owner = d.owner.as_deref().unwrap_or(""),
                needs_resume = d.needs_resume,
                "decision recorded"
            ),
            Err(e) => tracing::debug!(
                run_id = run_id.as_str(),
                node_id = asked_node.as_str(),
                verdict = verdict.as_str(),
                code = e.code(),
                "decision refused"
            ),
        }
        result
    }

    fn record_decision(
        &mut self,
        req: DecisionRequest,
        verdict: Verdict,
    ) -> Result<DecisionOutcome> {
        let approved = verdict == Verdict::Approve;
        for (what, text) in [("note", &req.note), ("reason", &req.reason)] {
            let Some(text) = text else { continue };
            if text.len() > MAX_NOTE {
                return Err(Error::InvalidDecision(format!(
                    "{what} is longer than 64 KiB"
                )));
            }
            check_text(what, text)?;
        }
        if let Some(by) = &req.decided_by {
            check_name("decidedBy", by)?;
        }
        for scope in &req.scopes {
            check_name("a scope", scope)?;
        }
        if req
            .decided_by
            .as_ref()
            .is_some_and(|n| n.starts_with("smithers:"))
        {
            return Err(Error::InvalidDecision(
                "decidedBy names starting with \"smithers:\" are the engine's (smithers:auto decides auto-approvals)".into(),
            ));
        }
        let run_id = req.run_id.clone();
        // Find the gate before taking the write lock, then check it again under the lock.
        let gate = self.find_gate(&req)?;
        let review = gate.kind == "review";
        if verdict == Verdict::PushBack && !review {
            return Err(Error::PushBackUnsupported {
                node_id: gate.node_id.clone(),
                why: "only a step with approval={{…}} (reviewed after it runs) can be sent back",
            });
        }
        authorise(&gate, &req)?;
        if req.forbid_starter && approved {
            let started_by: Option<String> = self
                .conn
                .query_row(
                    "SELECT started_by FROM _smithers_runs WHERE run_id = ?1",
                    [&run_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            if started_by.is_some() && started_by == req.decided_by {
                return Err(Error::Forbidden {
                    message: format!(
                        "{} started run {run_id} and may not approve it (the starter may not approve their own run)",
                        started_by.unwrap_or_default()
                    ),
                });
            }
        }
        let human = !review && gate.mode == ApprovalMode::Human;
        if !human {
            check_inputs(&gate, &req, verdict)?;
        }
        let table = match (review, gate.mode) {
            (false, ApprovalMode::Gate) => None,
            _ => Some(self.run_table(&run_id, &gate.output_table)?),
        };
        let decided_at_ms = now_ms();
        let decided_at = iso8601(decided_at_ms);
        // A human task's answer is its output: valid for the schema, or a failed attempt.
        let answer = match (&table, human && approved) {
            (Some(table), true) => Some(human_answer(&gate, &req, table)?),
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
        let reason = req.reason.clone().or_else(|| req.note.clone());
        let inputs_json = (!req.inputs.is_empty())
            .then(|| serde_json::to_string(&req.inputs))
            .transpose()?;

        // What a push-back sends back to pending besides the step (its rewindTo target and
        // what depends on it), with the tables their outputs are in.
        let scope: Vec<(String, i64)> = if verdict == Verdict::PushBack {
            crate::engine::reset_scope_of(&gate.request)
                .into_iter()
                .filter(|(id, it)| !(id == &gate.node_id && *it == gate.iteration))
                .collect()
        } else {
            Vec::new()
        };
        let mut scope_tables = HashMap::new();
        for (node_id, iteration) in &scope {
            let key: Option<String> = self
                .conn
                .query_row(
                    "SELECT output_table FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                    params![run_id, node_id, iteration],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(key) = key
                && !scope_tables.contains_key(&key)
            {
                let table = self.run_table(&run_id, &key)?;
                scope_tables.insert(key, table);
            }
        }
        let tx = begin(&self.conn, self.batching)?;
        let (run_status, run_owner, lease_expires): (String, Option<String>, Option<i64>) = tx
            .query_row(
                "SELECT status, owner, lease_expires_at_ms FROM _smithers_runs WHERE run_id = ?1",
                [&run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.clone(),
            })?;
        let run_status = RunStatus::parse(&run_status).unwrap_or(RunStatus::Failed);
        // A rejection ends the run: nothing else of it may be decided, so a later approval
        // elsewhere can never bring the rejected step back.
        let rejected: Option<String> = tx
            .query_row(
                "SELECT node_id FROM _smithers_nodes WHERE run_id = ?1 AND state = 'rejected' LIMIT 1",
                [&run_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(node_id) = rejected {
            return Err(Error::RunRejected { run_id, node_id });
        }
        if let Some(Err(refused)) = answer {
            let (attempt, max_attempts, mut batch) =
                record_invalid_answer(&tx, &gate, &req, &refused, decided_at_ms)?;
            let exhausted = attempt >= max_attempts;
            let new_status = if exhausted {
                wake_run(&tx, &run_id, run_status, decided_at_ms, &mut batch)?
            } else {
                run_status
            };
            tx.commit()?;
            self.publish(batch);
            let live_owner = self.live_owner(&run_id, run_owner, lease_expires, decided_at_ms);
            return Ok(DecisionOutcome {
                needs_resume: exhausted && !new_status.is_terminal() && live_owner.is_none(),
                run_id,
                node_id: gate.node_id,
                iteration: gate.iteration,
                status: "invalid",
                decided_by: req.decided_by,
                decided_at,
                run_status: new_status.as_str(),
                kind: gate.kind,
                round: gate.round,
                approval_iteration: 0,
                reset: Vec::new(),
                inputs: req.inputs,
                owner: live_owner,
                output: None,
                attempt: Some(attempt),
                max_attempts: Some(max_attempts),
                error: Some(json!({ "code": refused.code, "message": refused.message })),
            });
        }
        if let Some(busy) = running_in(&tx, &run_id, &scope)? {
            return Err(Error::PushBackBusy {
                node_id: gate.node_id.clone(),
                busy,
            });
        }
        let status = match (verdict, review) {
            (Verdict::Approve, _) => "approved",
            (Verdict::Deny, true) => "rejected",
            (Verdict::Deny, false) => "denied",
            (Verdict::PushBack, _) => "pushed-back",
        };
        let pushback_json = (verdict == Verdict::PushBack)
            .then(|| {
                json!({ "by": req.decided_by, "at": decided_at, "inputs": req.inputs, "note": req.note })
                    .to_string()
            });
        let changed = tx.execute(
            "UPDATE _smithers_approvals SET status = ?4, decided_at_ms = ?5, note = ?6, decided_by = ?7, decision_json = ?8, \
               inputs_json = CASE WHEN ?4 = 'approved' THEN ?9 ELSE inputs_json END, \
               reason = CASE WHEN ?4 IN ('rejected', 'denied') THEN ?10 ELSE reason END, \
               pushback_json = COALESCE(?11, pushback_json), \
               round = round + (?4 = 'pushed-back') \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND status = 'requested'",
            params![
                run_id,
                gate.node_id,
                gate.iteration,
                status,
                decided_at_ms,
                req.note,
                req.decided_by,
                // A human task's decision is its answer, in whatever form it came.
                if human { output_value.as_ref() } else { req.decision.as_ref() }
                    .map(serde_json::to_string)
                    .transpose()?,
                inputs_json,
                reason,
                pushback_json
            ],
        )?;
        if changed == 0 {
            // Someone decided between our look-up and our lock: report who.
            drop(tx);
            return Err(self.already_decided(&run_id, &gate.node_id, gate.iteration));
        }
        let node_state: String = tx.query_row(
            "SELECT state FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            params![run_id, gate.node_id, gate.iteration],
            |r| r.get(0),
        )?;
        let node_state = NodeState::parse(&node_state).unwrap_or(NodeState::Pending);
        if node_state != NodeState::WaitingApproval {
            return Err(Error::NotWaiting {
                run_id,
                node_id: gate.node_id,
                iteration: gate.iteration,
                state: node_state.as_str().into(),
            });
        }
        let (event, skip_reason) = match (verdict, review, gate.mode, gate.on_deny) {
            (Verdict::Approve, true, _, _) => (NodeEvent::ApproveReview, None),
            (Verdict::Deny, true, _, _) => (NodeEvent::Reject, None),
            (Verdict::PushBack, _, _, _) => (NodeEvent::PushBack, None),
            (Verdict::Approve, false, ApprovalMode::Gate, _) => (NodeEvent::ApproveGate, None),
            (Verdict::Approve, false, _, _) => (NodeEvent::ApproveDecision, None),
            (Verdict::Deny, false, _, OnDeny::Fail) => (NodeEvent::DenyFail, None),
            // A gate before a task, denied without failing: the task does not run.
            (Verdict::Deny, false, ApprovalMode::Gate, _) => (NodeEvent::Skip, Some("denied")),
            // `<Approval>`: continue and skip alike record `approved: false` and go on.
            (Verdict::Deny, false, _, OnDeny::Continue | OnDeny::Skip) => {
                (NodeEvent::DenyContinue, None)
            }
        };
        let next = node_state.apply(event)?;
        let error_json = match next {
            NodeState::Failed => Some(
                json!({ "code": "APPROVAL_DENIED", "message": format!("Approval {} was denied", gate.node_id),
                        "note": req.note, "decidedBy": req.decided_by })
                .to_string(),
            ),
            NodeState::Rejected => Some(
                json!({ "code": "APPROVAL_REJECTED",
                        "message": format!("{} was rejected by {}{}", gate.node_id,
                            req.decided_by.as_deref().unwrap_or("its reviewer"),
                            reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()),
                        "reason": reason, "decidedBy": req.decided_by, "decidedAt": decided_at })
                .to_string(),
            ),
            _ => None,
        };
        set_node_row(
            &tx,
            &run_id,
            &gate.node_id,
            gate.iteration,
            next,
            0,
            skip_reason,
            error_json.as_deref(),
        )?;
        if let (Some(table), Some(value)) = (&table, &output_value) {
            table.write(&tx, &run_id, &gate.node_id, gate.iteration, value)?;
        }
        if review {
            // Every round of a review stays in the history, with the output it judged.
            let output = match &table {
                Some(table) => table.read_one(&tx, &run_id, &gate.node_id, gate.iteration)?,
                None => None,
            };
            let stdout_path = gate
                .request
                .get("stdoutPath")
                .and_then(Value::as_str)
                .map(String::from);
            let history_inputs = (!req.inputs.is_empty()).then(|| json!(req.inputs).to_string());
            tx.execute(
                "INSERT OR REPLACE INTO _smithers_approval_history (run_id, node_id, iteration, round, status, requested_at_ms, \
                   decided_at_ms, decided_by, note, inputs_json, output_json, stdout_path) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    run_id,
                    gate.node_id,
                    gate.iteration,
                    gate.round,
                    status,
                    gate.requested_at_ms,
                    decided_at_ms,
                    req.decided_by,
                    if verdict == Verdict::Deny { reason.clone() } else { req.note.clone() },
                    history_inputs,
                    output.map(|o| o.to_string()),
                    stdout_path
                ],
            )?;
            if verdict == Verdict::PushBack
                && let Some(table) = &table
            {
                // The output was only proposed; the next round writes a new one.
                table.delete(&tx, &run_id, &gate.node_id, gate.iteration)?;
            }
        }
        let mut batch = EventBatch::default();
        let mut reset = Vec::new();
        for (node_id, iteration) in &scope {
            if rewind_node(
                &tx,
                &run_id,
                (node_id, *iteration),
                &gate.node_id,
                &scope_tables,
                &mut batch,
            )? {
                reset.push(node_id.clone());
            }
        }
        let payload = json!({ "nodeId": gate.node_id, "iteration": gate.iteration, "decidedBy": req.decided_by,
                              "note": req.note, "kind": gate.kind, "round": gate.round,
                              "inputs": req.inputs, "reason": if verdict == Verdict::Deny { reason.clone() } else { None },
                              "reset": reset,
                              // How long the gate waited for this decision (the time-to-decision metric).
                              "waitedMs": decided_at_ms - gate.requested_at_ms });
        batch.emit(
            &tx,
            &run_id,
            match status {
                "approved" => "ApprovalGranted",
                "rejected" => "ApprovalRejected",
                "pushed-back" => "ApprovalPushedBack",
                _ => "ApprovalDenied",
            },
            payload,
        )?;
        let node_event = match next {
            NodeState::Finished => Some("NodeFinished"),
            NodeState::Failed => Some("NodeFailed"),
            NodeState::Skipped => Some("NodeSkipped"),
            NodeState::Rejected => Some("NodeRejected"),
            NodeState::Pending if verdict == Verdict::PushBack => Some("NodePushedBack"),
            _ => None,
        };
        if let Some(kind) = node_event {
            batch.emit(
                &tx,
                &run_id,
                kind,
                json!({ "nodeId": gate.node_id, "iteration": gate.iteration }),
            )?;
        }
        let new_status = wake_run(&tx, &run_id, run_status, decided_at_ms, &mut batch)?;
        tx.commit()?;
        self.publish(batch);

        let live_owner = self.live_owner(&run_id, run_owner, lease_expires, decided_at_ms);
        Ok(DecisionOutcome {
            needs_resume: !new_status.is_terminal() && live_owner.is_none(),
            run_id: run_id.clone(),
            node_id: gate.node_id.clone(),
            iteration: gate.iteration,
            status,
            decided_by: req.decided_by,
            decided_at,
            run_status: new_status.as_str(),
            kind: gate.kind.clone(),
            round: gate.round,
            approval_iteration: match (review, verdict) {
                (false, _) => 0,
                (true, Verdict::PushBack) => gate.round,
                (true, _) => gate.round - 1,
            },
            reset,
            inputs: req.inputs,
            owner: live_owner,
            output: output_value.map(|value| OutputRow {
                table: gate.output_table.clone(),
                node_id: gate.node_id.clone(),
                iteration: gate.iteration,
                value,
            }),
            attempt: None,
            max_attempts: None,
            error: None,
        })
    }

    /// The owner of a run that will pick a decision up itself: this engine while it drives
    /// the run, or another engine that still holds its lease.
    fn live_owner(
        &self,
        run_id: &str,
        owner: Option<String>,
        lease_expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<String> {
        owner.filter(|o| {
            (o == &self.owner && self.runs.contains_key(run_id))
                || (o != &self.owner && owner::holds(o, lease_expires_at_ms, now_ms))
        })
    }

    fn already_decided(&self, run_id: &str, node_id: &str, iteration: i64) -> Error {
        let row: Option<(String, Option<String>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT status, decided_by, decided_at_ms FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                params![run_id, node_id, iteration],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .ok()
            .flatten();
        match row {
            Some((status, decided_by, decided_at)) => {
                Error::AlreadyDecided(Box::new(PriorDecision {
                    run_id: run_id.into(),
                    node_id: node_id.into(),
                    iteration,
                    status,
                    decided_by,
                    decided_at: decided_at.map(iso8601).unwrap_or_default(),
                }))
            }
            None => Error::NodeNotFound {
                run_id: run_id.into(),
                node_id: node_id.into(),
                iteration,
            },
        }
    }

    fn find_gate(&mut self, req: &DecisionRequest) -> Result<Gate> {
        let run_id = &req.run_id;
        let exists = self
            .conn
            .query_row(
                "SELECT 1 FROM _smithers_runs WHERE run_id = ?1",
                [run_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Err(Error::RunNotFound {
                run_id: run_id.clone(),
            });
        }
        type Row = (
            String,
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            (String, i64, i64),
        );
        let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                (r.get(9)?, r.get(10)?, r.get(11)?),
            ))
        };
        let cols = "node_id, iteration, status, mode, on_deny, output_table, request_json, decided_by, decided_at_ms, kind, round, requested_at_ms";
        let row: Row = match &req.node_id {
            Some(node_id) => {
                // Without --iteration, the pending request of that node, else its latest.
                let rows: Vec<Row> = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 \
                         AND (?3 IS NULL OR iteration = ?3) ORDER BY (status = 'requested') DESC, iteration DESC LIMIT 1"
                    ))?
                    .query_map(params![run_id, node_id, req.iteration], map)?
                    .collect::<Result<_, _>>()?;
                match rows.into_iter().next() {
                    Some(row) => row,
                    None => {
                        let state: Option<String> = self
                            .conn
                            .query_row(
                                "SELECT state FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 \
                                 AND (?3 IS NULL OR iteration = ?3) ORDER BY iteration DESC LIMIT 1",
                                params![run_id, node_id, req.iteration],
                                |r| r.get(0),
                            )
                            .optional()?;
                        let iteration = req.iteration.unwrap_or(0);
                        return Err(match state {
                            Some(state) => Error::NotWaiting {
                                run_id: run_id.clone(),
                                node_id: node_id.clone(),
                                iteration,
                                state,
                            },
                            None => Error::NodeNotFound {
                                run_id: run_id.clone(),
                                node_id: node_id.clone(),
                                iteration,
                            },
                        });
                    }
                }
            }
            None => {
                let pending: Vec<Row> = self
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM _smithers_approvals WHERE run_id = ?1 AND status = 'requested' \
                         AND (?2 IS NULL OR iteration = ?2) ORDER BY requested_at_ms, node_id"
                    ))?
                    .query_map(params![run_id, req.iteration], map)?
                    .collect::<Result<_, _>>()?;
                match pending.len() {
                    0 => {
                        return Err(Error::NoPendingApprovals {
                            run_id: run_id.clone(),
                        });
                    }
                    1 => pending
                        .into_iter()
                        .next()
                        .ok_or_else(|| Error::NoPendingApprovals {
                            run_id: run_id.clone(),
                        })?,
                    _ => {
                        return Err(Error::AmbiguousApproval {
                            run_id: run_id.clone(),
                            candidates: pending.iter().map(|r| (r.0.clone(), r.1)).collect(),
                        });
                    }
                }
            }
        };
        let (
            node_id,
            iteration,
            status,
            mode,
            on_deny,
            output_table,
            request_json,
            decided_by,
            decided_at,
            (kind, round, requested_at_ms),
        ) = row;
        if status != "requested" {
            if status == "cancelled" || status == "pushed-back" {
                return Err(Error::NotWaiting {
                    run_id: run_id.clone(),
                    node_id,
                    iteration,
                    state: if status == "cancelled" {
                        "cancelled".into()
                    } else {
                        "pending (pushed back)".into()
                    },
                });
            }
            return Err(Error::AlreadyDecided(Box::new(PriorDecision {
                run_id: run_id.clone(),
                node_id,
                iteration,
                status,
                decided_by,
                decided_at: decided_at.map(iso8601).unwrap_or_default(),
            })));
        }
        Ok(Gate {
            node_id,
            iteration,
            mode: ApprovalMode::parse(&mode),
            on_deny: OnDeny::parse(&on_deny),
            output_table,
            request: serde_json::from_str(&request_json).unwrap_or(Value::Null),
            kind,
            round,
            requested_at_ms,
        })
    }
}

/// A decision on a waiting run (or a sub-run's end, for its caller) wakes it (`running`):
/// whoever resumes it picks the decision up.
pub(crate) fn wake_run(
    tx: &Connection,
    run_id: &str,
    status: RunStatus,
    now: i64,
    batch: &mut EventBatch,
) -> Result<RunStatus> {
    if status != RunStatus::WaitingApproval {
        return Ok(status);
    }
    let next = status.apply(RunEvent::Wake)?;
    tx.execute(
        "UPDATE _smithers_runs SET status = ?2, updated_at_ms = ?3 WHERE run_id = ?1",
        params![run_id, next.as_str(), now],
    )?;
    batch.emit(
        tx,
        run_id,
        "RunStatusChanged",
        json!({ "status": next.as_str(), "previous": status.as_str() }),
    )?;
    Ok(next)
}

/// Why a human task's answer was refused (it still counts as an attempt).
struct RefusedAnswer {
    code: &'static str,
    message: String,
    answer: Value,
}

/// The answer an approve of a `<HumanTask>` carries, as the task's output: `decision` (the
/// JSON object), else the note parsed as JSON (`approve <run> <node> --note '<json>'`, as
/// Smithers documents it), else the inputs as fields (`--input field=value`, typed by the
/// schema). `Err` inside: an answer that is not valid; outside: no answer at all.
fn human_answer(
    gate: &Gate,
    req: &DecisionRequest,
    table: &OutputTable,
) -> Result<std::result::Result<Value, RefusedAnswer>> {
    let value = if let Some(decision) = &req.decision {
        decision.clone()
    } else if let Some(note) = req.note.as_deref().filter(|n| !n.trim().is_empty()) {
        match serde_json::from_str::<Value>(note) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(RefusedAnswer {
                    code: "HUMAN_TASK_INVALID_JSON",
                    message: format!("the answer for {} is not JSON: {e}", gate.node_id),
                    answer: Value::String(note.into()),
                }));
            }
        }
    } else if !req.inputs.is_empty() {
        Value::Object(
            req.inputs
                .iter()
                .map(|(k, v)| (k.clone(), table.typed_field(k, v)))
                .collect(),
        )
    } else {
        return Err(Error::InvalidDecision(format!(
            "{} is a human task: approve it with its answer, JSON valid for its output \
             (--note '<json>', --decision '<json>' or --input FIELD=VALUE)",
            gate.node_id
        )));
    };
    Ok(match table.validate(&gate.node_id, &value) {
        Ok(()) => Ok(value),
        Err(e) => Err(RefusedAnswer {
            code: "HUMAN_TASK_VALIDATION_FAILED",
            message: match e {
                Error::InvalidOutput { errors, .. } => format!(
                    "the answer for {} does not fit its schema: {}",
                    gate.node_id,
                    errors.join("; ")
                ),
                e => e.to_string(),
            },
            answer: value,
        }),
    })
}

/// An answer that is not valid is an attempt of the task: recorded (with the answer and why),
/// and the request stays open for another, until `maxAttempts` is used up and the task
/// fails. Returns (this attempt, maxAttempts, events).
fn record_invalid_answer(
    tx: &Connection,
    gate: &Gate,
    req: &DecisionRequest,
    refused: &RefusedAnswer,
    now: i64,
) -> Result<(i64, i64, EventBatch)> {
    let run_id = &req.run_id;
    let state: Option<String> = tx
        .query_row(
            "SELECT n.state FROM _smithers_nodes n JOIN _smithers_approvals a \
               ON a.run_id = n.run_id AND a.node_id = n.node_id AND a.iteration = n.iteration \
             WHERE n.run_id = ?1 AND n.node_id = ?2 AND n.iteration = ?3 AND a.status = 'requested'",
            params![run_id, gate.node_id, gate.iteration],
            |r| r.get(0),
        )
        .optional()?;
    if state.as_deref() != Some(NodeState::WaitingApproval.as_str()) {
        return Err(Error::NotWaiting {
            run_id: run_id.clone(),
            node_id: gate.node_id.clone(),
            iteration: gate.iteration,
            state: state.unwrap_or_else(|| "decided".into()),
        });
    }
    let max_attempts = gate
        .request
        .get("maxAttempts")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    let failed: i64 = tx.query_row(
        "SELECT COUNT(*) FROM _smithers_attempts WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND state = 'failed'",
        params![run_id, gate.node_id, gate.iteration],
        |r| r.get(0),
    )?;
    let attempt = failed + 1;
    let error = json!({ "code": refused.code, "message": refused.message, "answer": refused.answer,
                        "decidedBy": req.decided_by });
    tx.execute(
        "INSERT OR REPLACE INTO _smithers_attempts (run_id, node_id, iteration, attempt, state, started_at_ms, finished_at_ms, error_json) \
         VALUES (?1, ?2, ?3, ?4, 'failed', ?5, ?5, ?6)",
        params![run_id, gate.node_id, gate.iteration, attempt, now, error.to_string()],
    )?;
    let mut batch = EventBatch::default();
    let exhausted = attempt >= max_attempts;
    let payload = json!({ "nodeId": gate.node_id, "iteration": gate.iteration, "attempt": attempt,
                          "maxAttempts": max_attempts, "decidedBy": req.decided_by,
                          "error": { "code": refused.code, "message": refused.message } });
    batch.emit(tx, run_id, "HumanAnswerInvalid", payload)?;
    if exhausted {
        let next = NodeState::WaitingApproval.apply(NodeEvent::DenyFail)?;
        let node_error = json!({ "code": refused.code,
            "message": format!("{} got no valid answer in {max_attempts} attempt{}; the last: {}",
                gate.node_id, if max_attempts == 1 { "" } else { "s" }, refused.message) });
        set_node_row(
            tx,
            run_id,
            &gate.node_id,
            gate.iteration,
            next,
            attempt,
            None,
            Some(&node_error.to_string()),
        )?;
        // The request is withdrawn: nobody can answer a failed task any more.
        tx.execute(
            "UPDATE _smithers_approvals SET status = 'cancelled', decided_at_ms = ?4, decided_by = ?5, note = ?6 \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            params![run_id, gate.node_id, gate.iteration, now, req.decided_by, req.note],
        )?;
        batch.emit(
            tx,
            run_id,
            "NodeFailed",
            json!({ "nodeId": gate.node_id, "iteration": gate.iteration,
                                                     "attempt": attempt, "error": node_error }),
        )?;
    } else {
        set_node_row(
            tx,
            run_id,
            &gate.node_id,
            gate.iteration,
            NodeState::WaitingApproval,
            attempt,
            None,
            None,
        )?;
    }
    Ok((attempt, max_attempts, batch))
}

/// `<Approval autoApprove>`: decides the gate the moment it is reached, without a person,
/// when its conditions hold (as Smithers' tests assert): `revertOn` did not match,
/// `condition` (if any) did, and the last `after` decisions on this node in earlier runs of
/// the workflow were approvals by a person. The decision is `smithers:auto`'s; with `audit`
/// (the default) it is kept in the approvals table like any other. Returns whether it did.
pub(crate) fn auto_approve(
    engine: &mut Engine,
    run_id: &str,
    task: &TaskNode,
    step: &mut Step,
) -> Result<bool> {
    let Some(spec) = &task.approval else {
        return Ok(false);
    };
    let Some(auto) = &spec.auto_approve else {
        return Ok(false);
    };
    if auto.revert_on_met == Some(true) || auto.condition_met == Some(false) {
        return Ok(false);
    }
    let after = auto.after.unwrap_or(0);
    if after > 0 && !approved_streak(&engine.conn, run_id, &task.id, after)? {
        return Ok(false);
    }
    let table = engine.run_table(run_id, &task.output)?;
    let request = request_json(task, spec);
    let now = now_ms();
    let decided_at = iso8601(now);
    let keys: Vec<&str> = spec.options.iter().map(|o| o.key.as_str()).collect();
    let payload = match spec.mode {
        ApprovalMode::Select => keys
            .first()
            .map(|k| json!({ "selected": k, "notes": "Automatically selected" })),
        ApprovalMode::Rank => Some(json!({ "ranked": keys, "notes": "Automatically ranked" })),
        _ => None,
    };
    let value = decision_value(
        spec.mode,
        &request,
        true,
        Some(AUTO_NOTE),
        Some(AUTO_DECIDER),
        &decided_at,
        payload.as_ref(),
    )?;
    // An output schema the decision does not fit: a person decides (and meets the error).
    if table.validate(&task.id, &value).is_err() {
        return Ok(false);
    }
    let tx = begin(&engine.conn, engine.batching)?;
    if auto.audit {
        tx.execute(
            "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, \
               requested_at_ms, request_json, decided_at_ms, decided_by, note, decision_json) \
             VALUES (?1, ?2, ?3, 'approved', ?4, ?5, ?6, ?7, ?8, ?7, ?9, ?10, ?11)",
            params![
                run_id,
                task.id,
                task.iteration,
                spec.mode.as_str(),
                spec.on_deny().as_str(),
                task.output,
                now,
                serde_json::to_string(&request)?,
                AUTO_DECIDER,
                AUTO_NOTE,
                payload.as_ref().map(Value::to_string)
            ],
        )?;
    }
    let mut batch = EventBatch::default();
    batch.emit(
        &tx,
        run_id,
        "ApprovalAutoApproved",
        json!({ "nodeId": task.id, "iteration": task.iteration, "decidedBy": AUTO_DECIDER,
                "audit": auto.audit, "after": auto.after }),
    )?;
    let row = write_finished(&tx, &mut batch, run_id, task, &table, value)?;
    tx.commit()?;
    engine.publish(batch);
    tracing::info!(
        run_id,
        node_id = task.id.as_str(),
        iteration = task.iteration,
        after,
        audit = auto.audit,
        "gate auto-approved"
    );
    let approval = auto.audit.then_some(ApprovalStatus::Approved);
    engine.decided_here(run_id, task, NodeState::Finished, approval, row, step)?;
    Ok(true)
}

/// The writes that finish a decided gate with its output: the row, the node, `NodeFinished`.
fn write_finished(
    tx: &Connection,
    batch: &mut EventBatch,
    run_id: &str,
    task: &TaskNode,
    table: &OutputTable,
    value: Value,
) -> Result<OutputRow> {
    table.write(tx, run_id, &task.id, task.iteration, &value)?;
    let next = NodeState::Pending.apply(NodeEvent::ApproveDecision)?;
    set_node_row(tx, run_id, &task.id, task.iteration, next, 0, None, None)?;
    batch.emit(
        tx,
        run_id,
        "NodeFinished",
        json!({ "nodeId": task.id, "iteration": task.iteration }),
    )?;
    Ok(OutputRow {
        table: task.output.clone(),
        node_id: task.id.clone(),
        iteration: task.iteration,
        value,
    })
}

/// Whether the latest `after` decisions on this node in other runs of the same workflow,
/// newest run first, were all approvals by a person (auto-approvals and open requests are
/// passed over; a denial ends the streak).
fn approved_streak(conn: &Connection, run_id: &str, node_id: &str, after: u32) -> Result<bool> {
    let statuses: Vec<String> = conn
        .prepare_cached(
            "SELECT a.status FROM _smithers_approvals a \
             JOIN _smithers_runs r ON r.run_id = a.run_id \
             WHERE a.node_id = ?2 AND a.run_id != ?1 \
               AND r.workflow_name = (SELECT workflow_name FROM _smithers_runs WHERE run_id = ?1) \
               AND a.status IN ('approved', 'denied') AND COALESCE(a.decided_by, '') != ?3 \
             ORDER BY r.created_at_ms DESC, a.decided_at_ms DESC LIMIT ?4",
        )?
        .query_map(params![run_id, node_id, AUTO_DECIDER, after], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(statuses.len() >= after as usize && statuses.iter().all(|s| s == "approved"))
}

/// One node of a push-back's reset scope goes back to pending: its output is withdrawn,
/// its error and skip reason cleared, and a decision it had is undone (a gate is asked
/// again; a review opens its next round). Returns whether it changed.
fn rewind_node(
    tx: &Connection,
    run_id: &str,
    (node_id, iteration): (&str, i64),
    by_gate: &str,
    tables: &HashMap<String, Rc<OutputTable>>,
    batch: &mut EventBatch,
) -> Result<bool> {
    let row: Option<(String, String, Option<String>)> = tx
        .query_row(
            "SELECT state, output_table, sub_run_id FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            params![run_id, node_id, iteration],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((state, output_table, sub_run)) = row else {
        return Ok(false); // never reached yet: it runs with the push-back's inputs anyway
    };
    let state = NodeState::parse(&state).unwrap_or(NodeState::Pending);
    if state == NodeState::Pending {
        return Ok(false);
    }
    let next = state.apply(NodeEvent::Rewind)?;
    if let Some(sub) = sub_run
        .as_deref()
        .filter(|_| state == NodeState::WaitingApproval)
    {
        crate::engine::cancel_sub_runs(tx, crate::engine::SubRuns::Tree(sub), now_ms(), batch)?;
    }
    tx.execute(
        "UPDATE _smithers_nodes SET state = ?4, error_json = NULL, skip_reason = NULL, sub_run_id = NULL, \
           updated_at_ms = ?5 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
        params![run_id, node_id, iteration, next.as_str(), now_ms()],
    )?;
    if let Some(table) = tables.get(&output_table) {
        table.delete(tx, run_id, node_id, iteration)?;
    }
    tx.execute(
        "DELETE FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND kind = 'gate'",
        params![run_id, node_id, iteration],
    )?;
    // A decided review keeps its round in the history and opens the next one.
    tx.execute(
        "UPDATE _smithers_approvals SET round = round + (status != 'requested'), status = 'pushed-back', \
           decided_at_ms = NULL, decided_by = NULL, note = NULL, inputs_json = NULL \
         WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND kind = 'review'",
        params![run_id, node_id, iteration],
    )?;
    batch.emit(
        tx,
        run_id,
        "NodeReset",
        json!({ "nodeId": node_id, "iteration": iteration, "previous": state.as_str(), "pushedBackAt": by_gate }),
    )?;
    Ok(true)
}

/// The first node of `scope` that is running now, if any: a push-back cannot send back a
/// step whose attempt is still under way.
fn running_in(tx: &Connection, run_id: &str, scope: &[(String, i64)]) -> Result<Option<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT state FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
    )?;
    for (node_id, iteration) in scope {
        let state: Option<String> = stmt
            .query_row(params![run_id, node_id, iteration], |r| r.get(0))
            .optional()?;
        if state.as_deref() == Some("in-progress") {
            return Ok(Some(node_id.clone()));
        }
    }
    Ok(None)
}

/// Writes the output of an `<Approval>` whose decision exists but whose node did not get it
/// (a decision recorded by an older engine, or a crash between two writes).
pub(crate) fn finish_from_decision(
    engine: &mut Engine,
    run_id: &str,
    task: &TaskNode,
) -> Result<Option<OutputRow>> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
        String,
    );
    let row: Option<Row> = engine
        .conn
        .query_row(
            "SELECT status, note, decided_by, decided_at_ms, decision_json, request_json FROM _smithers_approvals \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            params![run_id, task.id, task.iteration],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((status, note, decided_by, decided_at, decision_json, request_json)) = row else {
        return Ok(None);
    };
    if status != "approved" {
        return Ok(None);
    }
    let Some(spec) = &task.approval else {
        return Ok(None);
    };
    let table = engine.run_table(run_id, &task.output)?;
    let request: Value = serde_json::from_str(&request_json).unwrap_or(Value::Null);
    let payload: Option<Value> = decision_json.and_then(|d| serde_json::from_str(&d).ok());
    let decided_at = iso8601(decided_at.unwrap_or_else(now_ms));
    let value = match (spec.mode, payload) {
        (ApprovalMode::Human, Some(answer)) => answer,
        (mode, payload) => decision_value(
            mode,
            &request,
            true,
            note.as_deref(),
            decided_by.as_deref(),
            &decided_at,
            payload.as_ref(),
        )?,
    };
    let tx = begin(&engine.conn, engine.batching)?;
    let mut batch = EventBatch::default();
    let row = write_finished(&tx, &mut batch, run_id, task, &table, value)?;
    tx.commit()?;
    engine.publish(batch);
    Ok(Some(row))
}
