//! Read-only views for operators (runs, one run in detail, pending approvals, events, logs),
//! and the few writes operators' tools make outside a run's drive: why a watcher could not
//! resume a run, and what a driver ran outside the core. The rows come from the store's
//! views (`store::Views`); this adds what only the engine knows (its clock, whose leases are
//! alive) and the checks on the request.

use serde_json::{Value, json};

use crate::api::RunError;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::{Event, EventKind};
use crate::machines::{ApprovalStatus, Effect};
use crate::owner::{self, Liveness};
use crate::views::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, OrphanCursor, OrphanedRun, RunFilter,
    RunInspection, RunSummary, StoreMetrics,
};

/// What `pending_approvals` takes as `status`: an approval status, or `all`.
fn approval_status_filter(status: &str) -> Result<Option<&str>> {
    if status == "all" {
        return Ok(None);
    }
    let listed = ApprovalStatus::ALL
        .iter()
        .filter(|s| **s != ApprovalStatus::Cancelled);
    if listed.clone().any(|s| s.as_str() == status) {
        return Ok(Some(status));
    }
    let names: Vec<&str> = listed.map(|s| s.as_str()).chain(["all"]).collect();
    Err(Error::InvalidDecision(format!(
        "unknown approval status {status:?} (one of: {})",
        names.join(", ")
    )))
}

