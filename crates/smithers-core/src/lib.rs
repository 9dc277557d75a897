//! smithers-core: the engine of smithers-rs, a durable workflow runtime with human approval
//! gates. No napi here: the Node binding (`smithers-node`) is a thin layer over this crate.
//!
//! Start with [`Engine`]; ARCHITECTURE.md describes the contract with the JS driver, the state
//! machines and the tables.

pub mod command;
pub mod contract;
pub mod decision;
pub mod deliveries;
pub mod engine;
pub mod error;
pub mod events;
pub mod graph;
pub mod ident;
pub mod inspect;
pub mod output;
pub mod owner;
pub mod plan;
mod schemas;
pub mod state;
pub mod store;

pub use command::{CommandOutcome, CommandSpec};
pub use decision::{DecisionOutcome, DecisionRequest};
pub use deliveries::{Delivery, DeliveryFilter, DeliveryOutcome, LinkUse, NewDelivery};
pub use engine::{
    ClaimOptions, Engine, NewRun, OutputRow, RunError, Snapshot, Step, TaskError, TaskResult,
    TaskToRun,
};
pub use error::{Error, Result};
pub use events::Event;
pub use graph::GraphDescriptor;
pub use inspect::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, OrphanCursor, OrphanedRun, RunFilter,
    RunInspection, RunSummary, StoreMetrics,
};
pub use store::OpenOptions;
