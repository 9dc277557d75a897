//! Outgoing notifications as rows: webhook deliveries and the single-use decision links they
//! (and mail) carry. Two tables of their own (`DeliveryRows` in the store), no run state.
//!
//! A **delivery** (`_smithers_deliveries`) is one message to one target. It is written once
//! (its id is derived from the feed position and the target, so several `smithers serve`
//! processes that see the same event write one row), then claimed by one sender at a time
//! like a run is: a claim is a write transaction that moves due rows to `sending` under the
//! claimer's name with a lease (`claim_expires_at_ms`). The sender settles the row
//! (`delivered`, `pending` again with the next attempt's time, or `failed`), guarded by its
//! claim; a sender that died mid-send leaves a lease that expires, and the row is claimed
//! again: delivered at least once, sent by one process at a time.
//!
//! A **link use** (`_smithers_link_uses`) records that a signed decision link was used. The
//! link itself (its signature, approver, gate, expiry) is checked by whoever holds the
//! secret; the row makes it single-use across processes: the first insert wins, a second is
//! `LINK_USED`.
//!
//! Time is the caller's: every call that compares due times takes `now_ms`.
//!
//! This module holds the types and checks (a leaf: the store's `DeliveryRows` speaks them);
//! the engine's calls are in `outbox.rs`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The statuses of a delivery row, in the order a delivery meets them.
pub const DELIVERY_STATUSES: [&str; 4] = ["pending", "sending", "delivered", "failed"];

/// A delivery to write (`enqueue_deliveries`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub target: String,
    pub url: String,
    pub event_type: String,
    #[serde(default)]
    pub feed_id: Option<i64>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub iteration: Option<i64>,
    /// The exact bytes that are sent (and signed).
    pub body: String,
}

/// A delivery row, as `claim_deliveries` and `list_deliveries` return it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: String,
    pub target: String,
    pub url: String,
    pub event_type: String,
    pub feed_id: Option<i64>,
    pub run_id: Option<String>,
    pub node_id: Option<String>,
    pub iteration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub claimed_by: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// What became of one attempt (`settle_delivery`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryOutcome {
    /// The receiver answered 2xx.
    pub delivered: bool,
    #[serde(default)]
    pub status_code: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    /// When to try again; none (and not delivered) gives up: `failed`.
    #[serde(default)]
    pub next_attempt_at_ms: Option<i64>,
}

/// `list_deliveries`: newest first, keyset-paged by `(created_at_ms, delivery_id)`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryFilter {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub before: Option<DeliveryCursor>,
    /// Include the body sent.
    #[serde(default)]
    pub with_body: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryCursor {
    pub created_at_ms: i64,
    pub delivery_id: String,
}

/// The first use of a link (`use_link`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkUse {
    pub link_id: String,
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    pub action: String,
    pub approver: String,
}

/// What a settled attempt writes on its row (`DeliveryRows::settle_delivery`).
#[derive(Debug)]
pub(crate) struct Settled<'a> {
    pub status: &'static str,
    pub next_attempt_at_ms: Option<i64>,
    pub status_code: Option<i64>,
    pub error: Option<&'a str>,
    pub now: i64,
}

pub(crate) fn check_delivery(d: &NewDelivery) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 200
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
    };
    if !name_ok(&d.delivery_id) || !name_ok(&d.target) {
        return Err(Error::InvalidDelivery(format!(
            "delivery id {:?} and target {:?} must be 1-200 letters, digits and _ . : -",
            d.delivery_id, d.target
        )));
    }
    if d.body.len() > 1 << 20 {
        return Err(Error::InvalidDelivery(format!(
            "the body of {} is over 1 MiB",
            d.delivery_id
        )));
    }
    Ok(())
}