impl Engine {
    /// Whether a run's owner still holds it: `alive`, `dead`, or `unknown` (another host,
    /// no lease to tell).
    fn with_liveness(&self, mut run: RunSummary) -> RunSummary {
        let now = self.now();
        run.owner_liveness = run.owner.as_deref().map(|o| {
            if owner::holds(o, run.lease_expires_at_ms, now) {
                match (owner::liveness(o), run.lease_expires_at_ms) {
                    (Liveness::Unknown, None) => "unknown",
                    _ => "alive",
                }
            } else {
                "dead"
            }
        });
        run
    }

    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        Ok(self
            .store
            .list_runs(filter)?
            .into_iter()
            .map(|r| self.with_liveness(r))
            .collect())
    }

    pub fn run_summary(&self, run_id: &str) -> Result<RunSummary> {
        self.store
            .run_summary(run_id)?
            .map(|r| self.with_liveness(r))
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.into(),
            })
    }

    pub fn inspect(&mut self, run_id: &str) -> Result<RunInspection> {
        let run = self.run_summary(run_id)?;
        let input = self
            .store
            .run(run_id)?
            .map(|r| r.input_json)
            .unwrap_or_else(|| "null".into());
        let outputs = self.schemas.read_outputs(&*self.store, run_id)?;
        Ok(RunInspection {
            run,
            input: serde_json::from_str(&input)?,
            nodes: self.store.node_summaries(run_id)?,
            approvals: self.store.run_approvals(run_id)?,
            outputs,
            loops: self.store.loop_summaries(run_id)?,
            agent_attempts: self.store.agent_attempts(run_id)?,
        })
    }

    /// Approvals waiting for a decision (or, with `status`, decided ones), oldest request
    /// first, across runs or for one run and its sub-runs (a caller waits on its sub-run's
    /// gates, so they are listed with it). Page with `after` (the last row's sort key): its
    /// cost does not grow with the depth of the page, unlike `offset`.
    pub fn pending_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalSummary>> {
        let status = approval_status_filter(filter.status.as_deref().unwrap_or("requested"))?;
        self.store.approvals(filter, status)
    }

    /// Runs that are `running` but driven by nobody: a decision was recorded while no process
    /// drove them (`--no-resume`, another process), or (with `include_dead`) their owner no
    /// longer holds them (its process died, or its lease expired). Oldest first; page with
    /// `after` (the last run's `updatedAtMs` and id). Runs a watcher could not resume
    /// (`mark_unresumable`) are left out until something changes them or they are claimed.
    pub fn orphaned_runs(
        &self,
        limit: i64,
        include_dead: bool,
        after: Option<&OrphanCursor>,
    ) -> Result<Vec<OrphanedRun>> {
        let limit = usize::try_from(limit.max(1)).unwrap_or(1);
        let mut keep = |run: &mut RunSummary| {
            *run = self.with_liveness(run.clone());
            let orphaned = run.owner.is_none() || run.owner_liveness == Some("dead");
            if orphaned {
                tracing::debug!(
                    run_id = run.run_id.as_str(),
                    previous_owner = run.owner.as_deref().unwrap_or(""),
                    lease_expires_at = run.lease_expires_at.as_deref().unwrap_or(""),
                    "orphaned run found: nobody drives it"
                );
            }
            orphaned
        };
        Ok(self
            .store
            .orphan_candidates(include_dead, after, limit, &mut keep)?
            .into_iter()
            .map(|(run, updated_at_ms)| OrphanedRun { run, updated_at_ms })
            .collect())
    }

    /// Records why a watcher could not resume a run (its workflow file is gone, it no longer
    /// loads, …): `orphaned_runs` leaves it out from then on, and `why` and the inbox say so.
    /// Claiming the run (`smithers resume` once the cause is fixed) clears it.
    pub fn mark_unresumable(&mut self, run_id: &str, error: RunError) -> Result<()> {
        self.run_summary(run_id)?;
        self.transaction(|tx| {
            tx.apply(vec![
                Effect::MarkUnresumable {
                    run: run_id.into(),
                    error: error.clone(),
                },
                Effect::Emit {
                    run: run_id.into(),
                    kind: EventKind::ResumeFailed,
                    payload: json!({ "error": error }),
                },
            ])
        })?;
        tracing::info!(
            run_id,
            code = error.code.as_str(),
            error = error.message.as_str(),
            "run marked unresumable: watchers leave it until it changes or is claimed"
        );
        Ok(())
    }

    /// Events of every run after position `after_id` of the database-wide feed.
    pub fn feed(&self, after_id: i64, limit: i64) -> Result<Vec<Event>> {
        self.store.feed(after_id, limit.clamp(1, 100_000))
    }

    /// The newest position of the feed.
    pub fn feed_head(&self) -> Result<i64> {
        self.store.feed_head()
    }

    /// Checks the decision log's chain from its first entry to the head recorded with it
    /// (`smithers audit verify`): the first entry altered or removed, if any. Reads pages of
    /// 1,000 entries; nothing is written.
    pub fn audit_verify(&self) -> Result<crate::audit::AuditReport> {
        verify_audit(&*self.store)
    }

    /// Entries of the decision log after `after_seq`, oldest first, at most `limit` (1 to
    /// 100,000), as stored: for auditors (`smithers audit export`).
    pub fn audit_entries(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::AuditEntry>> {
        self.store
            .audit_entries(after_seq.max(0), limit.clamp(1, 100_000))
    }

    /// The attempts of a run that have logs (command tasks), oldest first.
    pub fn attempt_logs(&self, run_id: &str, filter: &LogFilter) -> Result<Vec<AttemptLog>> {
        self.run_summary(run_id)?;
        let rows = self.store.attempt_logs(run_id, filter)?;
        if rows.is_empty()
            && let Some(node_id) = &filter.node_id
            && !self.store.has_node(run_id, node_id)?
        {
            return Err(Error::NodeNotFound {
                run_id: run_id.into(),
                node_id: node_id.clone(),
                iteration: filter.iteration.unwrap_or(0),
            });
        }
        Ok(rows)
    }

    /// Records what a driver ran outside the core (a wait or failure handler, a wait mail, an
    /// agent's tool calls) in the run's event log. Only those event kinds are accepted.
    pub fn record_driver_event(&mut self, run_id: &str, kind: &str, payload: Value) -> Result<()> {
        let Some(kind) = EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.is_driver() && k.as_str() == kind)
        else {
            let names: Vec<&str> = EventKind::ALL
                .iter()
                .filter(|k| k.is_driver())
                .map(|k| k.as_str())
                .collect();
            return Err(Error::InvalidDecision(format!(
                "{kind:?} is not an event a driver may record ({})",
                names.join(", ")
            )));
        };
        self.run_summary(run_id)?;
        self.transaction(|tx| {
            tx.apply(vec![Effect::Emit {
                run: run_id.into(),
                kind,
                payload,
            }])
        })
    }

    /// Runs by workflow and status, and pending approvals by workflow (`/metrics`).
    pub fn store_metrics(&self) -> Result<StoreMetrics> {
        self.store.store_metrics()
    }

    pub fn events(&self, run_id: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>> {
        self.run_summary(run_id)?;
        self.store
            .events(run_id, after_seq, limit.clamp(1, 100_000))
    }
}

/// Checks a store's decision log from its first entry to the head recorded with it, in pages
/// of 1,000 entries (`Engine::audit_verify`, and `migrate` on both of its databases).
pub(crate) fn verify_audit(store: &dyn crate::store::Store) -> Result<crate::audit::AuditReport> {
    let mut verifier = crate::audit::Verifier::new();
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            verifier.check(e);
        }
        if verifier.done() {
            break;
        }
    }
    Ok(verifier.finish(store.audit_head()?))
}
