//! The lifecycle of runs: created, claimed (taken over to be driven), released, cancelled,
//! ended, and the links between a sub-run and the task that waits on it. Each is a move of
//! the run machine (and of the nodes it takes with it), applied in one transaction.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{ClaimOptions, NewRun, RunError, Snapshot, Step};
use crate::apply::{Driven, Tx};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ident::{check_name, check_run_id};
use crate::logs::ENGINE;
use crate::machines::{NodeKey, NodeState, RunEvent, RunInsert, RunStatus, node, run};
use crate::memory::{ActiveRun, LoopRecord, NodeRecord};
use crate::owner;

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// The nodes a run that ends takes with it.
const OPEN: [NodeState; 3] = [
    NodeState::Pending,
    NodeState::InProgress,
    NodeState::WaitingApproval,
];

impl Engine {
    /// Creates a run owned by this engine and returns its first snapshot.
    pub fn create_run(&mut self, new: NewRun) -> Result<Snapshot> {
        let run_id = match new.run_id {
            Some(id) => id,
            None => format!("run-{}", random_suffix()),
        };
        check_run_id(&run_id)?;
        if let Some(schema) = &new.input_schema {
            check_input(schema, &new.input)?;
        }
        if let Some(by) = &new.started_by {
            check_name("startedBy", by)?;
        }
        let name = new.workflow_name.unwrap_or_else(|| "workflow".into());
        let lease_until = self.lease_until()?;
        let input_json = serde_json::to_string(&new.input)?;
        let insert = RunInsert {
            run_id: run_id.clone(),
            workflow_name: name.clone(),
            workflow_path: new.workflow_path.clone(),
            input_json: input_json.clone(),
            owner: self.config.owner.clone(),
            lease_until,
            started_by: new.started_by,
            parent: new.parent.map(|p| (p.run_id, p.node_id, p.iteration)),
        };
        let status = self
            .transaction(|tx| {
                if tx.store.run_exists(&run_id)? {
                    return Err(Error::RunExists {
                        run_id: run_id.clone(),
                    });
                }
                let (status, effects) = run::start(insert)?;
                tx.apply(effects)?;
                Ok(status)
            })
            .inspect_err(|e| {
                // The run may have been created (owned by this engine) before the error reached
                // us (a connection lost at COMMIT): `release_run` must be able to let it go.
                if matches!(e, Error::Db(_) | Error::Pg(_) | Error::Io(_)) {
                    self.unsure.insert(run_id.clone());
                }
            })?;
        tracing::debug!(
            target: ENGINE,
            run_id = run_id.as_str(),
            owner = self.config.owner.as_str(),
            workflow = name.as_str(),
            "run created and claimed"
        );
        self.runs.insert(
            run_id.clone(),
            ActiveRun::new(status, name.clone(), input_json),
        );
        Ok(Snapshot {
            run_id,
            status: status.as_str(),
            workflow_name: name,
            workflow_path: new.workflow_path,
            input: new.input,
            loops: BTreeMap::new(),
            node_loops: BTreeMap::new(),
            outputs: Vec::new(),
            error: None,
        })
    }

    /// Takes a run over to drive it (resume). Nodes a dead owner left in progress go back to
    /// pending: their tasks never completed, so running them again loses nothing, and a
    /// completed task is never run again. A finished, failed or cancelled run is returned as
    /// it is, without being claimed.
    pub fn claim_run(&mut self, run_id: &str, force: bool) -> Result<Snapshot> {
        self.claim_run_with(
            run_id,
            &ClaimOptions {
                force,
                ..ClaimOptions::default()
            },
        )
    }

