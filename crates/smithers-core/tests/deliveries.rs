//! Outgoing notifications as rows (`deliveries.rs`): a delivery written once and claimed by one
//! sender at a time, retried by hand, and decision links used once, across engines on one
//! database.

mod common;

use smithers_core::Engine;
use smithers_core::deliveries::{DeliveryFilter, DeliveryOutcome, LinkUse, NewDelivery};

fn delivery(id: &str, target: &str) -> NewDelivery {
    NewDelivery {
        delivery_id: id.into(),
        target: target.into(),
        url: "http://127.0.0.1:9/hook".into(),
        event_type: "gate.waiting".into(),
        feed_id: Some(1),
        run_id: Some("r1".into()),
        node_id: Some("deploy".into()),
        iteration: Some(0),
        body: "{}".into(),
    }
}

fn targets(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_delivery_is_written_once_and_claimed_by_one_sender() {
    let dir = common::TestDb::new();
    let path = dir.db().to_path_buf();
    let mut a = Engine::open(&path).unwrap();
    let mut b = Engine::open(&path).unwrap();
    // Two processes that saw the same event write one row; the cursor only moves forward.
    assert_eq!(
        a.enqueue_deliveries(&[delivery("msg_1_ops", "ops")], Some(5), 1_000)
            .unwrap(),
        1
    );
    assert_eq!(
        b.enqueue_deliveries(&[delivery("msg_1_ops", "ops")], Some(3), 1_000)
            .unwrap(),
        0
    );
    assert_eq!(b.delivery_cursor().unwrap(), Some(5));

    let ops = targets(&["ops"]);
    let first = a.claim_deliveries("a", &ops, 1_000, 10_000, 10).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].body.as_deref(), Some("{}"));
    // Claimed and not expired: nobody else gets it, nor a claimer for other targets.
    assert!(
        b.claim_deliveries("b", &ops, 5_000, 10_000, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        b.claim_deliveries("b", &targets(&["other"]), 20_000, 10_000, 10)
            .unwrap()
            .is_empty()
    );
    // The sender died: its claim expires and another takes the row.
    let again = b.claim_deliveries("b", &ops, 11_000, 10_000, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    // The first sender's late answer changes nothing; the holder's does.
    let failed = DeliveryOutcome {
        delivered: false,
        status_code: Some(500),
        error: Some("HTTP 500".into()),
        next_attempt_at_ms: Some(13_000),
    };
    assert!(
        !a.settle_delivery("msg_1_ops", "a", &failed, 12_000)
            .unwrap()
    );
    assert!(
        b.settle_delivery("msg_1_ops", "b", &failed, 12_000)
            .unwrap()
    );
    assert!(
        a.claim_deliveries("a", &ops, 12_500, 10_000, 10)
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let third = a.claim_deliveries("a", &ops, 13_000, 10_000, 10).unwrap();
    assert_eq!(third[0].attempts, 3);
    let ok = DeliveryOutcome {
        delivered: true,
        status_code: Some(204),
        error: None,
        next_attempt_at_ms: None,
    };
    assert!(a.settle_delivery("msg_1_ops", "a", &ok, 13_100).unwrap());
    let listed = b.list_deliveries(&DeliveryFilter::default()).unwrap();
    assert_eq!(listed[0].status, "delivered");
    assert_eq!(listed[0].delivered_at_ms, Some(13_100));
    assert_eq!(listed[0].last_status_code, Some(204));
    assert!(
        a.claim_deliveries("a", &ops, 99_000, 10_000, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn racing_claimers_take_each_row_once() {
    let dir = common::TestDb::new();
    let path = dir.db().to_path_buf();
    let mut setup = Engine::open(&path).unwrap();
    let rows: Vec<NewDelivery> = (0..200)
        .map(|i| delivery(&format!("msg_{i}_ops"), "ops"))
        .collect();
    setup.enqueue_deliveries(&rows, None, 0).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut engine = Engine::open(&path).unwrap();
                let mut mine = Vec::new();
                loop {
                    let got = engine
                        .claim_deliveries(&format!("c{n}"), &targets(&["ops"]), 10, 60_000, 7)
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|d| d.delivery_id));
                }
            })
        })
        .collect();
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 200, "every row claimed");
    assert_eq!(all.len(), 200, "no row claimed twice");
}

#[test]
fn failed_deliveries_are_retried_by_hand_and_bad_filters_refused() {
    let dir = common::TestDb::new();
    let mut e = dir.engine();
    e.enqueue_deliveries(&[delivery("msg_1_ops", "ops")], None, 0)
        .unwrap();
    let err = e.retry_delivery("msg_1_ops", 1).unwrap_err();
    assert_eq!(err.code(), "INVALID_DELIVERY");
    assert_eq!(
        e.retry_delivery("nope", 1).unwrap_err().code(),
        "DELIVERY_NOT_FOUND"
    );
    e.claim_deliveries("a", &targets(&["ops"]), 0, 1000, 1)
        .unwrap();
    let gave_up = DeliveryOutcome {
        delivered: false,
        status_code: None,
        error: Some("ECONNREFUSED".into()),
        next_attempt_at_ms: None,
    };
    assert!(e.settle_delivery("msg_1_ops", "a", &gave_up, 5).unwrap());
    let failed = e
        .list_deliveries(&DeliveryFilter {
            status: Some("failed".into()),
            ..DeliveryFilter::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("ECONNREFUSED"));
    let retried = e.retry_delivery("msg_1_ops", 9).unwrap();
    assert_eq!((retried.status.as_str(), retried.attempts), ("pending", 0));
    let bad = e.list_deliveries(&DeliveryFilter {
        status: Some("lost".into()),
        ..DeliveryFilter::default()
    });
    assert_eq!(bad.unwrap_err().code(), "INVALID_DELIVERY");
    let mut bad_id = delivery("msg 1", "ops");
    bad_id.delivery_id = "msg 1".into();
    assert_eq!(
        e.enqueue_deliveries(&[bad_id], None, 0).unwrap_err().code(),
        "INVALID_DELIVERY"
    );
}

#[test]
fn a_link_is_used_once() {
    let dir = common::TestDb::new();
    let path = dir.db().to_path_buf();
    let mut a = Engine::open(&path).unwrap();
    let mut b = Engine::open(&path).unwrap();
    let link = LinkUse {
        link_id: "lnk1".into(),
        run_id: "r1".into(),
        node_id: "deploy".into(),
        iteration: 0,
        action: "approve".into(),
        approver: "ann".into(),
    };
    a.use_link(&link, 1_000).unwrap();
    a.record_link_outcome("lnk1", &serde_json::json!({"status": "approved"}))
        .unwrap();
    let err = b.use_link(&link, 2_000).unwrap_err();
    assert_eq!(err.code(), "LINK_USED");
    assert_eq!(err.details()["outcome"]["status"], "approved");
    // A use released after a passing failure may be made again.
    b.release_link("lnk1").unwrap();
    b.use_link(&link, 3_000).unwrap();
}
