//! Approvals that cannot be faked (issue 15, items 5 and 6): the **view digest** a decision is
//! bound to, and the **decision log**, a hash chain nobody can quietly rewrite.
//!
//! Both hash **canonical JSON** ([`canonical_json`]): object keys sorted by their UTF-8 bytes
//! (code point order), at every depth; no whitespace; strings, numbers, `true`, `false`,
//! `null` written as serde_json writes them (the shortest escapes, `\u00XX` for control
//! characters; integers as integers, other numbers in their shortest round-trip form). A hash
//! is `sha256:` and 64 lower-case hex digits of SHA-256 over the UTF-8 bytes of that text.
//! ARCHITECTURE.md ("Decisions bound to what was seen", "The decision log") is the contract.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The prefix of every hash this module writes.
pub const HASH_PREFIX: &str = "sha256:";

/// `prev_hash` of the first entry of the log.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical JSON of `value` (see the module's documentation).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `sha256:<hex>` of the canonical JSON of `value`.
pub fn hash_json(value: &Value) -> String {
    sha256(canonical_json(value).as_bytes())
}

/// Whether `text` is a hash as this module writes them.
pub fn is_hash(text: &str) -> bool {
    text.strip_prefix(HASH_PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The view a pending gate is decided on, as hashed for its digest: which request (run, node,
/// iteration, kind, review round, when it was asked) and everything it shows, the stored
/// request (`request_json`: title, summary, metadata, options, who may decide, inputs,
/// quorum; for a review also the proposed output, its attempt, its stdout log's path and
/// SHA-256).
pub fn view(
    run_id: &str,
    node_id: &str,
    iteration: i64,
    kind: &str,
    round: i64,
    requested_at_ms: i64,
    request: &Value,
) -> Value {
    json!({
        "v": 1,
        "runId": run_id,
        "nodeId": node_id,
        "iteration": iteration,
        "kind": kind,
        "round": round,
        "requestedAtMs": requested_at_ms,
        "request": request,
    })
}

/// The digest of a pending gate's view ([`view`]).
pub fn view_digest(
    run_id: &str,
    node_id: &str,
    iteration: i64,
    kind: &str,
    round: i64,
    requested_at_ms: i64,
    request_json: &str,
) -> String {
    let request: Value = serde_json::from_str(request_json).unwrap_or(Value::Null);
    hash_json(&view(
        run_id,
        node_id,
        iteration,
        kind,
        round,
        requested_at_ms,
        &request,
    ))
}

/// A digest a decider sends must look like one (`INVALID_DECISION` otherwise).
pub fn check_digest(digest: &str) -> Result<()> {
    if is_hash(digest) {
        Ok(())
    } else {
        Err(Error::InvalidDecision(format!(
            "expectDigest must be sha256: and 64 lower-case hex digits (as inspect prints it), not {digest:?}"
        )))
    }
}

/// SHA-256 of a file's bytes (a reviewed step's stdout), `None` when it cannot be read.
pub fn file_sha256(path: &str) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(sha256_of(hasher))
}

fn sha256_of(hasher: Sha256) -> String {
    let mut out = String::from(HASH_PREFIX);
    for b in hasher.finalize() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What kind of thing an entry of the decision log records. Stored as text; `verify` checks
/// hashes, not kinds, so kinds added later (a timer's `timeout`, an `escalation`) chain in the
/// same log and verify with older engines' code.
pub mod kinds {
    /// A decision on a gate or a review (approved, denied, rejected, pushed back), by a person
    /// or `smithers:auto`.
    pub const DECISION: &str = "decision";
    /// One person's vote on a quorum gate.
    pub const VOTE: &str = "vote";
    /// A decision recorded before the log existed (the v9 migration starts the chain with
    /// them, oldest first).
    pub const MIGRATED_DECISION: &str = "migrated-decision";
    /// A deadline that decides a gate is a `decision` entry whose actor is `system:timeout`
    /// (it is recorded as a person's decision is); this kind stays reserved.
    pub const TIMEOUT: &str = "timeout";
    /// An escalation step fired: who may decide was widened (actor `system:escalation`).
    pub const ESCALATION: &str = "escalation";
}

/// An entry to append: the applier seals it onto the chain.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub kind: &'static str,
    pub run_id: String,
    pub node_id: Option<String>,
    pub iteration: Option<i64>,
    /// Who did it (`decidedBy`, a voter, `smithers:auto`, `system:timeout`).
    pub actor: Option<String>,
    pub at_ms: i64,
    /// What was done: status, note, inputs, the view digest it was made against, …
    pub data: Value,
}

/// One entry of the decision log (`_smithers_audit_log`), as stored and exported.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: i64,
    pub kind: String,
    pub run_id: String,
    pub node_id: Option<String>,
    pub iteration: Option<i64>,
    pub actor: Option<String>,
    pub at_ms: i64,
    pub data: Value,
    /// SHA-256 of the canonical JSON of the entry's content ([`content`]).
    pub content_hash: String,
    /// `entry_hash` of the entry before (`GENESIS` for the first).
    pub prev_hash: String,
    /// SHA-256 of the canonical JSON of `{seq, prevHash, contentHash}`.
    pub entry_hash: String,
}

/// What an entry's `content_hash` covers.
pub fn content(
    kind: &str,
    run_id: &str,
    node_id: Option<&str>,
    iteration: Option<i64>,
    actor: Option<&str>,
    at_ms: i64,
    data: &Value,
) -> Value {
    json!({ "kind": kind, "runId": run_id, "nodeId": node_id, "iteration": iteration,
            "actor": actor, "atMs": at_ms, "data": data })
}

fn link_hash(seq: i64, prev_hash: &str, content_hash: &str) -> String {
    hash_json(&json!({ "seq": seq, "prevHash": prev_hash, "contentHash": content_hash }))
}

/// The entry `new` becomes after `tail` (the last entry's `seq` and `entry_hash`).
pub fn seal(tail: Option<(i64, String)>, new: NewAuditEntry) -> AuditEntry {
    let (seq, prev_hash) = match tail {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let content_hash = hash_json(&content(
        new.kind,
        &new.run_id,
        new.node_id.as_deref(),
        new.iteration,
        new.actor.as_deref(),
        new.at_ms,
        &new.data,
    ));
    let entry_hash = link_hash(seq, &prev_hash, &content_hash);
    AuditEntry {
        seq,
        kind: new.kind.to_string(),
        run_id: new.run_id,
        node_id: new.node_id,
        iteration: new.iteration,
        actor: new.actor,
        at_ms: new.at_ms,
        data: new.data,
        content_hash,
        prev_hash,
        entry_hash,
    }
}

/// The first entry that does not hold, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditBreak {
    /// The entry that was altered, or the first one missing.
    pub seq: i64,
    /// `altered` (its content or hashes were changed), `removed` (entries missing before the
    /// next one, or at the end: the head recorded with the log names a later one).
    pub problem: String,
    pub message: String,
}

/// What `smithers audit verify` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// The last entry's `seq` and `entry_hash` (keep it elsewhere: it pins the whole log).
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    pub broken: Option<AuditBreak>,
}

