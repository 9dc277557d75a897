//! Decisions on approval gates and reviews: found, authorised, validated and recorded in one
//! transaction, first writer wins. A decision never runs user code; resuming the run is the
//! caller's next step.
//!
//! Vocabulary (ARCHITECTURE.md, glossary): a **gate** is decided before its step runs, a
//! **review** after; the **verdict** is approve, deny (a review denied is rejected) or
//! push-back; a push-back opens the review's next **round**.

mod checks;
mod gate;
mod quorum;
mod record;
mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::OutputRow;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{ApprovalMode, OnDeny};
use crate::ident::{check_name, check_text};
use crate::logs::DECISION;
use crate::machines::node::Verdict;
use crate::owner;

/// Scope matching is part of the contract every surface shares.
pub use crate::contract::{SCOPE_LEVELS, scope_covers};
pub(crate) use record::reset_scope_of;
pub(crate) use values::{AUTO_DECIDER, AUTO_NOTE, decision_value};

const MAX_NOTE: usize = 64 * 1024;

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
    /// The view digest the decider saw (`inspect`, the inbox): the decision is refused with
    /// `STALE_VIEW` when the pending request's digest is another. `None`: not checked.
    #[serde(default)]
    pub expect_digest: Option<String>,
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
    /// A quorum gate: the votes on it so far (with this one). `status` is `voted` while the
    /// gate stays open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Tally>,
}

/// Where a quorum gate stands after a vote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Approvals it needs.
    pub needed: u32,
    /// Who approved, in the order they voted.
    pub approvals: Vec<String>,
    /// Who denied (without a veto), in the order they voted.
    pub denials: Vec<String>,
    /// The veto holder whose denial decided it.
    pub vetoed_by: Option<String>,
    /// Whether this vote decided the gate.
    pub decided: bool,
}

/// A request waiting for a decision, as found.
pub(crate) struct Gate {
    pub node_id: String,
    pub iteration: i64,
    pub mode: ApprovalMode,
    pub on_deny: OnDeny,
    pub output_table: String,
    pub request: Value,
    pub kind: String,
    pub round: i64,
    pub requested_at_ms: i64,
}

impl Gate {
    fn is_review(&self) -> bool {
        self.kind == "review"
    }
}

impl Engine {
    pub fn approve(&mut self, req: DecisionRequest) -> Result<DecisionOutcome> {
        self.decide(req, Verdict::Approve)
    }

    /// Denies a gate (per its `onDeny`), or rejects a reviewed step (the run is rejected).
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
                target: DECISION,
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
                target: DECISION,
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
                target: DECISION,
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
        check_request(&req)?;
        let run_id = req.run_id.clone();
        // Find the gate before taking the write lock; the record checks it again under it.
        let gate = gate::find(&*self.store, &req)?;
        if verdict == Verdict::PushBack && !gate.is_review() {
            return Err(Error::PushBackUnsupported {
                node_id: gate.node_id.clone(),
                why: "only a step with approval={{…}} (reviewed after it runs) can be sent back",
            });
        }
        checks::authorise(&gate, &req)?;
        if let Some(q) = quorum::of(&gate.request).filter(|_| !gate.is_review()) {
            quorum::authorise(&gate, &q, &req)?;
        }
        if req.forbid_starter && verdict == Verdict::Approve {
            let started_by = self.store.run(&run_id)?.and_then(|r| r.started_by);
            if started_by.is_some() && started_by == req.decided_by {
                return Err(Error::Forbidden {
                    message: format!(
                        "{} started run {run_id} and may not approve it (the starter may not approve their own run)",
                        started_by.unwrap_or_default()
                    ),
                });
            }
        }
        let human = !gate.is_review() && gate.mode == ApprovalMode::Human;
        if !human {
            checks::check_inputs(&gate, &req.inputs, verdict)?;
        }
        let bound = self.runs.get(&run_id).map(|r| r.schema_versions.clone());
        let driving = self.runs.contains_key(&run_id);
        let me = self.config.owner.clone();
        let recorded =
            self.transaction(|tx| record::record(tx, &req, &gate, verdict, bound.as_ref()))?;
        // The owner of a run that will pick the decision up itself: this engine while it
        // drives the run, or another engine that still holds its lease.
        let live_owner = recorded.owner.clone().filter(|o| {
            (*o == me && driving)
                || (*o != me && owner::holds(o, recorded.lease_expires_at_ms, recorded.at_ms))
        });
        Ok(recorded.outcome(req, gate, live_owner))
    }
}

/// What a request must be, whatever it decides: bounded text without control characters,
/// names that are names, and no decider that speaks for the engine.
fn check_request(req: &DecisionRequest) -> Result<()> {
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
    if let Some(digest) = &req.expect_digest {
        crate::audit::check_digest(digest)?;
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
    if req
        .decided_by
        .as_ref()
        .is_some_and(|n| n.starts_with("system:"))
    {
        return Err(Error::InvalidDecision(
            "decidedBy names starting with \"system:\" are the engine's (system:timeout decides gates whose deadline passed)".into(),
        ));
    }
    Ok(())
}

/// A gate's deadline passed undecided (`timers.rs`): records its `onTimeout` decision, made by
/// `req.decided_by` (`system:timeout`), in the caller's transaction and through the same
/// recording as a person's decision (first writer wins, the same row, output and events).
/// `fail` is a denial that fails the node whatever the gate's `onDeny` says. Returns the
/// approval's new status.
pub(crate) fn record_timeout(
    tx: &mut crate::apply::Tx<'_>,
    req: &DecisionRequest,
    on_timeout: crate::graph::OnTimeout,
    bound: Option<&std::collections::HashMap<String, i64>>,
) -> Result<&'static str> {
    use crate::graph::OnTimeout;
    let mut gate = gate::find(tx.store, req)?;
    let verdict = match on_timeout {
        OnTimeout::Approve => Verdict::Approve,
        OnTimeout::Deny => Verdict::Deny,
        OnTimeout::Fail => {
            gate.on_deny = OnDeny::Fail;
            Verdict::Deny
        }
    };
    Ok(record::record(tx, req, &gate, verdict, bound)?.status)
}
