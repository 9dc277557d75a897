//! What a decision must satisfy before anything is recorded: who may decide, and the
//! approver inputs the gate takes.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{DecisionRequest, Gate};
use crate::contract::scope_covers;
use crate::error::{Error, Result};
use crate::ident::check_text;
use crate::machines::node::Verdict;

const MAX_INPUT: usize = 64 * 1024;

/// The strings of an array field of a request (`input`, `allowedUsers`, …).
pub(super) fn strings(v: &Value, key: &str) -> Vec<String> {
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

/// Inputs must be declared by the gate; an approve must carry the required ones.
pub(super) fn check_inputs(
    gate: &Gate,
    inputs: &BTreeMap<String, String>,
    verdict: Verdict,
) -> Result<()> {
    let declared = strings(&gate.request, "input");
    let undeclared: Vec<String> = inputs
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
    if let Some((k, _)) = inputs
        .iter()
        .find(|(_, v)| v.len() > MAX_INPUT || v.contains('\0'))
    {
        return Err(Error::InvalidDecision(format!(
            "input {k} must be text without NUL bytes, at most 64 KiB"
        )));
    }
    for (k, v) in inputs {
        check_text(&format!("input {k}"), v)?;
    }
    if verdict == Verdict::Approve {
        let missing: Vec<String> = strings(&gate.request, "required")
            .into_iter()
            .filter(|r| inputs.get(r).is_none_or(|v| v.trim().is_empty()))
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

/// The decider must be one of the gate's `allowedUsers` and hold one of its `allowedScopes`
/// (when it names any).
pub(super) fn authorise(gate: &Gate, req: &DecisionRequest) -> Result<()> {
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