/// Checks entries page by page (`seq` order), against the head recorded with the log.
pub(crate) struct Verifier {
    prev: Option<(i64, String)>,
    count: i64,
    broken: Option<AuditBreak>,
}

impl Verifier {
    pub(crate) fn new() -> Self {
        Verifier {
            prev: None,
            count: 0,
            broken: None,
        }
    }

    /// Whether it found the chain broken already (no need to read on).
    pub(crate) fn done(&self) -> bool {
        self.broken.is_some()
    }

    pub(crate) fn check(&mut self, e: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        self.count += 1;
        let (expected_seq, expected_prev) = match &self.prev {
            Some((seq, hash)) => (seq + 1, hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let recomputed = hash_json(&content(
            &e.kind,
            &e.run_id,
            e.node_id.as_deref(),
            e.iteration,
            e.actor.as_deref(),
            e.at_ms,
            &e.data,
        ));
        if e.seq != expected_seq || e.prev_hash != expected_prev {
            // Something is missing before this entry: the first missing one is named. (An
            // entry that only had its prev_hash changed is not removed but altered; its own
            // link hash tells.)
            let altered = e.seq == expected_seq
                || link_hash(e.seq, &e.prev_hash, &e.content_hash) != e.entry_hash;
            self.broken = Some(if altered {
                AuditBreak {
                    seq: e.seq,
                    problem: "altered".into(),
                    message: format!("entry {} does not link to the entry before it", e.seq),
                }
            } else {
                AuditBreak {
                    seq: expected_seq,
                    problem: "removed".into(),
                    message: format!(
                        "entry {expected_seq} is missing (the next entry found is {})",
                        e.seq
                    ),
                }
            });
            return;
        }
        if recomputed != e.content_hash
            || link_hash(e.seq, &e.prev_hash, &e.content_hash) != e.entry_hash
        {
            self.broken = Some(AuditBreak {
                seq: e.seq,
                problem: "altered".into(),
                message: format!(
                    "entry {} was altered: its content does not hash to what the chain recorded",
                    e.seq
                ),
            });
            return;
        }
        self.prev = Some((e.seq, e.entry_hash.clone()));
    }

    /// The report, given the head recorded with the log (`_smithers_meta` `audit_head`).
    pub(crate) fn finish(mut self, recorded_head: Option<(i64, String)>) -> AuditReport {
        if self.broken.is_none()
            && let Some((seq, hash)) = recorded_head
        {
            match &self.prev {
                Some((last, last_hash)) if *last == seq && *last_hash == hash => {}
                Some((last, _)) if *last < seq => {
                    self.broken = Some(AuditBreak {
                        seq: last + 1,
                        problem: "removed".into(),
                        message: format!(
                            "entries {}..{seq} are missing from the end of the log",
                            last + 1
                        ),
                    });
                }
                None if seq > 0 => {
                    self.broken = Some(AuditBreak {
                        seq: 1,
                        problem: "removed".into(),
                        message: format!("the log is empty but its head names entry {seq}"),
                    });
                }
                None => {}
                Some((last, _)) => {
                    self.broken = Some(AuditBreak {
                        seq: *last,
                        problem: "altered".into(),
                        message: format!(
                            "entry {last} is not the head recorded with the log (entry {seq})"
                        ),
                    });
                }
            }
        }
        AuditReport {
            ok: self.broken.is_none(),
            entries: self.count,
            head_seq: self.prev.as_ref().map(|(s, _)| *s),
            head_hash: self.prev.map(|(_, h)| h),
            broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"d": [true, null, "x\u{1}"], "c": 1.5}, "é": "é"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":1.5,"d":[true,null,"x\u0001"]},"b":1,"é":"é"}"#
        );
        assert!(is_hash(&hash_json(&v)));
        assert_eq!(
            sha256(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn entry(kind: &'static str, n: i64) -> NewAuditEntry {
        NewAuditEntry {
            kind,
            run_id: "r".into(),
            node_id: Some("gate".into()),
            iteration: Some(0),
            actor: Some(format!("user{n}")),
            at_ms: n,
            data: json!({"status": "approved"}),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 1..=n {
            let tail = out.last().map(|e| (e.seq, e.entry_hash.clone()));
            out.push(seal(tail, entry(kinds::DECISION, i)));
        }
        out
    }

    fn verify(entries: &[AuditEntry], head: Option<(i64, String)>) -> AuditReport {
        let mut v = Verifier::new();
        for e in entries {
            v.check(e);
        }
        v.finish(head)
    }

    #[test]
    fn a_chain_verifies_and_names_the_first_broken_entry() {
        let log = chain(5);
        let head = Some((5, log[4].entry_hash.clone()));
        assert!(verify(&log, head.clone()).ok);

        let mut altered = log.clone();
        altered[2].actor = Some("mallory".into());
        let r = verify(&altered, head.clone());
        assert_eq!(
            r.broken.map(|b| (b.seq, b.problem)),
            Some((3, "altered".into()))
        );

        let mut removed = log.clone();
        removed.remove(1);
        let r = verify(&removed, head.clone());
        assert_eq!(
            r.broken.map(|b| (b.seq, b.problem)),
            Some((2, "removed".into()))
        );

        let r = verify(&log[..4], head.clone());
        assert_eq!(
            r.broken.map(|b| (b.seq, b.problem)),
            Some((5, "removed".into()))
        );

        // Re-sealing an altered entry still breaks the link of the next one.
        let mut resealed = log.clone();
        let mut forged = entry(kinds::DECISION, 3);
        forged.actor = Some("mallory".into());
        resealed[2] = seal(Some((2, log[1].entry_hash.clone())), forged);
        let r = verify(&resealed, head);
        assert_eq!(
            r.broken.map(|b| (b.seq, b.problem)),
            Some((4, "altered".into()))
        );
    }
}
