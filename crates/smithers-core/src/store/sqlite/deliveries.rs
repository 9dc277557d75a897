//! Deliveries and link uses (`deliveries.rs`): `_smithers_deliveries`, `_smithers_link_uses`
//! and the feed cursor in `_smithers_meta`.

use rusqlite::params;
use serde_json::Value;

use super::{SqliteStore, all, json_col, one};
use crate::deliveries::{Delivery, DeliveryFilter, LinkUse, NewDelivery, Settled};
use crate::error::Result;
use crate::store::DeliveryRows;

const CURSOR_KEY: &str = "deliveries_feed_cursor";

const COLS: &str = "delivery_id, target, url, event_type, feed_id, run_id, node_id, iteration, \
     status, attempts, next_attempt_at_ms, claimed_by, last_status_code, last_error, created_at_ms, \
     updated_at_ms, delivered_at_ms, body";

fn row(r: &rusqlite::Row<'_>, with_body: bool) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        delivery_id: r.get(0)?,
        target: r.get(1)?,
        url: r.get(2)?,
        event_type: r.get(3)?,
        feed_id: r.get(4)?,
        run_id: r.get(5)?,
        node_id: r.get(6)?,
        iteration: r.get(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        next_attempt_at_ms: r.get(10)?,
        claimed_by: r.get(11)?,
        last_status_code: r.get(12)?,
        last_error: r.get(13)?,
        created_at_ms: r.get(14)?,
        updated_at_ms: r.get(15)?,
        delivered_at_ms: r.get(16)?,
        body: if with_body { r.get(17)? } else { None },
    })
}

impl DeliveryRows for SqliteStore {
    fn insert_deliveries(&self, rows: &[NewDelivery], now: i64) -> Result<usize> {
        let mut insert = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO _smithers_deliveries (delivery_id, target, url, event_type, feed_id, \
             run_id, node_id, iteration, body, status, next_attempt_at_ms, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?10)",
        )?;
        let mut added = 0;
        for d in rows {
            added += insert.execute(params![
                d.delivery_id,
                d.target,
                d.url,
                d.event_type,
                d.feed_id,
                d.run_id,
                d.node_id,
                d.iteration,
                d.body,
                now
            ])?;
        }
        Ok(added)
    }

    fn advance_delivery_cursor(&self, cursor: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO _smithers_meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                 WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER)",
            )?
            .execute(params![CURSOR_KEY, cursor.to_string()])?;
        Ok(())
    }

    fn delivery_cursor(&self) -> Result<Option<i64>> {
        Ok(one(
            &self.conn,
            "SELECT value FROM _smithers_meta WHERE key = ?1",
            [CURSOR_KEY],
            |r| r.get::<_, String>(0),
        )?
        .and_then(|v| v.parse().ok()))
    }

    fn deliveries_due(&self, now: i64) -> Result<bool> {
        Ok(one(
            &self.conn,
            "SELECT 1 FROM _smithers_deliveries WHERE status IN ('pending', 'sending') \
             AND next_attempt_at_ms <= ?1 AND (status = 'pending' OR claim_expires_at_ms <= ?1) LIMIT 1",
            [now],
            |_| Ok(()),
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
        let targets_json = serde_json::to_string(targets)?;
        all(
            &self.conn,
            &format!(
                "UPDATE _smithers_deliveries SET status = 'sending', claimed_by = ?1, \
                 claim_expires_at_ms = ?2 + ?3, attempts = attempts + 1, updated_at_ms = ?2 \
                 WHERE delivery_id IN ( \
                   SELECT delivery_id FROM _smithers_deliveries \
                   WHERE status IN ('pending', 'sending') AND next_attempt_at_ms <= ?2 \
                     AND (status = 'pending' OR claim_expires_at_ms <= ?2) \
                     AND target IN (SELECT value FROM json_each(?4)) \
                   ORDER BY next_attempt_at_ms, delivery_id LIMIT ?5) \
                 RETURNING {COLS}"
            ),
            params![claimer, now, lease_ms, targets_json, limit],
            |r| row(r, true),
        )
    }

    fn settle_delivery(&self, id: &str, claimer: &str, s: &Settled<'_>) -> Result<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE _smithers_deliveries SET status = ?3, claimed_by = NULL, claim_expires_at_ms = NULL, \
                 next_attempt_at_ms = COALESCE(?4, next_attempt_at_ms), last_status_code = ?5, last_error = ?6, \
                 updated_at_ms = ?7, delivered_at_ms = CASE WHEN ?3 = 'delivered' THEN ?7 END \
                 WHERE delivery_id = ?1 AND status = 'sending' AND claimed_by = ?2",
            )?
            .execute(params![
                id,
                claimer,
                s.status,
                s.next_attempt_at_ms,
                s.status_code,
                s.error,
                s.now
            ])?;
        Ok(changed == 1)
    }

    fn delivery_status(&self, id: &str) -> Result<Option<String>> {
        one(
            &self.conn,
            "SELECT status FROM _smithers_deliveries WHERE delivery_id = ?1",
            [id],
            |r| r.get(0),
        )
    }

    fn reopen_delivery(&self, id: &str, now: i64) -> Result<Delivery> {
        Ok(self.conn.prepare_cached(&format!(
            "UPDATE _smithers_deliveries SET status = 'pending', attempts = 0, next_attempt_at_ms = ?2, \
             updated_at_ms = ?2 WHERE delivery_id = ?1 RETURNING {COLS}"
        ))?
        .query_row(params![id, now], |r| row(r, false))?)
    }

    fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let (before_ms, before_id) = match &filter.before {
            Some(c) => (Some(c.created_at_ms), Some(c.delivery_id.as_str())),
            None => (None, None),
        };
        all(
            &self.conn,
            &format!(
                "SELECT {COLS} FROM _smithers_deliveries \
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR run_id = ?2) AND (?3 IS NULL OR target = ?3) \
                 AND (?4 IS NULL OR created_at_ms < ?4 OR (created_at_ms = ?4 AND delivery_id < ?5)) \
                 ORDER BY created_at_ms DESC, delivery_id DESC LIMIT ?6"
            ),
            params![
                filter.status,
                filter.run_id,
                filter.target,
                before_ms,
                before_id,
                filter.limit.unwrap_or(100).clamp(1, 10_000)
            ],
            |r| row(r, filter.with_body),
        )
    }

    fn insert_link_use(&self, link: &LinkUse, now: i64) -> Result<bool> {
        let added = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO _smithers_link_uses (link_id, run_id, node_id, iteration, action, approver, used_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                link.link_id,
                link.run_id,
                link.node_id,
                link.iteration,
                link.action,
                link.approver,
                now
            ])?;
        Ok(added == 1)
    }

    fn link_use(&self, link_id: &str) -> Result<Option<(i64, Option<Value>)>> {
        Ok(one(
            &self.conn,
            "SELECT used_at_ms, outcome_json FROM _smithers_link_uses WHERE link_id = ?1",
            [link_id],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
        )?
        .map(|(at, outcome)| (at, json_col(outcome))))
    }

    fn set_link_outcome(&self, link_id: &str, outcome: &Value) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE _smithers_link_uses SET outcome_json = ?2 WHERE link_id = ?1")?
            .execute(params![link_id, serde_json::to_string(outcome)?])?;
        Ok(())
    }

    fn delete_link_use(&self, link_id: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM _smithers_link_uses WHERE link_id = ?1")?
            .execute([link_id])?;
        Ok(())
    }
}
