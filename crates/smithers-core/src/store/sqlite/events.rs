//! Events of runs, and the database-wide feed of them.

use rusqlite::params;

use super::{SqliteStore, all};
use crate::error::Result;
use crate::events::{Event, EventKind};
use crate::store::EventRows;

type Row = (String, i64, String, i64, String, Option<i64>);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    r.try_into()
}

fn typed(rows: Vec<Row>) -> Result<Vec<Event>> {
    rows.into_iter()
        .map(|(run_id, seq, kind, timestamp_ms, payload, feed_id)| {
            Ok(Event {
                run_id,
                seq,
                kind: EventKind::parse(&kind)?,
                timestamp_ms,
                feed_id,
                payload: serde_json::from_str(&payload).unwrap_or_default(),
            })
        })
        .collect()
}

impl EventRows for SqliteStore {
    fn insert_event(
        &self,
        run_id: &str,
        kind: EventKind,
        timestamp_ms: i64,
        payload_json: &str,
    ) -> Result<(i64, i64)> {
        // MAX(seq) is an index lookup on the primary key; writers are serialised by SQLite,
        // so this stays correct when several processes write events for one run. The same
        // holds for feed_id across runs: a reader of the feed sees a prefix of it.
        Ok(self.conn.prepare_cached(
            "INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json, feed_id) \
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM _smithers_events WHERE run_id = ?1), ?2, ?3, ?4, \
                     (SELECT COALESCE(MAX(feed_id), 0) + 1 FROM _smithers_events)) \
             RETURNING seq, feed_id",
        )?
        .query_row(params![run_id, timestamp_ms, kind.as_str(), payload_json], |r| {
            r.try_into()
        })?)
    }

    fn events(&self, run_id: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>> {
        typed(all(
            &self.conn,
            "SELECT run_id, seq, type, timestamp_ms, payload_json, feed_id FROM _smithers_events \
             WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            params![run_id, after_seq, limit],
            row,
        )?)
    }

    fn feed(&self, after_id: i64, limit: i64) -> Result<Vec<Event>> {
        typed(all(
            &self.conn,
            "SELECT run_id, seq, type, timestamp_ms, payload_json, feed_id FROM _smithers_events \
             WHERE feed_id > ?1 ORDER BY feed_id LIMIT ?2",
            params![after_id, limit],
            row,
        )?)
    }

    fn feed_head(&self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(feed_id), 0) FROM _smithers_events")?
            .query_row([], |r| r.get(0))?)
    }
}
