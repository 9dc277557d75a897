//! Outgoing notifications as rows: webhook deliveries and the single-use decision links they
//! (and mail) carry. Self-contained: two tables of its own, no engine state.
//!
//! A **delivery** (`_smithers_deliveries`) is one message to one target. It is written once
//! (its id is derived from the feed position and the target, so several `smithers serve`
//! processes that see the same event write one row), then claimed by one sender at a time
//! like a run is: a claim is a write transaction that moves due rows to `sending` under the
//! claimer's name with a lease (`claim_expires_at_ms`). The sender settles the row
//! (`delivered`, `pending` again with the next attempt's time, or `failed`), guarded by its
//! claim; a sender that died mid-send leaves a lease that expires, and the row is claimed
//! again: delivered at least once, sent by one process at a time.
//!
//! A **link use** (`_smithers_link_uses`) records that a signed decision link was used. The
//! link itself (its signature, approver, gate, expiry) is checked by whoever holds the
//! secret; the row makes it single-use across processes: the first insert wins, a second is
//! `LINK_USED`.
//!
//! Time is the caller's: every call that compares due times takes `now_ms`.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Engine, begin};
use crate::error::{Error, Result};

/// Schema v7: the two tables, and the feed position up to which gate events were turned into
/// deliveries (`_smithers_meta` key `deliveries_feed_cursor`).
pub(crate) const V7: &str = "
CREATE TABLE IF NOT EXISTS _smithers_deliveries (
  delivery_id TEXT PRIMARY KEY,
  target TEXT NOT NULL,
  url TEXT NOT NULL,
  event_type TEXT NOT NULL,
  feed_id INTEGER,
  run_id TEXT,
  node_id TEXT,
  iteration INTEGER,
  body TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER NOT NULL,
  claimed_by TEXT,
  claim_expires_at_ms INTEGER,
  last_status_code INTEGER,
  last_error TEXT,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  delivered_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS _smithers_deliveries_due
  ON _smithers_deliveries (next_attempt_at_ms) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS _smithers_deliveries_by_created ON _smithers_deliveries (created_at_ms);
CREATE TABLE IF NOT EXISTS _smithers_link_uses (
  link_id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  iteration INTEGER NOT NULL,
  action TEXT NOT NULL,
  approver TEXT NOT NULL,
  used_at_ms INTEGER NOT NULL,
  outcome_json TEXT
) WITHOUT ROWID;
";

const CURSOR_KEY: &str = "deliveries_feed_cursor";
/// The statuses of a delivery row, in the order a delivery meets them.
pub const DELIVERY_STATUSES: [&str; 4] = ["pending", "sending", "delivered", "failed"];

/// A delivery to write (`enqueue_deliveries`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub target: String,
    pub url: String,
    pub event_type: String,
    #[serde(default)]
    pub feed_id: Option<i64>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub iteration: Option<i64>,
    /// The exact bytes that are sent (and signed).
    pub body: String,
}

/// A delivery row, as `claim_deliveries` and `list_deliveries` return it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: String,
    pub target: String,
    pub url: String,
    pub event_type: String,
    pub feed_id: Option<i64>,
    pub run_id: Option<String>,
    pub node_id: Option<String>,
    pub iteration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub claimed_by: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// What became of one attempt (`settle_delivery`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryOutcome {
    /// The receiver answered 2xx.
    pub delivered: bool,
    #[serde(default)]
    pub status_code: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    /// When to try again; none (and not delivered) gives up: `failed`.
    #[serde(default)]
    pub next_attempt_at_ms: Option<i64>,
}

/// `list_deliveries`: newest first, keyset-paged by `(created_at_ms, delivery_id)`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryFilter {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub before: Option<DeliveryCursor>,
    /// Include the body sent.
    #[serde(default)]
    pub with_body: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryCursor {
    pub created_at_ms: i64,
    pub delivery_id: String,
}

/// The first use of a link (`use_link`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkUse {
    pub link_id: String,
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub action: String,
    pub approver: String,
}

const DELIVERY_COLS: &str = "delivery_id, target, url, event_type, feed_id, run_id, node_id, iteration, \
     status, attempts, next_attempt_at_ms, claimed_by, last_status_code, last_error, created_at_ms, \
     updated_at_ms, delivered_at_ms, body";

