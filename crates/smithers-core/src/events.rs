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
        let seq: i64 = conn.prepare_cached(
            "INSERT INTO _smithers_events (run_id, seq, timestamp_ms, type, payload_json) \
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM _smithers_events WHERE run_id = ?1), ?2, ?3, ?4) \
             RETURNING seq",
        )?
        .query_row(rusqlite::params![run_id, ts, kind, payload_json], |r| r.get(0))?;
        self.events.push(Event {
            run_id: run_id.into(),
            seq,
            kind: kind.into(),
            timestamp_ms: ts,
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
        "SELECT seq, type, timestamp_ms, payload_json FROM _smithers_events \
         WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(rusqlite::params![run_id, after_seq, limit], |r| {
        let payload: String = r.get(3)?;
        Ok(Event {
            run_id: run_id.into(),
            seq: r.get(0)?,
            kind: r.get(1)?,
            timestamp_ms: r.get(2)?,
            payload: serde_json::from_str(&payload).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