    /// [`Engine::claim_run`], saying which workflow the caller will drive the run with: a run
    /// recorded with another workflow name (or another file, when the name is not given) is
    /// refused (`WORKFLOW_MISMATCH`, nothing written) unless `force`, which also records the
    /// new workflow on the run. Another file with the run's workflow name is recorded as the
    /// run's file from now on (the file was moved).
    pub fn claim_run_with(&mut self, run_id: &str, options: &ClaimOptions) -> Result<Snapshot> {
        let me = self.config.owner.clone();
        let lease_until = self.lease_until()?;
        let driving = self.runs.contains_key(run_id);
        let claimed = self
            .transaction(|tx| claim(tx, run_id, options, &me, lease_until, driving))
            .inspect_err(|e| {
                // The claim may have committed before the error reached us (a connection
                // lost at COMMIT): the run may be ours in the database.
                if !matches!(
                    e,
                    Error::RunOwned { .. }
                        | Error::RunNotFound { .. }
                        | Error::WorkflowMismatch { .. }
                ) {
                    self.unsure.insert(run_id.into());
                }
            })?;
        let (row, status, abandoned) = match claimed {
            Claimed::Ended(snapshot) => {
                self.unsure.remove(run_id);
                return Ok(*snapshot);
            }
            Claimed::Taken {
                row,
                status,
                abandoned,
            } => (row, status, abandoned),
        };
        tracing::debug!(
            target: ENGINE,
            run_id,
            owner = me.as_str(),
            previous_owner = row.owner.as_deref().unwrap_or(""),
            taken_over = taken_over(
                row.owner.as_deref(),
                &me,
                row.lease_expires_at_ms,
                options.force,
                self.now()
            ),
            forced = options.force,
            abandoned,
            status = status.as_str(),
            "run claimed"
        );
        // The claim committed: the run is ours in the database from here on. If reading its
        // nodes fails (the connection lost just after the COMMIT, a server restarting), the
        // run is recorded as unsure, so that `release_run` lets it go; else the lease keeper
        // would renew a run nobody drives here, forever.
        let loaded = (|| -> Result<_> {
            let mut run = ActiveRun::new(status, row.workflow_name.clone(), row.input_json.clone());
            let mut node_loops = BTreeMap::new();
            for n in self.store.nodes(run_id)? {
                if let Some(loop_id) = n.loop_id {
                    node_loops.insert(n.node_id.clone(), loop_id);
                }
                run.insert(
                    &n.node_id,
                    n.iteration,
                    NodeRecord {
                        state: n.state,
                        approval: n.approval,
                        attempts: n.attempts,
                    },
                );
            }
            let mut loops = BTreeMap::new();
            for (loop_id, iteration, done) in self.store.loops(run_id)? {
                loops.insert(loop_id.clone(), iteration);
                run.loops.insert(loop_id, LoopRecord { iteration, done });
            }
            run.schema_versions = self.store.schema_bindings(run_id)?;
            Ok((run, node_loops, loops))
        })();
        let (run, node_loops, loops) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                self.unsure.insert(run_id.into());
                return Err(e);
            }
        };
        self.unsure.remove(run_id);
        // Driven here from now on: a failure below leaves it to `release_run` like any other.
        self.runs.insert(run_id.into(), run);
        let outputs = self.schemas.read_outputs(&*self.store, run_id)?;
        Ok(Snapshot {
            run_id: run_id.into(),
            status: status.as_str(),
            workflow_name: row.workflow_name,
            workflow_path: row.workflow_path,
            input: serde_json::from_str(&row.input_json)?,
            loops,
            node_loops,
            outputs,
            error: row.error,
        })
    }

    /// Lets go of a run this engine drives (the process is about to stop driving it). A run
    /// that is still running stays `running` with no owner: `resume` picks it up.
    /// It is a write transaction of its own, so it is announced like any other commit (on
    /// PostgreSQL it notifies): a worker waiting for ready runs on another host takes it at
    /// once instead of at its next sweep.
    pub fn release_run(&mut self, run_id: &str) -> Result<()> {
        let run = self.runs.remove(run_id);
        if run.is_some() || self.unsure.remove(run_id) {
            let owner = self.config.owner.clone();
            if let Err(e) = self.transaction(|tx| tx.store.release_run(run_id, &owner)) {
                // Still ours (the database was out of reach): the caller may release it
                // again; until then the lease keeper renews it, as for any run driven here.
                match run {
                    Some(run) => {
                        self.runs.insert(run_id.into(), run);
                    }
                    None => {
                        self.unsure.insert(run_id.into());
                    }
                }
                return Err(e);
            }
            tracing::debug!(target: ENGINE, run_id, owner = self.config.owner.as_str(), "run released");
        }
        Ok(())
    }

    /// Cancels a run (from any process). A driver of the run stops at its next step.
    pub fn cancel_run(&mut self, run_id: &str) -> Result<&'static str> {
        let Some(row) = self.store.run(run_id)? else {
            return Err(Error::RunNotFound {
                run_id: run_id.into(),
            });
        };
        if row.status.is_terminal() {
            return Ok(row.status.as_str());
        }
        // A run this engine drives stays in memory: its driver learns of the cancel at its
        // next call and stops there.
        let mut driven = self.runs.remove(run_id);
        let result = self.transaction(|tx| {
            let from = driven.as_ref().map_or(row.status, |r| r.status);
            let mut step = Step::new();
            let memory = driven.as_mut().map(|run| Driven {
                run_id,
                run,
                step: &mut step,
            });
            end_run(tx, run_id, from, memory, RunEvent::Cancel, None)
        });
        if let Some(run) = driven {
            self.runs.insert(run_id.into(), run);
        }
        result?;
        Ok(RunStatus::Cancelled.as_str())
    }
}

