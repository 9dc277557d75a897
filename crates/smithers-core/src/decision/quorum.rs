//! Quorum gates (`quorum: { approvals, from?, veto? }`): each decision is one person's vote,
//! recorded (`_smithers_votes`, the decision log) in its own transaction; the gate is decided
//! by the vote that makes up the quorum, by a veto holder's denial, or (with `from`) by the
//! denial that leaves too few voters to make it up. One person counts once.

use serde_json::{Value, json};

use super::{DecisionRequest, Gate, Tally};
use crate::apply::Tx;
use crate::audit::{self, NewAuditEntry};
use crate::error::{Error, PriorVote, Result};
use crate::events::EventKind;
use crate::graph::Quorum;
use crate::machines::node::Verdict;
use crate::machines::{Effect, NodeKey};
use crate::store::VoteRow;
use crate::time::iso8601;

/// The quorum a request asks for (stored with it when it was requested).
pub(super) fn of(request: &Value) -> Option<Quorum> {
    request
        .get("quorum")
        .filter(|q| !q.is_null())
        .and_then(|q| serde_json::from_value(q.clone()).ok())
}

/// A vote needs a named voter, one of `from` or `veto` when the gate names them.
pub(super) fn authorise(gate: &Gate, q: &Quorum, req: &DecisionRequest) -> Result<()> {
    let Some(voter) = &req.decided_by else {
        return Err(Error::Forbidden {
            message: format!(
                "{} is decided by a quorum: a vote needs the voter's name",
                gate.node_id
            ),
        });
    };
    if !q.from.is_empty() && !q.from.contains(voter) && !q.veto.contains(voter) {
        let mut may: Vec<&str> = q.from.iter().chain(&q.veto).map(String::as_str).collect();
        may.dedup();
        return Err(Error::Forbidden {
            message: format!(
                "user {voter:?} may not vote on {} (its quorum is from: {})",
                gate.node_id,
                may.join(", ")
            ),
        });
    }
    Ok(())
}

/// Records `req`'s vote on the request asked at `requested_at_ms` and says where the gate
/// stands. Under the decision's lock: a second vote by the same person is `ALREADY_VOTED`,
/// nothing written. A vote that does not decide the gate is an `ApprovalVoted` event; the
/// caller records a deciding one as the gate's decision.
#[allow(clippy::too_many_arguments)]
pub(super) fn vote(
    tx: &mut Tx<'_>,
    req: &DecisionRequest,
    key: &NodeKey,
    q: &Quorum,
    verdict: Verdict,
    view: Option<&str>,
    requested_at_ms: i64,
    at_ms: i64,
) -> Result<Tally> {
    let voter = req.decided_by.clone().unwrap_or_default();
    let votes = tx.store.votes(key, requested_at_ms)?;
    if let Some(prior) = votes.iter().find(|v| v.voter == voter) {
        return Err(Error::AlreadyVoted(Box::new(PriorVote {
            run_id: key.run.clone(),
            node_id: key.node.clone(),
            iteration: key.iteration,
            voter,
            verdict: prior.verdict.clone(),
            at: iso8601(prior.at_ms),
        })));
    }
    let approve = verdict == Verdict::Approve;
    let veto = !approve && q.veto.contains(&voter);
    let by = |v: &str| -> Vec<String> {
        votes
            .iter()
            .filter(|x| x.verdict == v)
            .map(|x| x.voter.clone())
            .chain((if approve { "approve" } else { "deny" } == v).then(|| voter.clone()))
            .collect()
    };
    let (approvals, denials) = (by("approve"), by("deny"));
    // With `from`, the people who could still approve: the named voters who have not denied.
    let unreachable = !q.from.is_empty() && {
        let mut eligible: Vec<&String> = q.from.iter().chain(&q.veto).collect();
        eligible.sort();
        eligible.dedup();
        let left = eligible
            .into_iter()
            .filter(|p| !denials.contains(p))
            .count();
        left < q.approvals as usize
    };
    let decided = (approve && approvals.len() >= q.approvals as usize) || veto || unreachable;
    let tally = Tally {
        needed: q.approvals,
        approvals,
        denials: denials
            .into_iter()
            .filter(|d| !veto || *d != voter)
            .collect(),
        vetoed_by: veto.then(|| voter.clone()),
        decided,
    };
    let verdict_word = if approve { "approve" } else { "deny" };
    let mut effects = vec![
        Effect::RecordVote {
            node: key.clone(),
            vote: Box::new(VoteRow {
                requested_at_ms,
                voter: voter.clone(),
                verdict: verdict_word.into(),
                veto,
                note: req.note.clone(),
                at_ms,
            }),
        },
        Effect::AppendAudit(Box::new(NewAuditEntry {
            kind: audit::kinds::VOTE,
            run_id: key.run.clone(),
            node_id: Some(key.node.clone()),
            iteration: Some(key.iteration),
            actor: Some(voter.clone()),
            at_ms,
            data: json!({ "verdict": verdict_word, "veto": veto, "note": req.note,
                          "digest": view, "bound": req.expect_digest.is_some(),
                          "requestedAtMs": requested_at_ms, "tally": tally }),
        })),
    ];
    if !decided {
        effects.push(key.emit(
            EventKind::ApprovalVoted,
            json!({ "voter": voter, "verdict": verdict_word, "note": req.note, "quorum": tally }),
        ));
    }
    tx.apply(effects)?;
    Ok(tally)
}
