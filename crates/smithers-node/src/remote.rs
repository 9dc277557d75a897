//! An engine on PostgreSQL, owned by a thread of its own, so that the JS thread never waits
//! on the network (ARCHITECTURE.md, "The binding on PostgreSQL").
//!
//! The core engine is not `Send` (its store holds a connection in a `RefCell`), so it is opened
//! on its thread and never leaves it. Calls reach it as jobs on a channel and run one at a
//! time, in the order they were made — the order the JS thread would have run them in — and
//! each answers either a blocked caller (the synchronous methods) or a promise (the `…Async`
//! methods), whose settling napi queues onto the JS thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use serde_json::{Value, json};
use smithers_core as core;

/// A failed call as it crosses threads: the core's stable code, its message, its details.
pub struct Failure {
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl From<core::Error> for Failure {
    fn from(e: core::Error) -> Self {
        Failure {
            code: e.code().to_string(),
            message: e.to_string(),
            details: e.details(),
        }
    }
}

impl Failure {
    pub fn closed() -> Self {
        core::Error::EngineClosed.into()
    }

    fn panicked() -> Self {
        Failure {
            code: "INTERNAL".into(),
            message: "the engine thread failed while running this call".into(),
            details: json!({}),
        }
    }
}

/// Runs `f` on the engine (`None`: the engine was closed before the call's turn came).
pub fn run<T>(
    engine: Option<&mut core::Engine>,
    f: impl FnOnce(&mut core::Engine) -> core::Result<T>,
) -> Result<T, Failure> {
    match engine {
        None => Err(Failure::closed()),
        // A panic in the core fails this call only; the engine thread goes on.
        Some(e) => match catch_unwind(AssertUnwindSafe(|| f(e))) {
            Ok(result) => result.map_err(Failure::from),
            Err(_) => Err(Failure::panicked()),
        },
    }
}

type Job = Box<dyn FnOnce(Option<&mut core::Engine>) + Send>;

/// The handle the JS thread keeps of an engine living on its own thread.
pub struct Remote {
    jobs: Option<mpsc::Sender<Job>>,
    closed: Arc<AtomicBool>,
    /// Events committed by calls that ended, for `takeEvents` (read without a turn in the queue).
    events: Arc<Mutex<Vec<serde_json::Map<String, Value>>>>,
    pub owner: String,
    pub log_dir: String,
    /// The clock's shift (tests only), so that "now" is read without a turn in the queue.
    pub clock_offset: i64,
}

impl Remote {
    /// Opens the engine on a new thread; returns once it is open (or why it is not).
    pub fn open(
        url: String,
        options: core::OpenOptions,
        lease_ms: Option<i64>,
        clock_offset: Option<i64>,
    ) -> Result<Remote, Failure> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open_result) = mpsc::sync_channel(1);
        let closed = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (thread_closed, thread_events) = (closed.clone(), events.clone());
        std::thread::Builder::new()
            .name("smithers-engine".into())
            .spawn(move || {
                let mut engine = match core::Engine::open_with(&url, options) {
                    Ok(engine) => engine,
                    Err(e) => {
                        let _ = opened.send(Err(Failure::from(e)));
                        return;
                    }
                };
                if let Some(ms) = lease_ms {
                    engine.set_lease_ms(ms);
                }
                if let Some(offset) = clock_offset {
                    engine.set_clock(core::time::offset_clock(offset));
                }
                let identity = (
                    engine.owner_id().to_string(),
                    engine.log_dir().to_string_lossy().into_owned(),
                );
                if opened.send(Ok(identity)).is_err() {
                    return;
                }
                // Until the JS side closes (or drops) the engine: then the calls still queued
                // are answered ENGINE_CLOSED and the engine (its connections) is dropped.
                while let Ok(job) = queue.recv() {
                    if thread_closed.load(Ordering::Acquire) {
                        job(None);
                        continue;
                    }
                    job(Some(&mut engine));
                    let taken = engine.take_events();
                    if !taken.is_empty()
                        && let Ok(mut buffer) = thread_events.lock()
                    {
                        buffer.extend(taken.into_iter().map(crate::types::event));
                    }
                }
            })
            .map_err(|e| Failure {
                code: "INTERNAL".into(),
                message: format!("cannot start the engine thread: {e}"),
                details: json!({}),
            })?;
        let (owner, log_dir) = open_result.recv().map_err(|_| Failure::panicked())??;
        Ok(Remote {
            jobs: Some(jobs),
            closed,
            events,
            owner,
            log_dir,
            clock_offset: clock_offset.unwrap_or(0),
        })
    }

    /// Queues a job; false when the engine thread is gone.
    pub fn send(&self, job: impl FnOnce(Option<&mut core::Engine>) + Send + 'static) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Box::new(job)).is_ok())
    }

    /// Runs `f` on the engine thread after the calls queued before it, and waits for it.
    pub fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut core::Engine) -> core::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let (reply, answer) = mpsc::sync_channel(1);
        if !self.send(move |e| {
            let _ = reply.send(run(e, f));
        }) {
            return Err(Failure::closed());
        }
        answer.recv().unwrap_or_else(|_| Err(Failure::closed()))
    }

    /// The events of calls that ended since the last take.
    pub fn take_events(&self) -> Vec<serde_json::Map<String, Value>> {
        self.events
            .lock()
            .map(|mut buffer| std::mem::take(&mut *buffer))
            .unwrap_or_default()
    }

    pub fn clear_events(&self) {
        if let Ok(mut buffer) = self.events.lock() {
            buffer.clear();
        }
    }

    /// Calls queued from now on, and those still waiting for their turn, fail ENGINE_CLOSED;
    /// the one running (if any) ends as it ends. The engine is dropped on its thread.
    pub fn close(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.jobs = None;
    }
}
