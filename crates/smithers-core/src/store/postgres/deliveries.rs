//! Deliveries and link uses (`deliveries.rs`): `_smithers_deliveries`, `_smithers_link_uses`
//! and the feed cursor in `_smithers_meta`.

use postgres::Row;
use serde_json::Value;

use super::{PgStore, col, json_col};
use crate::deliveries::{Delivery, DeliveryFilter, LinkUse, NewDelivery, Settled};
use crate::error::{Error, Result};
use crate::store::DeliveryRows;

const CURSOR_KEY: &str = "deliveries_feed_cursor";

const COLS: &str = "delivery_id, target, url, event_type, feed_id, run_id, node_id, iteration, \
     status, attempts, next_attempt_at_ms, claimed_by, last_status_code, last_error, created_at_ms, \
     updated_at_ms, delivered_at_ms, body";

fn row(r: &Row, with_body: bool) -> Result<Delivery> {
    Ok(Delivery {
        delivery_id: col(r, 0)?,
        target: col(r, 1)?,
        url: col(r, 2)?,
        event_type: col(r, 3)?,
        feed_id: col(r, 4)?,
        run_id: col(r, 5)?,
        node_id: col(r, 6)?,
        iteration: col(r, 7)?,
        status: col(r, 8)?,
        attempts: col(r, 9)?,
        next_attempt_at_ms: col(r, 10)?,
        claimed_by: col(r, 11)?,
        last_status_code: col(r, 12)?,
        last_error: col(r, 13)?,
        created_at_ms: col(r, 14)?,
        updated_at_ms: col(r, 15)?,
        delivered_at_ms: col(r, 16)?,
        body: if with_body { col(r, 17)? } else { None },
    })
}

impl DeliveryRows for PgStore {
    fn insert_deliveries(&self, rows: &[NewDelivery], now: i64) -> Result<usize> {
        self.lock_schema()?;
        let mut added = 0;
        for d in rows {
            added += self.exec(
                "INSERT INTO _smithers_deliveries (delivery_id, target, url, event_type, feed_id, \
                 run_id, node_id, iteration, body, status, next_attempt_at_ms, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10, $10) ON CONFLICT DO NOTHING",
                &[
                    &d.delivery_id,
                    &d.target,
                    &d.url,
                    &d.event_type,
                    &d.feed_id,
                    &d.run_id,
                    &d.node_id,
                    &d.iteration,
                    &d.body,
                    &now,
                ],
            )?;
        }
        Ok(usize::try_from(added).unwrap_or(usize::MAX))
    }

    fn advance_delivery_cursor(&self, cursor: i64) -> Result<()> {
        self.lock_schema()?;
        self.exec(
            "INSERT INTO _smithers_meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value \
             WHERE excluded.value::bigint > _smithers_meta.value::bigint",
            &[&CURSOR_KEY, &cursor.to_string()],
        )?;
        Ok(())
    }

    fn delivery_cursor(&self) -> Result<Option<i64>> {
        Ok(self
            .one(
                "SELECT value FROM _smithers_meta WHERE key = $1",
                &[&CURSOR_KEY],
                |r| col::<String>(r, 0),
            )?
            .and_then(|v| v.parse().ok()))
    }

    fn deliveries_due(&self, now: i64) -> Result<bool> {
        Ok(self
            .row(
                "SELECT 1 FROM _smithers_deliveries WHERE status IN ('pending', 'sending') \
                 AND next_attempt_at_ms <= $1 AND (status = 'pending' OR claim_expires_at_ms <= $1) LIMIT 1",
                &[&now],
            )?
            .is_some())
    }

    fn claim_deliveries(
        &self,
        claimer: &str,
        targets: &[String],
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        // SKIP LOCKED: senders of other processes claim other rows instead of waiting.
        self.all(
            &format!(
                "UPDATE _smithers_deliveries SET status = 'sending', claimed_by = $1, \
                 claim_expires_at_ms = $2 + $3, attempts = attempts + 1, updated_at_ms = $2 \
                 WHERE delivery_id IN ( \
                   SELECT delivery_id FROM _smithers_deliveries \
                   WHERE status IN ('pending', 'sending') AND next_attempt_at_ms <= $2 \
                     AND (status = 'pending' OR claim_expires_at_ms <= $2) \
                     AND target = ANY($4::text[]) \
                   ORDER BY next_attempt_at_ms, delivery_id LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 RETURNING {COLS}"
            ),
            &[&claimer, &now, &lease_ms, &targets, &limit],
            |r| row(r, true),
        )
    }

