//! smithers-core: the engine of smithers-rs, a durable workflow runtime with human approval
//! gates. No napi here: the Node binding (`smithers-node`) is a thin layer over this crate.
//!
//! Start with [`Engine`]; ARCHITECTURE.md describes the contract with the JS driver, the state
//! machines and the tables.

mod api;
mod apply;
pub mod audit;
pub mod command;
pub mod contract;
pub mod decision;
pub mod deliveries;
mod drive;
pub mod engine;
pub mod error;
pub mod events;
pub mod graph;
pub mod ident;
mod inspect;
mod logs;
pub mod machines;
mod memory;
pub mod migrate;
mod outbox;
mod output;
mod owner;
mod plan;
mod runs;
mod schemas;
pub mod store;
pub mod time;
pub mod timers;
pub mod views;

pub use command::{CommandOutcome, CommandSpec};
pub use decision::{DecisionOutcome, DecisionRequest};
pub use deliveries::{Delivery, DeliveryFilter, DeliveryOutcome, LinkUse, NewDelivery};
pub use drive::RenderedGraph;
pub use engine::{
    AgentCall, ChangeWaiter, ClaimOptions, Engine, NewRun, OutputRef, OutputRow, ParentRef,
    RunError, Snapshot, Step, TaskError, TaskResult, TaskToRun,
};
pub use error::{Error, Result};
pub use events::{Event, EventKind};
pub use graph::GraphDescriptor;
pub use machines::{ApprovalStatus, AttemptState, NodeState, RunStatus};
pub use store::OpenOptions;
pub use views::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, OrphanCursor, OrphanedRun, RunFilter,
    RunInspection, RunSummary, StoreMetrics, VoteSummary,
};
