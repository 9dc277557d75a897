//! Events of runs, and the database-wide feed of them.

use postgres::Row;

use super::{PgStore, col};
use crate::error::Result;
use crate::events::{Event, EventKind};
use crate::store::EventRows;

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
        // The run's row is locked, so its MAX(seq) + 1 is taken one transaction at a time.
        // The feed id is given at commit under the schema's lock (`commit`), so feed order
        // is commit order across processes and a reader of the feed sees a prefix of it;
        // until then the row has none (and uncommitted rows are seen by nobody else).
        self.lock_run(run_id)?;
        let seq: i64 = self
            .one(
                "INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json, feed_id) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM _smithers_events WHERE run_id = $1), $2, $3, $4, NULL) \
                 RETURNING seq",
                &[&run_id, &timestamp_ms, &kind.as_str(), &payload_json],
                |r| col(r, 0),
            )?
            .unwrap_or(0);
        self.pending_feed
            .borrow_mut()
            .push((run_id.to_string(), seq));
        // The engine takes the real id from `committed_feed_base` once committed.
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
