//! The engine's calls on outgoing notifications (`deliveries.rs`): each one transaction over
//! the store's `DeliveryRows`.

use serde_json::Value;

use crate::deliveries::{
    DELIVERY_STATUSES, Delivery, DeliveryFilter, DeliveryOutcome, LinkUse, NewDelivery, Settled,
    check_delivery,
};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::logs::DELIVERIES;

impl Engine {
    /// Writes deliveries (a row that exists already is left as it is: another process wrote
    /// it for the same event) and, in the same transaction, moves the feed cursor forward to
    /// `cursor`. Returns how many rows were new.
    pub fn enqueue_deliveries(
        &mut self,
        rows: &[NewDelivery],
        cursor: Option<i64>,
        now_ms: i64,
    ) -> Result<usize> {
        for d in rows {
            check_delivery(d)?;
        }
        self.transaction(|tx| {
            let added = tx.store.insert_deliveries(rows, now_ms)?;
            if let Some(cursor) = cursor {
                tx.store.advance_delivery_cursor(cursor)?;
            }
            Ok(added)
        })
    }

    /// The feed position up to which events were turned into deliveries, if any process did.
    pub fn delivery_cursor(&self) -> Result<Option<i64>> {
        self.store.delivery_cursor()
    }

    /// Claims up to `limit` deliveries to `targets` that are due at `now_ms`: pending ones
    /// whose next attempt has come, and ones being sent whose sender's claim expired. Each is
    /// returned with its body, its attempt counted, and claimed by `claimer` until
    /// `now_ms + lease_ms`. One write transaction: two claimers never get the same row.
    pub fn claim_deliveries(
        &mut self,
        claimer: &str,
        targets: &[String],
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        // Looked at first without the write lock: most polls find nothing due.
        if targets.is_empty() || !self.store.deliveries_due(now_ms)? {
            return Ok(Vec::new());
        }
        let claimed = self.transaction(|tx| {
            tx.store.claim_deliveries(
                claimer,
                targets,
                now_ms,
                lease_ms.max(1),
                limit.clamp(1, 1000),
            )
        })?;
        if !claimed.is_empty() {
            tracing::debug!(
                target: DELIVERIES,
                claimer,
                deliveries = ?claimed.iter().map(|d| d.delivery_id.as_str()).collect::<Vec<_>>(),
                "deliveries claimed"
            );
        }
        Ok(claimed)
    }

    /// Records what became of an attempt. False (nothing written) when `claimer` no longer
    /// holds the row: its claim expired and another sender took it.
    pub fn settle_delivery(
        &mut self,
        delivery_id: &str,
        claimer: &str,
        outcome: &DeliveryOutcome,
        now_ms: i64,
    ) -> Result<bool> {
        let (status, next) = match (outcome.delivered, outcome.next_attempt_at_ms) {
            (true, _) => ("delivered", None),
            (false, Some(at)) => ("pending", Some(at)),
            (false, None) => ("failed", None),
        };
        let error: Option<String> = outcome
            .error
            .as_deref()
            .map(|e| e.chars().take(2000).collect());
        let settled = Settled {
            status,
            next_attempt_at_ms: next,
            status_code: outcome.status_code,
            error: error.as_deref(),
            now: now_ms,
        };
        let held =
            self.transaction(|tx| tx.store.settle_delivery(delivery_id, claimer, &settled))?;
        tracing::info!(
            target: DELIVERIES,
            delivery_id,
            status,
            status_code = ?outcome.status_code,
            error = error.as_deref().unwrap_or(""),
            next_attempt_at_ms = ?next,
            claim_held = held,
            "delivery attempt recorded"
        );
        Ok(held)
    }

    /// Makes a delivery that gave up (`failed`) due again at `now_ms`, with its attempts
    /// counted from zero. `DELIVERY_NOT_FOUND` for an unknown id; a delivery that is not
    /// `failed` is `INVALID_DELIVERY` (nothing changes).
    pub fn retry_delivery(&mut self, delivery_id: &str, now_ms: i64) -> Result<Delivery> {
        self.transaction(|tx| {
            match tx.store.delivery_status(delivery_id)?.as_deref() {
                None => {
                    return Err(Error::DeliveryNotFound {
                        delivery_id: delivery_id.into(),
                    });
                }
                Some("failed") => {}
                Some(other) => {
                    return Err(Error::InvalidDelivery(format!(
                        "delivery {delivery_id} is {other}; only a failed delivery is retried by hand"
                    )));
                }
            }
            tx.store.reopen_delivery(delivery_id, now_ms)
        })
    }

    /// Deliveries, newest first.
    pub fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        if let Some(status) = &filter.status
            && !DELIVERY_STATUSES.contains(&status.as_str())
        {
            return Err(Error::InvalidDelivery(format!(
                "status {status:?} is not one of {}",
                DELIVERY_STATUSES.join(", ")
            )));
        }
        self.store.list_deliveries(filter)
    }

    /// Records the first use of a link; a link used before is `LINK_USED` (naming when and
    /// what it decided), and nothing is written.
    pub fn use_link(&mut self, link: &LinkUse, now_ms: i64) -> Result<()> {
        self.transaction(|tx| {
            let first = tx.store.insert_link_use(link, now_ms)?;
            tracing::info!(
                target: DELIVERIES,
                link_id = link.link_id.as_str(),
                run_id = link.run_id.as_str(),
                node_id = link.node_id.as_str(),
                action = link.action.as_str(),
                approver = link.approver.as_str(),
                first_use = first,
                "decision link used"
            );
            if first {
                return Ok(());
            }
            let (used_at_ms, outcome) = tx.store.link_use(&link.link_id)?.unwrap_or((0, None));
            Err(Error::LinkUsed {
                link_id: link.link_id.clone(),
                used_at: crate::time::iso8601(used_at_ms),
                outcome,
            })
        })
    }

    /// Records what the use of a link did (the decision, or the error that refused it).
    pub fn record_link_outcome(&mut self, link_id: &str, outcome: &Value) -> Result<()> {
        self.transaction(|tx| tx.store.set_link_outcome(link_id, outcome))
    }

    /// Forgets the use of a link whose decision failed for a passing reason (the database
    /// was busy), so the approver can use it again.
    pub fn release_link(&mut self, link_id: &str) -> Result<()> {
        self.transaction(|tx| tx.store.delete_link_use(link_id))
    }
}
