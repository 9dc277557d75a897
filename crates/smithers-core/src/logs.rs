//! The targets of the core's log lines (`SMITHERS_LOG=smithers_core::engine=debug`, …): names
//! operators filter on, so they stay what they were when one file held each concern; moving
//! code between modules does not rename its lines. Lines not listed here use their module's
//! path (`smithers_core::events`, `::owner`, `::schemas`, `::inspect`).

/// Runs' lifecycle, claims, scheduling, task results.
pub(crate) const ENGINE: &str = "smithers_core::engine";
/// Decisions recorded or refused, auto-approvals.
pub(crate) const DECISION: &str = "smithers_core::decision";
/// The database: created, migrated, locked by another connection.
pub(crate) const STORE: &str = "smithers_core::store";
/// Deliveries claimed and settled, decision links used.
pub(crate) const DELIVERIES: &str = "smithers_core::deliveries";
/// Durable timers scheduled and fired.
pub(crate) const TIMER: &str = "smithers_core::timer";