fn check_input(schema: &Value, input: &Value) -> Result<()> {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| Error::InvalidSchema {
            key: "input".into(),
            message: e.to_string(),
        })?;
    let errors: Vec<String> = validator
        .iter_errors(input)
        .take(8)
        .map(|e| e.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidInput { errors })
    }
}

enum Claimed {
    Taken {
        row: Box<crate::store::RunRow>,
        status: RunStatus,
        /// Attempts the previous owner left open.
        abandoned: usize,
    },
    Ended(Box<Snapshot>),
}

/// The claim itself, in its transaction: refused unless the run is free (no owner, this
/// engine, or an owner that no longer holds it) and the workflow is the run's.
fn claim(
    tx: &mut Tx<'_>,
    run_id: &str,
    options: &ClaimOptions,
    me: &str,
    lease_until: i64,
    driving: bool,
) -> Result<Claimed> {
    if options.skip_locked && !tx.store.try_lock_run(run_id)? {
        tracing::debug!(
            target: ENGINE,
            run_id,
            "claim skipped: another transaction holds the run's row"
        );
        return Err(Error::RunOwned {
            run_id: run_id.into(),
            owner: "another process, claiming or driving it now".into(),
        });
    }
    let Some(mut row) = tx.store.run(run_id)? else {
        return Err(Error::RunNotFound {
            run_id: run_id.into(),
        });
    };
    if row.status.is_terminal() {
        let outputs = tx.schemas.read_outputs(tx.store, run_id)?;
        return Ok(Claimed::Ended(Box::new(Snapshot {
            run_id: run_id.into(),
            status: row.status.as_str(),
            workflow_name: row.workflow_name,
            workflow_path: row.workflow_path,
            input: serde_json::from_str(&row.input_json)?,
            loops: BTreeMap::new(),
            node_loops: BTreeMap::new(),
            outputs,
            error: row.error,
        })));
    }
    if driving {
        return Err(Error::RunOwned {
            run_id: run_id.into(),
            owner: me.into(),
        });
    }
    let force = options.force;
    if let Some(owner) = row.owner.as_deref()
        && owner != me
        && !force
        && owner::holds(owner, row.lease_expires_at_ms, tx.now)
    {
        tracing::debug!(
            target: ENGINE,
            run_id,
            owner,
            lease_expires_at_ms = row.lease_expires_at_ms,
            "claim refused: another live process owns the run"
        );
        return Err(Error::RunOwned {
            run_id: run_id.into(),
            owner: owner.into(),
        });
    }
    // A workflow is known by its name (`<Workflow name>`): another name is another workflow.
    // Another file with the same name is the same workflow moved or copied (the way to resume
    // a run whose file is gone); a file alone, with no name to tell, is not trusted.
    let other_path = options.workflow_path.as_ref().filter(|p| {
        row.workflow_path
            .as_ref()
            .is_some_and(|recorded| recorded != *p)
    });
    let other_name = options
        .workflow_name
        .as_ref()
        .filter(|n| **n != row.workflow_name);
    let unverified = other_path.is_some() && options.workflow_name.is_none();
    if !force && (other_name.is_some() || unverified) {
        let shown = |name: &str, path: Option<&String>| match path {
            Some(p) => format!("{name} ({p})"),
            None => name.to_string(),
        };
        let recorded = shown(&row.workflow_name, row.workflow_path.as_ref());
        let given = shown(
            options
                .workflow_name
                .as_deref()
                .unwrap_or("a workflow of unknown name"),
            options.workflow_path.as_ref(),
        );
        tracing::debug!(
            target: ENGINE,
            run_id,
            recorded = recorded.as_str(),
            given = given.as_str(),
            "claim refused: the run is another workflow's (WORKFLOW_MISMATCH)"
        );
        return Err(Error::WorkflowMismatch {
            run_id: run_id.into(),
            recorded,
            given,
        });
    }
    if force || other_path.is_some() {
        // Resumed from the file given (moved, or taken over on purpose): the run records it.
        if let Some(p) = &options.workflow_path {
            row.workflow_path = Some(p.clone());
        }
        if let Some(n) = options.workflow_name.as_ref().filter(|_| force) {
            row.workflow_name = n.clone();
        }
        tx.apply(vec![crate::machines::Effect::SetRunWorkflow {
            run: run_id.into(),
            name: row.workflow_name.clone(),
            path: row.workflow_path.clone(),
        }])?;
        tracing::debug!(
            target: ENGINE,
            run_id,
            workflow = row.workflow_name.as_str(),
            workflow_path = row.workflow_path.as_deref().unwrap_or(""),
            forced = force,
            "run's workflow recorded anew (moved, or resumed with another on purpose)"
        );
    }
    // Attempts that were open when the previous owner died.
    let open = tx.store.nodes_in(run_id, &[NodeState::InProgress])?;
    for (node_id, iteration, state, attempt) in &open {
        let key = NodeKey::new(run_id, node_id, *iteration);
        let (_, effects) = node::abandon(&key, *state, *attempt)?;
        tx.apply(effects)?;
    }
    let (status, effects) = run::claim(run_id, row.status, me, lease_until)?;
    tx.apply(effects)?;
    Ok(Claimed::Taken {
        row: Box::new(row),
        status,
        abandoned: open.len(),
    })
}

