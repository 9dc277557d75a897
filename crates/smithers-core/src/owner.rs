//! Which process drives a run. An owner is `host:pid:start-time:engine`; on the same host the
//! engine can tell at once whether that process is still alive, so a run left by a `kill -9`
//! is resumed without waiting for a heartbeat to go stale.

use std::sync::atomic::{AtomicU32, Ordering};

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
}
