//! Events of runs, and the database-wide feed of them.

use postgres::Row;

use super::{PgStore, col};
use crate::error::Result;
use crate::events::{Event, EventKind};
use crate::store::EventRows;

/// An event recorded in the open write transaction, inserted at its commit.
pub(super) struct PendingEvent {
    pub run_id: String,
    pub seq: i64,
    pub timestamp_ms: i64,
    pub kind: String,
    pub payload_json: String,
}

fn event(r: &Row) -> Result<Event> {
    Ok(Event {
        run_id: col(r, 0)?,
        seq: col(r, 1)?,
        kind: EventKind::parse(col(r, 2)?)?,
        timestamp_ms: col(r, 3)?,
        feed_id: col(r, 5)?,
        payload: serde_json::from_str(col(r, 4)?).unwrap_or_default(),
    })
}

impl EventRows for PgStore {
    fn insert_event(
        &self,
        run_id: &str,
        kind: EventKind,
        timestamp_ms: i64,
        payload_json: &str,
    ) -> Result<(i64, i64)> {
        if !self.in_tx.get() {
            let row = self.row(
                "INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json, feed_id) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM _smithers_events WHERE run_id = $1), $2, $3, $4, \
                         (SELECT COALESCE(MAX(feed_id), 0) + 1 FROM _smithers_events)) \
                 RETURNING seq, feed_id",
                &[&run_id, &timestamp_ms, &kind.as_str(), &payload_json],
            )?;
            return Ok(row
                .map(|r| Ok::<_, crate::error::Error>((col(&r, 0)?, col(&r, 1)?)))
                .transpose()?
                .unwrap_or((0, 0)));
        }
        // The run's row is locked, so its MAX(seq) + 1 is read one transaction at a time
        // (once per run and transaction; the transaction's own events follow it). The event
        // is inserted at commit, under the schema's lock, with its feed id (`commit`): feed
        // order is commit order across processes and a reader of the feed sees a prefix of
        // it. Nothing reads a run's events inside its write transactions.
        self.lock_run(run_id)?;
        let known = self.next_seq.borrow().get(run_id).copied();
        let seq = match known {
            Some(seq) => seq,
            None => self
                .one(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM _smithers_events WHERE run_id = $1",
                    &[&run_id],
                    |r| col(r, 0),
                )?
                .unwrap_or(1),
        };
        self.next_seq
            .borrow_mut()
            .insert(run_id.to_string(), seq + 1);
        self.pending_feed.borrow_mut().push(PendingEvent {
            run_id: run_id.to_string(),
            seq,
            timestamp_ms,
            kind: kind.as_str().to_string(),
            payload_json: payload_json.to_string(),
        });
        // The engine takes the real feed id from `committed_feed_base` once committed.
        Ok((seq, 0))
    }

    fn events(&self, run_id: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>> {
        self.all(
            "SELECT run_id, seq, type, timestamp_ms, payload_json, feed_id FROM _smithers_events \
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&run_id, &after_seq, &limit],
            event,
        )
    }

    fn feed(&self, after_id: i64, limit: i64) -> Result<Vec<Event>> {
        self.all(
            "SELECT run_id, seq, type, timestamp_ms, payload_json, feed_id FROM _smithers_events \
             WHERE feed_id > $1 ORDER BY feed_id LIMIT $2",
            &[&after_id, &limit],
            event,
        )
    }

    fn feed_head(&self) -> Result<i64> {
        Ok(self
            .one(
                "SELECT COALESCE(MAX(feed_id), 0) FROM _smithers_events",
                &[],
                |r| col(r, 0),
            )?
            .unwrap_or(0))
    }
}