/// Why a claim could take a run another engine had owned, for the `run claimed` log line:
/// "" (nobody held it, or this engine did), "owner process dead", "lease expired", "forced".
fn taken_over(
    previous: Option<&str>,
    me: &str,
    lease_expires_at_ms: Option<i64>,
    force: bool,
    now: i64,
) -> &'static str {
    match previous {
        None => "",
        Some(p) if p == me => "",
        Some(p) if owner::liveness(p) == owner::Liveness::Dead => "owner process dead",
        Some(_) if lease_expires_at_ms.is_some_and(|t| t <= now) => "lease expired",
        Some(_) if force => "forced",
        Some(_) => "",
    }
}

/// Ends a run: open nodes are cancelled (node by node), open requests withdrawn, running
/// attempts cancelled, the status and its reason recorded; a run that did not finish takes
/// its open sub-runs with it; a sub-run that ended wakes the task waiting on it.
pub(crate) fn end_run(
    tx: &mut Tx<'_>,
    run_id: &str,
    from: RunStatus,
    mut memory: Option<Driven<'_>>,
    event: RunEvent,
    failure: Option<RunError>,
) -> Result<()> {
    let mut effects = Vec::new();
    let open = tx.store.nodes_in(run_id, &OPEN)?;
    for (node_id, iteration, state, _) in &open {
        let key = NodeKey::new(run_id, node_id, *iteration);
        effects.extend(node::cancel(&key, *state)?.1);
    }
    let (to, run_effects) = run::end(run_id, from, event, failure)?;
    effects.extend(run_effects);
    tx.applier(memory.take()).apply(effects)?;
    if to != RunStatus::Finished {
        cancel_sub_runs(tx, SubRuns::Of(run_id))?;
    }
    let woken = wake_caller(tx, run_id)?;
    tracing::debug!(
        target: ENGINE,
        run_id,
        status = to.as_str(),
        cancelled_nodes = open.len(),
        woke_caller = woken.as_deref().unwrap_or(""),
        "run ended"
    );
    Ok(())
}

