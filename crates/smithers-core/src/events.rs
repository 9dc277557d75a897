//! Events: written in the transaction that caused them (`_smithers_events`), and handed to
//! in-process subscribers after that transaction commits.

use rusqlite::Connection;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::store::now_ms;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub run_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp_ms: i64,
    /// Position in the database-wide order of events (`feed`); absent on events written
    /// before schema v3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_id: Option<i64>,
    #[serde(flatten)]
    pub payload: Map<String, Value>,
}

/// Collects the events of one transaction; they reach subscribers only if it commits.
#[derive(Default)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

impl EventBatch {
    pub fn emit(
        &mut self,
        conn: &Connection,
        run_id: &str,
        kind: &str,
        payload: Value,
    ) -> Result<()> {
        let payload = match payload {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let ts = now_ms();
        let payload_json = serde_json::to_string(&payload)?;
        // MAX(seq) is an index lookup on the primary key; writers are serialised by SQLite, so
        // this stays correct when several processes write events for one run.
        // The same holds for feed_id across runs: a reader of the feed sees a prefix of it.
        let (seq, feed_id): (i64, i64) = conn.prepare_cached(
            "INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json, feed_id) \
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM _smithers_events WHERE run_id = ?1), ?2, ?3, ?4, \
                     (SELECT COALESCE(MAX(feed_id), 0) + 1 FROM _smithers_events)) \
             RETURNING seq, feed_id",
        )?
        .query_row(rusqlite::params![run_id, ts, kind, payload_json], |r| Ok((r.get(0)?, r.get(1)?)))?;
        self.events.push(Event {
            run_id: run_id.into(),
            seq,
            kind: kind.into(),
            timestamp_ms: ts,
            feed_id: Some(feed_id),
            payload,
        });
        Ok(())
    }
}

/// Events of a run after `after_seq`, oldest first.
pub fn read_events(
    conn: &Connection,
    run_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, seq, type, timestamp_ms, payload_json, feed_id FROM _smithers_events \
         WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(rusqlite::params![run_id, after_seq, limit], event_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Events of all runs after position `after_id` of the feed, in commit order.
pub fn read_feed(conn: &Connection, after_id: i64, limit: i64) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, seq, type, timestamp_ms, payload_json, feed_id FROM _smithers_events \
         WHERE feed_id > ?1 ORDER BY feed_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![after_id, limit], event_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest position of the feed (0 when it is empty).
pub fn feed_head(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(feed_id), 0) FROM _smithers_events")?
        .query_row([], |r| r.get(0))?)
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let payload: String = r.get(4)?;
    Ok(Event {
        run_id: r.get(0)?,
        seq: r.get(1)?,
        kind: r.get(2)?,
        timestamp_ms: r.get(3)?,
        feed_id: r.get(5)?,
        payload: serde_json::from_str(&payload).unwrap_or_default(),
    })
}

/// One debug line per committed event (target `smithers_core::events`): every transition of
/// every node and run, in commit order. Called after the transaction commits, never before.
pub(crate) fn log_committed(events: &[Event]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for e in events {
        let payload = serde_json::to_string(&e.payload).unwrap_or_default();
        tracing::debug!(run_id = e.run_id.as_str(), seq = e.seq, event = e.kind.as_str(), payload = %payload, "committed");
    }
}
