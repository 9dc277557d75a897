//! The decision log and the votes of quorum gates (`audit.rs`): `_smithers_audit_log`, its
//! head in `_smithers_meta` (`audit_head`), and `_smithers_votes`. Entries are appended inside
//! the decision's write transaction, which holds the schema's lock: the chain has one order
//! across processes.

use postgres::Row;
use serde_json::Value;

use super::{PgStore, col};
use crate::audit::AuditEntry;
use crate::error::Result;
use crate::machines::NodeKey;
use crate::store::{AuditRows, VoteRow};

const HEAD_KEY: &str = "audit_head";

const COLS: &str = "seq, kind, run_id, node_id, iteration, actor, at_ms, data_json, content_hash, \
     prev_hash, entry_hash";

fn entry(r: &Row) -> Result<AuditEntry> {
    let data: String = col(r, 7)?;
    Ok(AuditEntry {
        seq: col(r, 0)?,
        kind: col(r, 1)?,
        run_id: col(r, 2)?,
        node_id: col(r, 3)?,
        iteration: col(r, 4)?,
        actor: col(r, 5)?,
        at_ms: col(r, 6)?,
        // Text that is not JSON any more was altered: it hashes as a string, never as the
        // value that was sealed.
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        content_hash: col(r, 8)?,
        prev_hash: col(r, 9)?,
        entry_hash: col(r, 10)?,
    })
}

/// `"<seq> <hash>"` as kept in `_smithers_meta`.
fn parse_head(text: &str) -> Option<(i64, String)> {
    let (seq, hash) = text.split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}

impl AuditRows for PgStore {
    fn audit_tail(&self) -> Result<Option<(i64, String)>> {
        self.lock_schema()?;
        if let Some(head) = self.audit_head()? {
            return Ok(Some(head));
        }
        self.one(
            "SELECT seq, entry_hash FROM _smithers_audit_log ORDER BY seq DESC LIMIT 1",
            &[],
            |r| Ok((col(r, 0)?, col(r, 1)?)),
        )
    }

    fn insert_audit(&self, e: &AuditEntry) -> Result<()> {
        self.lock_schema()?;
        self.exec(
            "INSERT INTO _smithers_audit_log (seq, kind, run_id, node_id, iteration, actor, at_ms, data_json, \
             content_hash, prev_hash, entry_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &e.seq,
                &e.kind,
                &e.run_id,
                &e.node_id,
                &e.iteration,
                &e.actor,
                &e.at_ms,
                &serde_json::to_string(&e.data)?,
                &e.content_hash,
                &e.prev_hash,
                &e.entry_hash,
            ],
        )?;
        self.exec(
            "INSERT INTO _smithers_meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&HEAD_KEY, &format!("{} {}", e.seq, e.entry_hash)],
        )?;
        Ok(())
    }

    fn audit_entries(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        self.all(
            &format!("SELECT {COLS} FROM _smithers_audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"),
            &[&after_seq, &limit],
            entry,
        )
    }

    fn audit_head(&self) -> Result<Option<(i64, String)>> {
        Ok(self
            .one(
                "SELECT value FROM _smithers_meta WHERE key = $1",
                &[&HEAD_KEY],
                |r| col::<String>(r, 0),
            )?
            .and_then(|t| parse_head(&t)))
    }

    fn insert_vote(&self, key: &NodeKey, v: &VoteRow) -> Result<bool> {
        self.lock_run(&key.run)?;
        Ok(self.exec(
            "INSERT INTO _smithers_votes (run_id, node_id, iteration, requested_at_ms, voter, \
             verdict, veto, note, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &v.requested_at_ms,
                &v.voter,
                &v.verdict,
                &v.veto,
                &v.note,
                &v.at_ms,
            ],
        )? == 1)
    }

    fn votes(&self, key: &NodeKey, requested_at_ms: i64) -> Result<Vec<VoteRow>> {
        self.lock_run(&key.run)?;
        self.all(
            "SELECT requested_at_ms, voter, verdict, veto, note, at_ms FROM _smithers_votes \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND requested_at_ms = $4 \
             ORDER BY at_ms, voter",
            &[&key.run, &key.node, &key.iteration, &requested_at_ms],
            |r| {
                Ok(VoteRow {
                    requested_at_ms: col(r, 0)?,
                    voter: col(r, 1)?,
                    verdict: col(r, 2)?,
                    veto: col(r, 3)?,
                    note: col(r, 4)?,
                    at_ms: col(r, 5)?,
                })
            },
        )
    }
}
