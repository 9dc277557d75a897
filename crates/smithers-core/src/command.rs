//! Command tasks: a shell command or script run as a child process, with its stdout and
//! stderr streamed to per-attempt log files and only their tails kept in memory.
//!
//! [`run`] blocks until the process ends (or its timeout kills it); the Node binding calls it
//! on a thread of its own so the JS thread never waits. The engine builds the
//! [`CommandSpec`] when it starts the task and reads the [`CommandOutcome`] when the result
//! is reported.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How much of stdout / stderr a task's output row and error keep; the logs keep it all.
pub const TAIL_BYTES: usize = 64 * 1024;
/// After SIGTERM on timeout, how long the process group gets before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// After the command exits, how long to wait for background children that still hold its
/// stdout/stderr open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Added to (or replacing in) the environment the engine process has.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Set before `env` once the driver has expanded their `${VAR}` references (it hands the
    /// runner a spec without them); the runner sets any left as they are written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_templates: Vec<(String, String)>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Stops the command when it writes nothing (stdout or stderr) for this long.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    pub stdout_path: String,
    pub stderr_path: String,
    /// Written to the process's stdin, which is then closed (a CLI agent's prompt); without
    /// it stdin is closed from the start.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Keep stdin open after `stdin` is written, until the process ends: more can be written
    /// through [`Canceller::write_stdin`] (a CLI spoken to over a JSON-lines protocol).
    #[serde(default)]
    pub keep_stdin_open: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CommandOutcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// The last [`TAIL_BYTES`] of stdout, as UTF-8 (lossy).
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
    /// The process could not be started (no such shell or directory, say).
    #[serde(default)]
    pub spawn_error: Option<String>,
    /// Stopped by [`Canceller::cancel`] (the caller gave up on it: an aborted agent call).
    #[serde(default)]
    pub cancelled: bool,
}

impl CommandOutcome {
    pub fn succeeded(&self) -> bool {
        self.spawn_error.is_none()
            && !self.timed_out
            && !self.cancelled
            && self.exit_code == Some(0)
    }
}

#[derive(Default)]
struct WatchState {
    finished: bool,
    cancelled: bool,
    /// What goes to the process's stdin while it is kept open (`keep_stdin_open`).
    stdin: Option<mpsc::Sender<Vec<u8>>>,
}

/// Stops a running command from another thread: its process group gets SIGTERM, then
/// SIGKILL after a grace period, as on a timeout. Cancelling before the command starts
/// stops it as soon as it does. With `keep_stdin_open`, it also writes to the command's
/// stdin.
#[derive(Clone, Default)]
pub struct Canceller(Arc<(Mutex<WatchState>, Condvar)>);

impl Canceller {
    pub fn cancel(&self) {
        let (lock, cvar) = &*self.0;
        if let Ok(mut state) = lock.lock() {
            state.cancelled = true;
        }
        cvar.notify_all();
    }

    /// Queues `bytes` for the command's stdin (written in order by a thread of its own, so
    /// the caller never blocks). False when its stdin is not open (not kept open, or the
    /// command has ended).
    pub fn write_stdin(&self, bytes: Vec<u8>) -> bool {
        let (lock, _) = &*self.0;
        lock.lock()
            .ok()
            .and_then(|state| state.stdin.as_ref().map(|tx| tx.send(bytes).is_ok()))
            .unwrap_or(false)
    }
}