    fn settle_delivery(&self, id: &str, claimer: &str, s: &Settled<'_>) -> Result<bool> {
        let changed = self.exec(
            "UPDATE _smithers_deliveries SET status = $3::text, claimed_by = NULL, claim_expires_at_ms = NULL, \
             next_attempt_at_ms = COALESCE($4, next_attempt_at_ms), last_status_code = $5, last_error = $6, \
             updated_at_ms = $7, delivered_at_ms = CASE WHEN $3::text = 'delivered' THEN $7::bigint END \
             WHERE delivery_id = $1 AND status = 'sending' AND claimed_by = $2",
            &[
                &id,
                &claimer,
                &s.status,
                &s.next_attempt_at_ms,
                &s.status_code,
                &s.error,
                &s.now,
            ],
        )?;
        Ok(changed == 1)
    }

    fn delivery_status(&self, id: &str) -> Result<Option<String>> {
        self.one(
            "SELECT status FROM _smithers_deliveries WHERE delivery_id = $1",
            &[&id],
            |r| col(r, 0),
        )
    }

    fn reopen_delivery(&self, id: &str, now: i64) -> Result<Delivery> {
        self.one(
            &format!(
                "UPDATE _smithers_deliveries SET status = 'pending', attempts = 0, next_attempt_at_ms = $2, \
                 updated_at_ms = $2 WHERE delivery_id = $1 RETURNING {COLS}"
            ),
            &[&id, &now],
            |r| row(r, false),
        )?
        .ok_or_else(|| Error::DeliveryNotFound {
            delivery_id: id.to_string(),
        })
    }

    fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let (before_ms, before_id) = match &filter.before {
            Some(c) => (Some(c.created_at_ms), Some(c.delivery_id.as_str())),
            None => (None, None),
        };
        self.all(
            &format!(
                "SELECT {COLS} FROM _smithers_deliveries \
                 WHERE ($1::text IS NULL OR status = $1::text) AND ($2::text IS NULL OR run_id = $2::text) \
                 AND ($3::text IS NULL OR target = $3::text) \
                 AND ($4::bigint IS NULL OR created_at_ms < $4::bigint OR (created_at_ms = $4::bigint AND delivery_id < $5::text)) \
                 ORDER BY created_at_ms DESC, delivery_id DESC LIMIT $6"
            ),
            &[
                &filter.status,
                &filter.run_id,
                &filter.target,
                &before_ms,
                &before_id,
                &filter.limit.unwrap_or(100).clamp(1, 10_000),
            ],
            |r| row(r, filter.with_body),
        )
    }

    fn insert_link_use(&self, link: &LinkUse, now: i64) -> Result<bool> {
        let added = self.exec(
            "INSERT INTO _smithers_link_uses (link_id, run_id, node_id, iteration, action, approver, used_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &link.link_id,
                &link.run_id,
                &link.node_id,
                &link.iteration,
                &link.action,
                &link.approver,
                &now,
            ],
        )?;
        Ok(added == 1)
    }

    fn link_use(&self, link_id: &str) -> Result<Option<(i64, Option<Value>)>> {
        self.one(
            "SELECT used_at_ms, outcome_json FROM _smithers_link_uses WHERE link_id = $1",
            &[&link_id],
            |r| Ok((col::<i64>(r, 0)?, json_col(col(r, 1)?))),
        )
    }

    fn set_link_outcome(&self, link_id: &str, outcome: &Value) -> Result<()> {
        self.exec(
            "UPDATE _smithers_link_uses SET outcome_json = $2 WHERE link_id = $1",
            &[&link_id, &serde_json::to_string(outcome)?],
        )?;
        Ok(())
    }

    fn delete_link_use(&self, link_id: &str) -> Result<()> {
        self.exec(
            "DELETE FROM _smithers_link_uses WHERE link_id = $1",
            &[&link_id],
        )?;
        Ok(())
    }
}
