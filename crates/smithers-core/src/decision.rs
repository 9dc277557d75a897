//! Decisions on approval gates: found, authorised, validated and recorded in one
//! transaction, first writer wins. A decision never runs user code; resuming the run is the
//! caller's next step.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{Engine, OutputRow, begin, set_node_row};
use crate::error::{Error, PriorDecision, Result};
use crate::events::EventBatch;
use crate::graph::{ApprovalMode, OnDeny, TaskNode};
use crate::owner::{self, Liveness};
use crate::state::{NodeEvent, NodeState, RunEvent, RunStatus};
use crate::store::{iso8601, now_ms};

const MAX_NOTE: usize = 64 * 1024;
const MAX_NAME: usize = 256;

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
    /// Another live process that drives the run and will pick the decision up.
    pub owner: Option<String>,
    /// Nobody drives the run: the caller should resume it.
    pub needs_resume: bool,
    pub output: Option<OutputRow>,
}

struct Gate {
    node_id: String,
    iteration: i64,
    mode: ApprovalMode,
    on_deny: OnDeny,
    output_table: String,
    request: Value,
}

fn parse_mode(s: &str) -> ApprovalMode {
    match s {
        "gate" => ApprovalMode::Gate,
        "select" => ApprovalMode::Select,
        "rank" => ApprovalMode::Rank,
        _ => ApprovalMode::Decision,
    }
}

