//! What a decision writes: the row an `<Approval>` gets as its output, and a human task's
//! answer (or why it was refused).

use serde_json::{Value, json};

use super::{DecisionRequest, Gate};
use crate::error::{Error, Result};
use crate::graph::ApprovalMode;
use crate::output::OutputTable;

/// Who decides an auto-approved gate (as in Smithers); names starting with `smithers:` are
/// the engine's, never a person's.
pub const AUTO_DECIDER: &str = "smithers:auto";
pub(crate) const AUTO_NOTE: &str = "Auto-approved";

/// The value an `<Approval>` writes to its output table.
pub(crate) fn decision_value(
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

/// Why a human task's answer was refused (it still counts as an attempt).
pub(super) struct RefusedAnswer {
    pub error: Error,
    pub answer: Value,
}

/// The answer an approve of a `<HumanTask>` carries, as the task's output: `decision` (the
/// JSON object), else the note parsed as JSON (`approve <run> <node> --note '<json>'`, as
/// Smithers documents it), else the inputs as fields (`--input field=value`, typed by the
/// schema). `Err` inside: an answer that is not valid; outside: no answer at all.
pub(super) fn human_answer(
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
                    error: Error::HumanTaskInvalidJson {
                        node_id: gate.node_id.clone(),
                        message: e.to_string(),
                    },
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
            error: Error::HumanTaskValidationFailed {
                node_id: gate.node_id.clone(),
                message: match e {
                    Error::InvalidOutput { errors, .. } => errors.join("; "),
                    e => e.to_string(),
                },
            },
            answer: value,
        }),
    })
}
