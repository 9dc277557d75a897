//! Which process drives a run. Ownership is a **lease**: the owner id (`host:pid:start-time:engine`)
//! and an expiry, both in the run's row, renewed by the owner while it lives (a thread of its
//! own, [`LeaseKeeper`], so a busy JS thread does not let it lapse). A crashed owner stops
//! renewing and its runs can be taken over once the lease expires, whatever host or OS it ran
//! on. Nothing here depends on the store being SQLite or on the host: a lease is two values
//! compared with the engine's clock, renewed by `UPDATE … WHERE owner = me`, taken over by a
//! conditional update, so the same contract holds for several engines on several machines
//! sharing one store.
//!
//! On the same host the engine can also tell at once whether the owner's process is alive
//! (`/proc`), so a run left by a `kill -9` is resumed without waiting for the lease to expire.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::store::LeaseRenewer;

/// How long a lease lasts unless the engine is told otherwise; renewed every third of it.
pub const DEFAULT_LEASE_MS: i64 = 30_000;

static ENGINE_COUNTER: AtomicU32 = AtomicU32::new(0);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains(':'))
        .unwrap_or_else(|| "localhost".into())
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat); it
/// tells a live process from a later one that reused the pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn new_owner_id() -> String {
    let pid = std::process::id();
    let n = ENGINE_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}:{}:{}:{}",
        hostname(),
        pid,
        start_time(pid).unwrap_or(0),
        n
    )
}

#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Another host: we cannot tell.
    Unknown,
}

pub fn liveness(owner: &str) -> Liveness {
    let parts: Vec<&str> = owner.split(':').collect();
    let [host, pid, start, _engine] = parts.as_slice() else {
        return Liveness::Unknown;
    };
    if *host != hostname() {
        return Liveness::Unknown;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Liveness::Unknown;
    };
    match start_time(pid) {
        Some(t) if t == start => Liveness::Alive,
        Some(_) => Liveness::Dead,
        None if std::path::Path::new("/proc/self/stat").exists() => Liveness::Dead,
        None => Liveness::Unknown,
    }
}

/// Whether `owner` still holds its run at `now_ms`: while its lease has not expired. On this
/// host a dead process lets go at once (the fast path: no waiting for the lease); a live one
/// still needs a current lease, since an engine can end while its process lives on (closed,
/// or the worker thread it ran in stopped). A row written before leases existed (no expiry)
/// is held unless its process is known to be dead: only `force` takes it.
pub fn holds(owner: &str, lease_expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    match liveness(owner) {
        Liveness::Dead => false,
        Liveness::Alive | Liveness::Unknown => lease_expires_at_ms.is_none_or(|t| t > now_ms),
    }
}

/// Renews the leases of the runs an engine owns, from a thread of its own with a connection
/// of its own (the store's [`LeaseRenewer`]). Dropping it stops the thread at its next wake-up.
pub(crate) struct LeaseKeeper {
    _stop: mpsc::Sender<()>,
}

impl LeaseKeeper {
    pub(crate) fn start(
        mut renewer: Box<dyn LeaseRenewer>,
        owner: String,
        lease_ms: i64,
        clock: crate::time::Clock,
    ) -> std::io::Result<LeaseKeeper> {
        let (stop, stopped) = mpsc::channel::<()>();
        let every = Duration::from_millis((lease_ms / 3).max(1) as u64);
        std::thread::Builder::new()
            .name("smithers-lease".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failed renewal (the database is busy, gone) is tried again next time;
                    // the lease has two more renewals' worth of time left.
                    match renewer.renew(&owner, clock() + lease_ms) {
                        Ok(0) => {}
                        Ok(runs) => {
                            tracing::debug!(
                                owner = owner.as_str(),
                                runs,
                                lease_ms,
                                "leases renewed"
                            )
                        }
                        Err(e) => tracing::warn!(
                            owner = owner.as_str(),
                            error = e.to_string().as_str(),
                            "lease renewal failed: trying again at the next renewal"
                        ),
                    }
                }
            })?;
        Ok(LeaseKeeper { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        assert_eq!(liveness(&new_owner_id()), Liveness::Alive);
        let dead = format!("{}:{}:1:0", hostname(), u32::MAX - 7);
        assert_eq!(liveness(&dead), Liveness::Dead);
        assert_eq!(liveness("elsewhere:1:1:0"), Liveness::Unknown);
    }

    #[test]
    fn an_owner_elsewhere_holds_its_run_until_its_lease_expires() {
        assert!(holds("elsewhere:1:1:0", Some(2_000), 1_000));
        assert!(!holds("elsewhere:1:1:0", Some(1_000), 1_000));
        assert!(holds("elsewhere:1:1:0", None, 1_000));
        // On this host a dead process lets go whatever the lease says; a live one holds the
        // run only while its engine renews the lease.
        let dead = format!("{}:{}:1:0", hostname(), u32::MAX - 7);
        assert!(!holds(&dead, Some(i64::MAX), 1_000));
        assert!(holds(&new_owner_id(), Some(2_000), 1_000));
        assert!(!holds(&new_owner_id(), Some(0), 1_000));
    }
}