fn parse_on_deny(s: &str) -> OnDeny {
    match s {
        "continue" => OnDeny::Continue,
        "skip" => OnDeny::Skip,
        _ => OnDeny::Fail,
    }
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
    let held = |s: &String| {
        req.scopes
            .iter()
            .any(|h| h == s || h == "admin" || h == "*")
    };
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
        ApprovalMode::Gate | ApprovalMode::Decision => {
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
        self.decide(req, true)
    }

    pub fn deny(&mut self, req: DecisionRequest) -> Result<DecisionOutcome> {
        self.decide(req, false)
    }

    fn decide(&mut self, req: DecisionRequest, approved: bool) -> Result<DecisionOutcome> {
        if req.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
            return Err(Error::InvalidDecision("note is longer than 64 KiB".into()));
        }
        if req
            .decided_by
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > MAX_NAME)
        {
            return Err(Error::InvalidDecision(
                "decidedBy must be 1-256 characters".into(),
            ));
        }
        let run_id = req.run_id.clone();
        // Find the gate before taking the write lock, then check it again under the lock.
        let gate = self.find_gate(&req)?;
        authorise(&gate, &req)?;
        let table = match gate.mode {
            ApprovalMode::Gate => None,
            _ => Some(self.table(&gate.output_table)?),
        };
        let decided_at_ms = now_ms();
        let decided_at = iso8601(decided_at_ms);
        let output_value = match &table {
            Some(table) if approved || gate.on_deny != OnDeny::Fail => {
                let v = decision_value(
                    gate.mode,
                    &gate.request,
                    approved,
                    req.note.as_deref(),
                    req.decided_by.as_deref(),
                    &decided_at,
                    req.decision.as_ref(),
                )?;
                table.validate(&gate.node_id, &v)?;
                Some(v)
            }
            _ => None,
        };

        let tx = begin(&self.conn, self.batching)?;
        let (run_status, run_owner): (String, Option<String>) = tx
            .query_row(
                "SELECT status, owner FROM _smithers_runs WHERE run_id = ?1",
                [&run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.clone(),
            })?;
        let run_status = RunStatus::parse(&run_status).unwrap_or(RunStatus::Failed);
        let status = if approved { "approved" } else { "denied" };
        let changed = tx.execute(
            "UPDATE _smithers_approvals SET status = ?4, decided_at_ms = ?5, note = ?6, decided_by = ?7, decision_json = ?8 \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND status = 'requested'",
            params![
                run_id,
                gate.node_id,
                gate.iteration,
                status,
                decided_at_ms,
                req.note,
                req.decided_by,
                req.decision.as_ref().map(serde_json::to_string).transpose()?
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
        let (event, skip_reason) = match (approved, gate.mode, gate.on_deny) {
            (true, ApprovalMode::Gate, _) => (NodeEvent::ApproveGate, None),
            (true, _, _) => (NodeEvent::ApproveDecision, None),
            (false, _, OnDeny::Fail) => (NodeEvent::DenyFail, None),
            (false, ApprovalMode::Gate, OnDeny::Continue) => {
                (NodeEvent::Skip, Some("denied-continue"))
            }
            (false, ApprovalMode::Gate, OnDeny::Skip) => (NodeEvent::Skip, Some("denied")),
            (false, _, OnDeny::Continue) => (NodeEvent::DenyContinue, None),
            (false, _, OnDeny::Skip) => (NodeEvent::DenyContinue, Some("denied")),
        };
        let next = node_state.apply(event)?;
        let error_json = (next == NodeState::Failed)
            .then(|| {
                json!({ "code": "APPROVAL_DENIED", "message": format!("Approval {} was denied", gate.node_id),
                        "note": req.note, "decidedBy": req.decided_by })
                .to_string()
            });
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
        let mut batch = EventBatch::default();
        let payload = json!({ "nodeId": gate.node_id, "iteration": gate.iteration, "decidedBy": req.decided_by, "note": req.note });
        batch.emit(
            &tx,
            &run_id,
            if approved {
                "ApprovalGranted"
            } else {
                "ApprovalDenied"
            },
            payload,
        )?;
        let node_event = match next {
            NodeState::Finished => Some("NodeFinished"),
            NodeState::Failed => Some("NodeFailed"),
            NodeState::Skipped => Some("NodeSkipped"),
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
        let mut new_status = run_status;
        if run_status == RunStatus::WaitingApproval {
            new_status = run_status.apply(RunEvent::Wake)?;
            tx.execute(
                "UPDATE _smithers_runs SET status = ?2, updated_at_ms = ?3 WHERE run_id = ?1",
                params![run_id, new_status.as_str(), decided_at_ms],
            )?;
            batch.emit(
                &tx,
                &run_id,
                "RunStatusChanged",
                json!({ "status": new_status.as_str(), "previous": run_status.as_str() }),
            )?;
        }
        tx.commit()?;
        self.publish(batch);

        let live_owner = run_owner.filter(|o| {
            (o == &self.owner && self.runs.contains_key(&run_id))
                || (o != &self.owner && owner::liveness(o) != Liveness::Dead)
        });
        Ok(DecisionOutcome {
            needs_resume: !new_status.is_terminal() && live_owner.is_none(),
            run_id: run_id.clone(),
            node_id: gate.node_id.clone(),
            iteration: gate.iteration,
            status,
            decided_by: req.decided_by,
            decided_at,
            run_status: new_status.as_str(),
            owner: live_owner,
            output: output_value.map(|value| OutputRow {
                table: gate.output_table.clone(),
                node_id: gate.node_id.clone(),
                iteration: gate.iteration,
                value,
            }),
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
            ))
        };
        let cols = "node_id, iteration, status, mode, on_deny, output_table, request_json, decided_by, decided_at_ms";
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
        ) = row;
        if status != "requested" {
            if status == "cancelled" {
                return Err(Error::NotWaiting {
                    run_id: run_id.clone(),
                    node_id,
                    iteration,
                    state: "cancelled".into(),
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
            mode: parse_mode(&mode),
            on_deny: parse_on_deny(&on_deny),
            output_table,
            request: serde_json::from_str(&request_json).unwrap_or(Value::Null),
        })
    }
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
    let table = engine.table(&task.output)?;
    let request: Value = serde_json::from_str(&request_json).unwrap_or(Value::Null);
    let payload: Option<Value> = decision_json.and_then(|d| serde_json::from_str(&d).ok());
    let decided_at = iso8601(decided_at.unwrap_or_else(now_ms));
    let value = decision_value(
        spec.mode,
        &request,
        true,
        note.as_deref(),
        decided_by.as_deref(),
        &decided_at,
        payload.as_ref(),
    )?;
    let tx = begin(&engine.conn, engine.batching)?;
    table.write(&tx, run_id, &task.id, task.iteration, &value)?;
    set_node_row(
        &tx,
        run_id,
        &task.id,
        task.iteration,
        NodeState::Finished,
        0,
        None,
        None,
    )?;
    let mut batch = EventBatch::default();
    batch.emit(
        &tx,
        run_id,
        "NodeFinished",
        json!({ "nodeId": task.id, "iteration": task.iteration }),
    )?;
    tx.commit()?;
    engine.publish(batch);
    Ok(Some(OutputRow {
        table: task.output.clone(),
        node_id: task.id.clone(),
        iteration: task.iteration,
        value,
    }))
}
