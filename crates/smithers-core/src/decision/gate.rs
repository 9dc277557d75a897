//! Finding the request a decision names: its node (and iteration), or the one request the
//! run waits on.

use serde_json::Value;

use super::{DecisionRequest, Gate};
use crate::error::{Error, PriorDecision, Result};
use crate::graph::{ApprovalMode, OnDeny};
use crate::machines::{ApprovalStatus, NodeKey};
use crate::store::{ApprovalRow, Store};
use crate::time::iso8601;

pub(super) fn find(store: &dyn Store, req: &DecisionRequest) -> Result<Gate> {
    let run_id = &req.run_id;
    if !store.run_exists(run_id)? {
        return Err(Error::RunNotFound {
            run_id: run_id.clone(),
        });
    }
    let row = match &req.node_id {
        // Without an iteration, the node's open request, else its latest.
        Some(node_id) => match store.approval_of_node(run_id, node_id, req.iteration)? {
            Some(row) => row,
            None => {
                let iteration = req.iteration.unwrap_or(0);
                return Err(
                    match store.node_state_named(run_id, node_id, req.iteration)? {
                        Some(state) => Error::NotWaiting {
                            run_id: run_id.clone(),
                            node_id: node_id.clone(),
                            iteration,
                            state: state.as_str().into(),
                        },
                        None => Error::NodeNotFound {
                            run_id: run_id.clone(),
                            node_id: node_id.clone(),
                            iteration,
                        },
                    },
                );
            }
        },
        None => {
            let mut open = store.open_requests(run_id, req.iteration)?;
            match open.len() {
                0 => {
                    return Err(Error::NoPendingApprovals {
                        run_id: run_id.clone(),
                    });
                }
                1 => open.remove(0),
                _ => {
                    return Err(Error::AmbiguousApproval {
                        run_id: run_id.clone(),
                        candidates: open
                            .iter()
                            .map(|r| (r.node_id.clone(), r.iteration))
                            .collect(),
                    });
                }
            }
        }
    };
    if row.status != ApprovalStatus::Requested {
        return Err(not_open(run_id, row));
    }
    Ok(Gate {
        node_id: row.node_id,
        iteration: row.iteration,
        mode: ApprovalMode::parse(&row.mode),
        on_deny: OnDeny::parse(&row.on_deny),
        output_table: row.output_table,
        request: serde_json::from_str(&row.request_json).unwrap_or(Value::Null),
        kind: row.kind,
        round: row.round,
        requested_at_ms: row.requested_at_ms,
    })
}

/// Why a request that is no longer open cannot be decided: withdrawn or sent back (the node
/// does not wait), or decided already (who decided, when).
fn not_open(run_id: &str, row: ApprovalRow) -> Error {
    match row.status {
        ApprovalStatus::Cancelled | ApprovalStatus::PushedBack => Error::NotWaiting {
            run_id: run_id.into(),
            node_id: row.node_id,
            iteration: row.iteration,
            state: if row.status == ApprovalStatus::Cancelled {
                "cancelled".into()
            } else {
                "pending (pushed back)".into()
            },
        },
        status => Error::AlreadyDecided(Box::new(PriorDecision {
            run_id: run_id.into(),
            node_id: row.node_id,
            iteration: row.iteration,
            status: status.as_str().into(),
            decided_by: row.decided_by,
            decided_at: row.decided_at_ms.map(iso8601).unwrap_or_default(),
        })),
    }
}

/// A request found open before the lock and decided by someone else meanwhile: who.
pub(super) fn decided_meanwhile(store: &dyn Store, key: &NodeKey) -> Result<Error> {
    Ok(match store.approval(key)? {
        Some(row) => Error::AlreadyDecided(Box::new(PriorDecision {
            run_id: key.run.clone(),
            node_id: row.node_id,
            iteration: row.iteration,
            status: row.status.as_str().into(),
            decided_by: row.decided_by,
            decided_at: row.decided_at_ms.map(iso8601).unwrap_or_default(),
        })),
        None => Error::NodeNotFound {
            run_id: key.run.clone(),
            node_id: key.node.clone(),
            iteration: key.iteration,
        },
    })
}