/// Which runs `cancel_sub_runs` ends: the sub-runs of a run, or a sub-run and its own.
#[derive(Clone, Copy)]
pub(crate) enum SubRuns<'a> {
    /// A run that ends early takes its open sub-runs with it.
    Of(&'a str),
    /// A task a push-back sent back no longer waits on its sub-run: the next attempt makes a
    /// new one.
    Tree(&'a str),
}

/// Cancels open sub-runs, with their nodes and requests (a driver of one learns it at its
/// next call).
pub(crate) fn cancel_sub_runs(tx: &mut Tx<'_>, which: SubRuns<'_>) -> Result<()> {
    let (root, tree, reason) = match which {
        SubRuns::Of(run_id) => (run_id, false, "its caller ended"),
        SubRuns::Tree(sub) => (sub, true, "its caller was sent back"),
    };
    for (sub, status) in tx.store.open_sub_runs(root, tree)? {
        let (_, effects) = run::cancel_sub_run(&sub, status, reason)?;
        tx.apply(effects)?;
    }
    Ok(())
}

/// A sub-run ended: the task that waits on it goes back to pending (it runs again and reads
/// the sub-run's result) and its run wakes up. A run nobody drives is then `running` with no
/// owner, which `resume` (or serve's watcher) picks up; a live driver of it sees the node
/// move at its next call. Returns the caller's run id when it woke one.
fn wake_caller(tx: &mut Tx<'_>, run_id: &str) -> Result<Option<String>> {
    let Some(caller) = tx.store.caller(run_id)? else {
        return Ok(None);
    };
    let key = NodeKey::new(&caller.run_id, &caller.node_id, caller.iteration);
    let waits = tx.store.node(&key)?.filter(|n| {
        n.state == NodeState::WaitingApproval && n.sub_run_id.as_deref() == Some(run_id)
    });
    let Some(waiting) = waits else {
        return Ok(None);
    };
    let (_, effects) = node::sub_run_ended(&key, waiting.state, run_id)?;
    tx.apply(effects)?;
    if let Some(parent) = tx.store.run(&caller.run_id)? {
        wake(tx, &caller.run_id, parent.status)?;
    }
    Ok(Some(caller.run_id))
}

/// What a run whose waiting nodes are those `waiting` says waits on: `waiting-timer` when every
/// one of the `count` waits on a `<Timer>` of its own or on a sub-run that is `waiting-timer`,
/// else `waiting-approval`. Read through the store in the caller's transaction, so a parked
/// run and a sub-run parking at the same time agree (`drive::refresh::park`,
/// [`follow_sub_run`]).
pub(crate) fn wait_kind(
    tx: &Tx<'_>,
    run_id: &str,
    waiting: impl Fn(&str, i64) -> bool,
    count: usize,
) -> Result<RunStatus> {
    let timed: std::collections::BTreeSet<(String, i64)> = tx
        .store
        .timer_nodes(run_id, false)?
        .into_iter()
        .chain(tx.store.nodes_on_timer_sub_runs(run_id)?)
        .filter(|(n, i)| waiting(n, *i))
        .collect();
    Ok(if !timed.is_empty() && timed.len() == count {
        RunStatus::WaitingTimer
    } else {
        RunStatus::WaitingApproval
    })
}

/// A run parked (`waiting-approval` or `waiting-timer`): each parked caller up its chain that
/// waits on it follows what it now waits on, in the same transaction (`FollowSubRun`). A
/// sub-run decided on and now waiting on a `<Timer>` makes its caller `waiting-timer`; one
/// whose timer fired and now waits on a gate makes it `waiting-approval` again. A caller that
/// is running (its driver parks it later, and reads the sub-run then) or ended is left alone.
/// On PostgreSQL the sub-run's transaction holds its callers' rows (`lock_run` locks the
/// tree), so a caller parking at the same time is either before it or after it.
pub(crate) fn follow_sub_run(tx: &mut Tx<'_>, run_id: &str) -> Result<()> {
    let mut sub = run_id.to_string();
    // As deep as the store's lock of a run tree goes.
    for _ in 0..64 {
        let Some(caller) = tx.store.caller(&sub)? else {
            return Ok(());
        };
        let Some(row) = tx.store.run(&caller.run_id)? else {
            return Ok(());
        };
        if !row.status.is_waiting() {
            return Ok(());
        }
        let key = NodeKey::new(&caller.run_id, &caller.node_id, caller.iteration);
        let waits = tx.store.node(&key)?.is_some_and(|n| {
            n.state == NodeState::WaitingApproval && n.sub_run_id.as_deref() == Some(sub.as_str())
        });
        if !waits {
            return Ok(());
        }
        let waiting: std::collections::BTreeSet<(String, i64)> = tx
            .store
            .nodes_in(&caller.run_id, &[NodeState::WaitingApproval])?
            .into_iter()
            .map(|(n, i, _, _)| (n, i))
            .collect();
        let kind = wait_kind(
            tx,
            &caller.run_id,
            |n, i| waiting.contains(&(n.to_string(), i)),
            waiting.len(),
        )?;
        if kind == row.status {
            return Ok(());
        }
        let (to, effects) = run::follow_sub_run(&caller.run_id, row.status)?;
        tx.apply(effects)?;
        tracing::debug!(
            target: ENGINE,
            run_id = caller.run_id.as_str(),
            sub_run_id = sub.as_str(),
            status = to.as_str(),
            previous = row.status.as_str(),
            "caller follows what its sub-run waits on"
        );
        sub = caller.run_id;
    }
    Ok(())
}

/// A decision on a waiting run (or a sub-run's end, for its caller) wakes it (`running`):
/// whoever resumes it picks the decision up. Returns the run's status after.
pub(crate) fn wake(tx: &mut Tx<'_>, run_id: &str, status: RunStatus) -> Result<RunStatus> {
    let (to, effects) = run::wake(run_id, status)?;
    tx.apply(effects)?;
    Ok(to)
}