/// Keeps the last `cap` bytes that went through it.
struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
    dropped: bool,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
        if self.buf.len() > self.cap {
            let extra = self.buf.len() - self.cap;
            self.buf.drain(..extra);
            self.dropped = true;
        }
    }
    fn text(&self) -> String {
        let bytes: Vec<u8> = self.buf.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Copies a pipe to its log and keeps its tail; `activity` gets the time of the last read
/// (ms since `started`), for the idle timeout.
fn pump(mut from: impl Read, mut log: File, activity: &AtomicU64, started: Instant) -> Tail {
    let mut tail = Tail {
        buf: VecDeque::new(),
        cap: TAIL_BYTES,
        dropped: false,
    };
    let mut chunk = [0u8; 8192];
    loop {
        match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                activity.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                // A full disk must not stop the command; the tail still has the end.
                let _ = log.write_all(&chunk[..n]);
                tail.push(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = log.flush();
    tail
}

/// Signals the whole process group the command leads (the shell and what it started).
fn signal_group(pid: u32, signal: &str) {
    // `kill` from a shell, so the engine needs no unsafe code for kill(2).
    let _ = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -s {signal} -- -{pid} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn open_log(path: &str) -> std::io::Result<File> {
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    File::create(path)
}

/// Runs the command to its end. Never panics; every failure is in the outcome.
pub fn run(spec: &CommandSpec) -> CommandOutcome {
    run_with(spec, None)
}

/// [`run`], stoppable through `canceller`.
pub fn run_with(spec: &CommandSpec, canceller: Option<&Canceller>) -> CommandOutcome {
    tracing::debug!(
        program = spec.program.as_str(),
        stdout_log = spec.stdout_path.as_str(),
        timeout_ms = spec.timeout_ms.unwrap_or(0),
        idle_timeout_ms = spec.idle_timeout_ms.unwrap_or(0),
        "command started"
    );
    let outcome = run_process(spec, canceller);
    tracing::debug!(
        stdout_log = spec.stdout_path.as_str(),
        exit_code = outcome.exit_code.unwrap_or(-1),
        signal = outcome.signal.unwrap_or(0),
        timed_out = outcome.timed_out,
        cancelled = outcome.cancelled,
        duration_ms = outcome.duration_ms,
        spawn_error = outcome.spawn_error.as_deref().unwrap_or(""),
        "command ended"
    );
    outcome
}

fn run_process(spec: &CommandSpec, canceller: Option<&Canceller>) -> CommandOutcome {
    let started = Instant::now();
    let failed = |message: String| CommandOutcome {
        spawn_error: Some(message),
        duration_ms: started.elapsed().as_millis() as u64,
        ..CommandOutcome::default()
    };
    let (out_log, err_log) = match (open_log(&spec.stdout_path), open_log(&spec.stderr_path)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return failed(format!("cannot open the log files: {e}")),
    };
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(
            spec.env_templates
                .iter()
                .chain(&spec.env)
                .map(|(k, v)| (k, v)),
        )
        .stdin(if spec.stdin.is_some() || spec.keep_stdin_open {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout can stop everything the command started.
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let cwd = spec.cwd.as_deref().unwrap_or(".");
            return failed(format!("cannot start {} in {cwd}: {e}", spec.program));
        }
    };
    let pid = child.id();
    let watch = canceller.cloned().unwrap_or_default();
    if let Some(mut pipe) = child.stdin.take() {
        // A thread of its own: a process that does not read its stdin must not block us. The
        // pipe closes when every sender is gone: at once, or when the process ends.
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        if let Some(text) = &spec.stdin {
            let _ = tx.send(text.as_bytes().to_vec());
        }
        if spec.keep_stdin_open
            && let Ok(mut state) = watch.0.0.lock()
        {
            state.stdin = Some(tx);
        }
        std::thread::spawn(move || {
            for chunk in rx {
                if pipe.write_all(&chunk).and_then(|()| pipe.flush()).is_err() {
                    break;
                }
            }
        });
    }
    let (done_tx, done_rx) = mpsc::channel::<(bool, Tail)>();
    let activity = Arc::new(AtomicU64::new(0));
    if let Some(stdout) = child.stdout.take() {
        let tx = done_tx.clone();
        let activity = activity.clone();
        std::thread::spawn(move || {
            let _ = tx.send((true, pump(stdout, out_log, &activity, started)));
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let tx = done_tx.clone();
        let activity = activity.clone();
        std::thread::spawn(move || {
            let _ = tx.send((false, pump(stderr, err_log, &activity, started)));
        });
    }
    drop(done_tx);

    // The watchdog sleeps until the deadline, a cancel, or the end of the command, whichever
    // is first; on the first two it stops the process group.
    let timed_out = Arc::new(Mutex::new(false));
    let idle = spec.idle_timeout_ms.map(Duration::from_millis);
    let watchdog =
        (spec.timeout_ms.is_some() || idle.is_some() || canceller.is_some()).then(|| {
            let watch = watch.clone();
            let timed_out = timed_out.clone();
            let activity = activity.clone();
            let total = spec
                .timeout_ms
                .map(|ms| Instant::now() + Duration::from_millis(ms));
            std::thread::spawn(move || {
                let (lock, cvar) = &*watch.0;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if state.finished {
                        return;
                    }
                    let quiet_until = idle.map(|d| {
                        started + Duration::from_millis(activity.load(Ordering::Relaxed)) + d
                    });
                    let deadline = match (total, quiet_until) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let expired = deadline.is_some_and(|d| Instant::now() >= d);
                    if state.cancelled || expired {
                        break;
                    }
                    state = match deadline {
                        Some(d) => match cvar
                            .wait_timeout(state, d.saturating_duration_since(Instant::now()))
                        {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        },
                        None => match cvar.wait(state) {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        },
                    };
                }
                if !state.cancelled
                    && let Ok(mut t) = timed_out.lock()
                {
                    *t = true;
                }
                drop(state);
                signal_group(pid, "TERM");
                let grace_end = Instant::now() + KILL_GRACE;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !state.finished && Instant::now() < grace_end {
                    let left = grace_end.saturating_duration_since(Instant::now());
                    state = match cvar.wait_timeout(state, left) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                }
                if !state.finished {
                    signal_group(pid, "KILL");
                }
            })
        });

    let status = child.wait();
    let cancelled = {
        let (lock, cvar) = &*watch.0;
        let cancelled = match lock.lock() {
            Ok(mut state) => {
                state.finished = true;
                state.stdin = None;
                state.cancelled
            }
            Err(_) => false,
        };
        cvar.notify_all();
        cancelled
    };
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    let timed_out = timed_out.lock().map(|t| *t).unwrap_or(false);

    let mut stdout = None;
    let mut stderr = None;
    let drain_until = Instant::now() + DRAIN_GRACE;
    while stdout.is_none() || stderr.is_none() {
        let left = drain_until.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok((true, tail)) => stdout = Some(tail),
            Ok((false, tail)) => stderr = Some(tail),
            // Background children still hold the pipes: report what we have.
            Err(_) => break,
        }
    }
    let (exit_code, signal) = match &status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    let text = |t: &Option<Tail>| t.as_ref().map(Tail::text).unwrap_or_default();
    let cut = |t: &Option<Tail>| t.as_ref().is_some_and(|t| t.dropped);
    CommandOutcome {
        exit_code,
        signal,
        timed_out,
        stdout: text(&stdout),
        stderr: text(&stderr),
        stdout_truncated: cut(&stdout),
        stderr_truncated: cut(&stderr),
        duration_ms: started.elapsed().as_millis() as u64,
        spawn_error: status
            .err()
            .map(|e| format!("waiting for the command failed: {e}")),
        cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str, timeout_ms: Option<u64>) -> CommandSpec {
        CommandSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: Some(dir.to_string_lossy().into_owned()),
            env: vec![("GREETING".into(), "hi".into())],
            env_templates: Vec::new(),
            timeout_ms,
            stdout_path: dir.join("logs/out.log").to_string_lossy().into_owned(),
            stderr_path: dir.join("logs/err.log").to_string_lossy().into_owned(),
            stdin: None,
            keep_stdin_open: false,
            idle_timeout_ms: None,
        }
    }

    #[test]
    fn captures_output_exit_code_and_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(&spec(
            dir.path(),
            "echo $GREETING; pwd; echo oops >&2; exit 3",
            None,
        ));
        assert_eq!(out.exit_code, Some(3));
        assert!(!out.succeeded());
        assert!(out.stdout.starts_with("hi\n"), "{out:?}");
        assert!(out.stdout.contains(&*dir.path().to_string_lossy()));
        assert_eq!(out.stderr, "oops\n");
        let log = std::fs::read_to_string(dir.path().join("logs/out.log")).expect("log");
        assert_eq!(log, out.stdout);
    }

    #[test]
    fn keeps_only_the_tail_in_memory_but_all_in_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(&spec(dir.path(), "seq 1 100000", None));
        assert!(out.succeeded());
        assert!(out.stdout_truncated);
        assert!(out.stdout.len() <= TAIL_BYTES);
        assert!(out.stdout.ends_with("100000\n"));
        let log = std::fs::metadata(dir.path().join("logs/out.log")).expect("log");
        assert!(log.len() > TAIL_BYTES as u64);
    }

    #[test]
    fn a_timeout_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let out = run(&spec(
            dir.path(),
            "sleep 30 & sleep 30; echo never",
            Some(200),
        ));
        assert!(out.timed_out);
        assert!(!out.succeeded());
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!out.stdout.contains("never"));
    }

    #[test]
    fn a_quiet_command_hits_the_idle_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(dir.path(), "echo started; sleep 30", None);
        s.idle_timeout_ms = Some(300);
        let started = Instant::now();
        let out = run(&s);
        assert!(out.timed_out, "{out:?}");
        assert_eq!(out.stdout, "started\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn stdin_is_written_and_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(dir.path(), "tr a-z A-Z", None);
        s.stdin = Some("hello agent\n".into());
        let out = run(&s);
        assert!(out.succeeded(), "{out:?}");
        assert_eq!(out.stdout, "HELLO AGENT\n");
    }

    #[test]
    fn stdin_kept_open_takes_more_writes_until_the_command_is_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(
            dir.path(),
            "while read line; do echo \"got $line\"; done; echo closed",
            None,
        );
        s.stdin = Some("first\n".into());
        s.keep_stdin_open = true;
        let log = dir.path().join("logs/out.log");
        let control = Canceller::default();
        let writer = control.clone();
        let t = std::thread::spawn(move || {
            let seen = |text: &str| {
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    if std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text)) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                false
            };
            assert!(
                seen("got first"),
                "the first line is answered while stdin stays open"
            );
            assert!(writer.write_stdin(b"second\n".to_vec()));
            assert!(seen("got second"));
            writer.cancel();
        });
        let out = run_with(&s, Some(&control));
        t.join().expect("join");
        assert!(out.cancelled, "{out:?}");
        assert_eq!(
            out.stdout, "got first\ngot second\n",
            "stdin never closed, so no \"closed\""
        );
        assert!(
            !control.write_stdin(b"late\n".to_vec()),
            "nothing is written once it ended"
        );
        // Without keep_stdin_open, nothing more can be written.
        let mut once = spec(dir.path(), "cat", None);
        once.stdin = Some("only\n".into());
        let control = Canceller::default();
        let out = run_with(&once, Some(&control));
        assert_eq!(out.stdout, "only\n");
        assert!(!control.write_stdin(b"more".to_vec()));
    }

    #[test]
    fn a_cancel_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let canceller = Canceller::default();
        let stopper = canceller.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stopper.cancel();
        });
        let started = Instant::now();
        let out = run_with(
            &spec(dir.path(), "sleep 30 & sleep 30; echo never", None),
            Some(&canceller),
        );
        t.join().expect("join");
        assert!(out.cancelled, "{out:?}");
        assert!(!out.timed_out);
        assert!(!out.succeeded());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_directory_is_a_spawn_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(dir.path(), "true", None);
        s.cwd = Some("/no/such/dir".into());
        let out = run(&s);
        assert!(out.spawn_error.is_some());
        assert!(!out.succeeded());
    }
}