fn delivery_row(r: &rusqlite::Row<'_>, with_body: bool) -> rusqlite::Result<Delivery> {
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

fn check_delivery(d: &NewDelivery) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 200
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
    };
    if !name_ok(&d.delivery_id) || !name_ok(&d.target) {
        return Err(Error::InvalidDelivery(format!(
            "delivery id {:?} and target {:?} must be 1-200 letters, digits and _ . : -",
            d.delivery_id, d.target
        )));
    }
    if d.body.len() > 1 << 20 {
        return Err(Error::InvalidDelivery(format!(
            "the body of {} is over 1 MiB",
            d.delivery_id
        )));
    }
    Ok(())
}

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
        let tx = begin(&self.conn, self.batching)?;
        let mut added = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO _smithers_deliveries (delivery_id, target, url, event_type, feed_id, \
                 run_id, node_id, iteration, body, status, next_attempt_at_ms, created_at_ms, updated_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?10)",
            )?;
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
                    now_ms
                ])?;
            }
        }
        if let Some(cursor) = cursor {
            tx.execute(
                "INSERT INTO _smithers_meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                 WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER)",
                params![CURSOR_KEY, cursor.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// The feed position up to which events were turned into deliveries, if any process did.
    pub fn delivery_cursor(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM _smithers_meta WHERE key = ?1",
                [CURSOR_KEY],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|v| v.parse().ok()))
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
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        // Looked at first without the write lock: most polls find nothing due.
        let due: bool = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM _smithers_deliveries WHERE status IN ('pending', 'sending') \
                 AND next_attempt_at_ms <= ?1 AND (status = 'pending' OR claim_expires_at_ms <= ?1) LIMIT 1",
            )?
            .query_row([now_ms], |_| Ok(true))
            .optional()?
            .is_some();
        if !due {
            return Ok(Vec::new());
        }
        let targets_json = serde_json::to_string(targets)?;
        let tx = begin(&self.conn, self.batching)?;
        let claimed = tx
            .prepare_cached(&format!(
                "UPDATE _smithers_deliveries SET status = 'sending', claimed_by = ?1, \
                 claim_expires_at_ms = ?2 + ?3, attempts = attempts + 1, updated_at_ms = ?2 \
                 WHERE delivery_id IN ( \
                   SELECT delivery_id FROM _smithers_deliveries \
                   WHERE status IN ('pending', 'sending') AND next_attempt_at_ms <= ?2 \
                     AND (status = 'pending' OR claim_expires_at_ms <= ?2) \
                     AND target IN (SELECT value FROM json_each(?4)) \
                   ORDER BY next_attempt_at_ms, delivery_id LIMIT ?5) \
                 RETURNING {DELIVERY_COLS}"
            ))?
            .query_map(
                params![
                    claimer,
                    now_ms,
                    lease_ms.max(1),
                    targets_json,
                    limit.clamp(1, 1000)
                ],
                |r| delivery_row(r, true),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        if !claimed.is_empty() {
            tracing::debug!(
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
        let tx = begin(&self.conn, self.batching)?;
        let changed = tx.execute(
            "UPDATE _smithers_deliveries SET status = ?3, claimed_by = NULL, claim_expires_at_ms = NULL, \
             next_attempt_at_ms = COALESCE(?4, next_attempt_at_ms), last_status_code = ?5, last_error = ?6, \
             updated_at_ms = ?7, delivered_at_ms = CASE WHEN ?3 = 'delivered' THEN ?7 END \
             WHERE delivery_id = ?1 AND status = 'sending' AND claimed_by = ?2",
            params![
                delivery_id,
                claimer,
                status,
                next,
                outcome.status_code,
                error,
                now_ms
            ],
        )?;
        tx.commit()?;
        tracing::info!(
            delivery_id,
            status,
            status_code = ?outcome.status_code,
            error = error.as_deref().unwrap_or(""),
            next_attempt_at_ms = ?next,
            claim_held = changed == 1,
            "delivery attempt recorded"
        );
        Ok(changed == 1)
    }

    /// Makes a delivery that gave up (`failed`) due again at `now_ms`, with its attempts
    /// counted from zero. `DELIVERY_NOT_FOUND` for an unknown id; a delivery that is not
    /// `failed` is `INVALID_DELIVERY` (nothing changes).
    pub fn retry_delivery(&mut self, delivery_id: &str, now_ms: i64) -> Result<Delivery> {
        let tx = begin(&self.conn, self.batching)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM _smithers_deliveries WHERE delivery_id = ?1",
                [delivery_id],
                |r| r.get(0),
            )
            .optional()?;
        match status.as_deref() {
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
        let row = tx.query_row(
            &format!(
                "UPDATE _smithers_deliveries SET status = 'pending', attempts = 0, next_attempt_at_ms = ?2, \
                 updated_at_ms = ?2 WHERE delivery_id = ?1 RETURNING {DELIVERY_COLS}"
            ),
            params![delivery_id, now_ms],
            |r| delivery_row(r, false),
        )?;
        tx.commit()?;
        Ok(row)
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
        let (before_ms, before_id) = match &filter.before {
            Some(c) => (Some(c.created_at_ms), Some(c.delivery_id.as_str())),
            None => (None, None),
        };
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLS} FROM _smithers_deliveries \
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR run_id = ?2) AND (?3 IS NULL OR target = ?3) \
                 AND (?4 IS NULL OR created_at_ms < ?4 OR (created_at_ms = ?4 AND delivery_id < ?5)) \
                 ORDER BY created_at_ms DESC, delivery_id DESC LIMIT ?6"
            ))?
            .query_map(
                params![
                    filter.status,
                    filter.run_id,
                    filter.target,
                    before_ms,
                    before_id,
                    filter.limit.unwrap_or(100).clamp(1, 10_000)
                ],
                |r| delivery_row(r, filter.with_body),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Records the first use of a link; a link used before is `LINK_USED` (naming when and
    /// what it decided), and nothing is written.
    pub fn use_link(&mut self, link: &LinkUse, now_ms: i64) -> Result<()> {
        let tx = begin(&self.conn, self.batching)?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO _smithers_link_uses (link_id, run_id, node_id, iteration, action, approver, used_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                link.link_id,
                link.run_id,
                link.node_id,
                link.iteration,
                link.action,
                link.approver,
                now_ms
            ],
        )?;
        tracing::info!(
            link_id = link.link_id.as_str(),
            run_id = link.run_id.as_str(),
            node_id = link.node_id.as_str(),
            action = link.action.as_str(),
            approver = link.approver.as_str(),
            first_use = added == 1,
            "decision link used"
        );
        if added == 0 {
            let (used_at_ms, outcome): (i64, Option<String>) = tx.query_row(
                "SELECT used_at_ms, outcome_json FROM _smithers_link_uses WHERE link_id = ?1",
                [&link.link_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            return Err(Error::LinkUsed {
                link_id: link.link_id.clone(),
                used_at: crate::store::iso8601(used_at_ms),
                outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
            });
        }
        tx.commit()?;
        Ok(())
    }

    /// Records what the use of a link did (the decision, or the error that refused it).
    pub fn record_link_outcome(&mut self, link_id: &str, outcome: &Value) -> Result<()> {
        let tx = begin(&self.conn, self.batching)?;
        tx.execute(
            "UPDATE _smithers_link_uses SET outcome_json = ?2 WHERE link_id = ?1",
            params![link_id, serde_json::to_string(outcome)?],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets the use of a link whose decision failed for a passing reason (the database
    /// was busy), so the approver can use it again.
    pub fn release_link(&mut self, link_id: &str) -> Result<()> {
        let tx = begin(&self.conn, self.batching)?;
        tx.execute(
            "DELETE FROM _smithers_link_uses WHERE link_id = ?1",
            [link_id],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, target: &str) -> NewDelivery {
        NewDelivery {
            delivery_id: id.into(),
            target: target.into(),
            url: "http://127.0.0.1:9/hook".into(),
            event_type: "gate.waiting".into(),
            feed_id: Some(1),
            run_id: Some("r1".into()),
            node_id: Some("deploy".into()),
            iteration: Some(0),
            body: "{}".into(),
        }
    }

    fn targets(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_delivery_is_written_once_and_claimed_by_one_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let mut a = Engine::open(&path).unwrap();
        let mut b = Engine::open(&path).unwrap();
        // Two processes that saw the same event write one row; the cursor only moves forward.
        assert_eq!(
            a.enqueue_deliveries(&[delivery("msg_1_ops", "ops")], Some(5), 1_000)
                .unwrap(),
            1
        );
        assert_eq!(
            b.enqueue_deliveries(&[delivery("msg_1_ops", "ops")], Some(3), 1_000)
                .unwrap(),
            0
        );
        assert_eq!(b.delivery_cursor().unwrap(), Some(5));

        let ops = targets(&["ops"]);
        let first = a.claim_deliveries("a", &ops, 1_000, 10_000, 10).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].attempts, 1);
        assert_eq!(first[0].body.as_deref(), Some("{}"));
        // Claimed and not expired: nobody else gets it, nor a claimer for other targets.
        assert!(
            b.claim_deliveries("b", &ops, 5_000, 10_000, 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            b.claim_deliveries("b", &targets(&["other"]), 20_000, 10_000, 10)
                .unwrap()
                .is_empty()
        );
        // The sender died: its claim expires and another takes the row.
        let again = b.claim_deliveries("b", &ops, 11_000, 10_000, 10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        // The first sender's late answer changes nothing; the holder's does.
        let failed = DeliveryOutcome {
            delivered: false,
            status_code: Some(500),
            error: Some("HTTP 500".into()),
            next_attempt_at_ms: Some(13_000),
        };
        assert!(
            !a.settle_delivery("msg_1_ops", "a", &failed, 12_000)
                .unwrap()
        );
        assert!(
            b.settle_delivery("msg_1_ops", "b", &failed, 12_000)
                .unwrap()
        );
        assert!(
            a.claim_deliveries("a", &ops, 12_500, 10_000, 10)
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        let third = a.claim_deliveries("a", &ops, 13_000, 10_000, 10).unwrap();
        assert_eq!(third[0].attempts, 3);
        let ok = DeliveryOutcome {
            delivered: true,
            status_code: Some(204),
            error: None,
            next_attempt_at_ms: None,
        };
        assert!(a.settle_delivery("msg_1_ops", "a", &ok, 13_100).unwrap());
        let listed = b.list_deliveries(&DeliveryFilter::default()).unwrap();
        assert_eq!(listed[0].status, "delivered");
        assert_eq!(listed[0].delivered_at_ms, Some(13_100));
        assert_eq!(listed[0].last_status_code, Some(204));
        assert!(
            a.claim_deliveries("a", &ops, 99_000, 10_000, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn racing_claimers_take_each_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let mut setup = Engine::open(&path).unwrap();
        let rows: Vec<NewDelivery> = (0..200)
            .map(|i| delivery(&format!("msg_{i}_ops"), "ops"))
            .collect();
        setup.enqueue_deliveries(&rows, None, 0).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut engine = Engine::open(&path).unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let got = engine
                            .claim_deliveries(&format!("c{n}"), &targets(&["ops"]), 10, 60_000, 7)
                            .unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|d| d.delivery_id));
                    }
                })
            })
            .collect();
        let mut all: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let claimed = all.len();
        all.sort();
        all.dedup();
        assert_eq!(claimed, 200, "every row claimed");
        assert_eq!(all.len(), 200, "no row claimed twice");
    }

    #[test]
    fn failed_deliveries_are_retried_by_hand_and_bad_filters_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::open(dir.path().join("f.db")).unwrap();
        e.enqueue_deliveries(&[delivery("msg_1_ops", "ops")], None, 0)
            .unwrap();
        let err = e.retry_delivery("msg_1_ops", 1).unwrap_err();
        assert_eq!(err.code(), "INVALID_DELIVERY");
        assert_eq!(
            e.retry_delivery("nope", 1).unwrap_err().code(),
            "DELIVERY_NOT_FOUND"
        );
        e.claim_deliveries("a", &targets(&["ops"]), 0, 1000, 1)
            .unwrap();
        let gave_up = DeliveryOutcome {
            delivered: false,
            status_code: None,
            error: Some("ECONNREFUSED".into()),
            next_attempt_at_ms: None,
        };
        assert!(e.settle_delivery("msg_1_ops", "a", &gave_up, 5).unwrap());
        let failed = e
            .list_deliveries(&DeliveryFilter {
                status: Some("failed".into()),
                ..DeliveryFilter::default()
            })
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].last_error.as_deref(), Some("ECONNREFUSED"));
        let retried = e.retry_delivery("msg_1_ops", 9).unwrap();
        assert_eq!((retried.status.as_str(), retried.attempts), ("pending", 0));
        let bad = e.list_deliveries(&DeliveryFilter {
            status: Some("lost".into()),
            ..DeliveryFilter::default()
        });
        assert_eq!(bad.unwrap_err().code(), "INVALID_DELIVERY");
        let mut bad_id = delivery("msg 1", "ops");
        bad_id.delivery_id = "msg 1".into();
        assert_eq!(
            e.enqueue_deliveries(&[bad_id], None, 0).unwrap_err().code(),
            "INVALID_DELIVERY"
        );
    }

    #[test]
    fn a_link_is_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let mut a = Engine::open(&path).unwrap();
        let mut b = Engine::open(&path).unwrap();
        let link = LinkUse {
            link_id: "lnk1".into(),
            run_id: "r1".into(),
            node_id: "deploy".into(),
            iteration: 0,
            action: "approve".into(),
            approver: "ann".into(),
        };
        a.use_link(&link, 1_000).unwrap();
        a.record_link_outcome("lnk1", &serde_json::json!({"status": "approved"}))
            .unwrap();
        let err = b.use_link(&link, 2_000).unwrap_err();
        assert_eq!(err.code(), "LINK_USED");
        assert_eq!(err.details()["outcome"]["status"], "approved");
        // A use released after a passing failure may be made again.
        b.release_link("lnk1").unwrap();
        b.use_link(&link, 3_000).unwrap();
    }
}
