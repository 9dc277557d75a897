//! What `smithers serve` needs from the core: who started a run and the four-eyes rule,
//! scope levels, keyset paging and status filters over approvals, the database-wide event
//! feed, and runs that nobody drives.

mod common;

use common::{approval, decision_schema, open, req, with};
use serde_json::{Value, json};
use smithers_core::time::ManualClock;
use smithers_core::views::{ApprovalCursor, ApprovalFilter, ApprovalSummary};
use smithers_core::{Engine, GraphDescriptor, NewRun};

fn graph(gates: &[Value]) -> GraphDescriptor {
    let root = json!({"kind": "parallel", "children": gates});
    common::descriptor("ops", json!({"gate": decision_schema()}), json!([]), root)
}

fn gate(id: &str, extra: Value) -> Value {
    approval(id, with(json!({"onDeny": "fail"}), extra))
}

fn start(engine: &mut Engine, run_id: &str, by: Option<&str>, gates: &[Value]) {
    let new = NewRun {
        started_by: by.map(String::from),
        ..NewRun::default()
    };
    common::create(engine, run_id, new);
    let step = engine.submit_graph(run_id, graph(gates)).unwrap();
    assert_eq!(step.status, "waiting-approval");
    engine.release_run(run_id).unwrap();
}

#[test]
fn the_starter_may_not_approve_when_the_request_forbids_it() {
    let (_dir, mut engine) = open();
    start(
        &mut engine,
        "r1",
        Some("alice"),
        &[gate("a", json!({})), gate("b", json!({}))],
    );
    assert_eq!(
        engine.run_summary("r1").unwrap().started_by.as_deref(),
        Some("alice")
    );

    let mut own = req("r1", "a", "alice");
    own.forbid_starter = true;
    let err = engine.approve(own.clone()).unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    assert!(err.to_string().contains("alice started run r1"), "{err}");
    // Nothing was recorded: the gate still waits.
    let pending = engine
        .pending_approvals(&ApprovalFilter::default())
        .unwrap();
    assert_eq!(pending.len(), 2);

    // The starter may still deny their own run; without the rule they may approve.
    own.forbid_starter = false;
    assert_eq!(engine.approve(own).unwrap().status, "approved");
    let mut other = req("r1", "b", "bob");
    other.forbid_starter = true;
    assert_eq!(engine.approve(other).unwrap().status, "approved");
}

#[test]
fn scopes_cover_lower_levels_and_wildcards() {
    use smithers_core::decision::scope_covers;
    assert!(scope_covers("approve", "read"));
    assert!(scope_covers("approve", "execute"));
    assert!(!scope_covers("read", "approve"));
    assert!(scope_covers("admin", "deploy:prod"));
    assert!(scope_covers("deploy:*", "deploy:prod"));
    assert!(!scope_covers("deploy:*", "release:prod"));
    assert!(!scope_covers("approve", "deploy:prod"));

    let (_dir, mut engine) = open();
    start(
        &mut engine,
        "r1",
        None,
        &[gate("prod", json!({"allowedScopes": ["deploy:prod"]}))],
    );
    let mut r = req("r1", "prod", "carol");
    r.scopes = vec!["approve".into()];
    assert_eq!(engine.approve(r.clone()).unwrap_err().code(), "FORBIDDEN");
    r.scopes = vec!["deploy:*".into()];
    assert_eq!(
        engine.approve(r).unwrap().decided_by.as_deref(),
        Some("carol")
    );
}

#[test]
fn approvals_page_by_keyset_and_filter_by_status() {
    let (_dir, mut engine) = open();
    for i in 0..5 {
        start(
            &mut engine,
            &format!("r{i}"),
            None,
            &[gate("a", json!({})), gate("b", json!({}))],
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<ApprovalCursor> = None;
    loop {
        let page = engine
            .pending_approvals(&ApprovalFilter {
                limit: Some(3),
                after: after.clone(),
                ..ApprovalFilter::default()
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        after = Some(ApprovalCursor {
            requested_at_ms: last.requested_at_ms,
            run_id: last.run_id.clone(),
            node_id: last.node_id.clone(),
            iteration: last.iteration,
        });
        seen.extend(
            page.into_iter()
                .map(|a| format!("{}/{}", a.run_id, a.node_id)),
        );
    }
    assert_eq!(seen.len(), 10);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "no approval twice across pages: {seen:?}");

    engine.approve(req("r2", "a", "dave")).unwrap();
    let approved = engine
        .pending_approvals(&ApprovalFilter {
            status: Some("approved".into()),
            ..ApprovalFilter::default()
        })
        .unwrap();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].decided_by.as_deref(), Some("dave"));
    assert_eq!(
        approved[0].run_status, "running",
        "woken for a driver to pick up"
    );
    let all = engine
        .pending_approvals(&ApprovalFilter {
            status: Some("all".into()),
            ..ApprovalFilter::default()
        })
        .unwrap();
    assert_eq!(all.len(), 10);
    let err = engine
        .pending_approvals(&ApprovalFilter {
            status: Some("maybe".into()),
            ..ApprovalFilter::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("unknown approval status"), "{err}");
}

/// Pages through the listing with `filter`, `per` at a time; `between(engine, page_no, seen)`
/// runs after each page is read. Returns every row seen, in order.
fn page_through(
    engine: &mut Engine,
    filter: ApprovalFilter,
    per: i64,
    mut between: impl FnMut(&mut Engine, usize, &[ApprovalSummary]),
) -> Vec<ApprovalSummary> {
    let mut seen: Vec<ApprovalSummary> = Vec::new();
    let mut after: Option<ApprovalCursor> = None;
    for page_no in 0.. {
        let page = engine
            .pending_approvals(&ApprovalFilter {
                limit: Some(per),
                after: after.clone(),
                ..filter.clone()
            })
            .unwrap();
        assert!(page.len() <= per as usize);
        let Some(last) = page.last() else { break };
        after = Some(ApprovalCursor {
            requested_at_ms: last.requested_at_ms,
            run_id: last.run_id.clone(),
            node_id: last.node_id.clone(),
            iteration: last.iteration,
        });
        seen.extend(page);
        between(engine, page_no, &seen);
    }
    seen
}

fn sort_key(a: &ApprovalSummary) -> (i64, String, String, i64) {
    (
        a.requested_at_ms,
        a.run_id.clone(),
        a.node_id.clone(),
        a.iteration,
    )
}

#[test]
fn keyset_pages_follow_the_listing_order_across_ties_and_decisions_between_pages() {
    let dir = common::TestDb::new();
    let clock = ManualClock::new(1_000_000);
    let mut engine = Engine::open(dir.db()).unwrap();
    engine.set_clock(clock.clock());
    // 12 runs of three gates each; runs started in pairs share a request time, so ties are
    // broken by run id and node id. Run ids are created out of their sort order.
    let ids = [
        "r09", "r03", "r11", "r00", "r07", "r05", "r10", "r01", "r08", "r02", "r06", "r04",
    ];
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            clock.advance(1000);
        }
        start(
            &mut engine,
            id,
            None,
            &[
                gate("c", json!({})),
                gate("a", json!({})),
                gate("b", json!({})),
            ],
        );
    }
    let everything = engine
        .pending_approvals(&ApprovalFilter {
            limit: Some(1000),
            ..ApprovalFilter::default()
        })
        .unwrap();
    assert_eq!(everything.len(), 36);
    let keys: Vec<_> = everything.iter().map(sort_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "one page is in the listing's order");

    // Pages of 5, undisturbed: the same rows in the same order as one page.
    let paged = page_through(&mut engine, ApprovalFilter::default(), 5, |_, _, _| {});
    assert_eq!(paged.iter().map(sort_key).collect::<Vec<_>>(), keys);

    // Decisions between pages: behind the cursor (already seen: nothing changes ahead), at
    // the next row and further ahead (never shown: they stopped waiting before their page).
    let mut decided_ahead: Vec<(String, String)> = Vec::new();
    let paged = page_through(
        &mut engine,
        ApprovalFilter::default(),
        5,
        |e, page_no, seen| {
            let pick = match page_no {
                // r09/a was on the first page (behind the cursor); r00/a is further ahead.
                0 => vec![("r09", "a"), ("r00", "a")],
                1 => vec![("r11", "c"), ("r04", "b")],
                2 => vec![("r05", "b")],
                _ => vec![],
            };
            for (run, node) in pick {
                let pending = e
                    .pending_approvals(&ApprovalFilter {
                        run_id: Some(run.into()),
                        node_id: Some(node.into()),
                        ..ApprovalFilter::default()
                    })
                    .unwrap();
                if pending.is_empty() {
                    continue;
                }
                e.approve(req(run, node, "dave")).unwrap();
                let shown = seen.iter().any(|a| a.run_id == run && a.node_id == node);
                if !shown {
                    decided_ahead.push((run.into(), node.into()));
                }
            }
        },
    );
    let got: Vec<_> = paged.iter().map(sort_key).collect();
    let mut strictly = got.clone();
    strictly.dedup();
    assert_eq!(strictly.len(), got.len(), "no row twice");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {got:?}"
    );
    // What was shown: every gate, except those decided before their page was read (a gate
    // decided once shown changes nothing ahead of the cursor).
    let expected: Vec<_> = everything
        .iter()
        .filter(|a| !decided_ahead.contains(&(a.run_id.clone(), a.node_id.clone())))
        .map(sort_key)
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        decided_ahead,
        [("r00", "a"), ("r11", "c"), ("r04", "b")].map(|(r, n)| (r.to_string(), n.to_string())),
        "r09/a and r05/b were decided after they were shown"
    );

    // The filters keep the order and the cursor: one workflow's, one node's, one run's.
    let b_only = page_through(
        &mut engine,
        ApprovalFilter {
            node_id: Some("b".into()),
            workflow_name: Some("ops".into()),
            ..ApprovalFilter::default()
        },
        2,
        |_, _, _| {},
    );
    let want: Vec<_> = engine
        .pending_approvals(&ApprovalFilter {
            limit: Some(1000),
            ..ApprovalFilter::default()
        })
        .unwrap()
        .iter()
        .filter(|a| a.node_id == "b")
        .map(sort_key)
        .collect();
    assert_eq!(b_only.iter().map(sort_key).collect::<Vec<_>>(), want);
    assert_eq!(want.len(), 10, "12 b gates, r04/b and r05/b decided");
    let one_run = page_through(
        &mut engine,
        ApprovalFilter {
            run_id: Some("r07".into()),
            ..ApprovalFilter::default()
        },
        1,
        |_, _, _| {},
    );
    assert_eq!(
        one_run
            .iter()
            .map(|a| a.node_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    let none = engine
        .pending_approvals(&ApprovalFilter {
            workflow_name: Some("other".into()),
            ..ApprovalFilter::default()
        })
        .unwrap();
    assert!(none.is_empty());
}

/// `status: "all"` pages by the same keyset as the pending listing, over every status at
/// once: requested, approved, denied and withdrawn (cancelled) gates, ties on the request
/// time broken by run and node, every page size, `offset`, and the filters.
#[test]
fn the_all_listing_pages_by_keyset_over_every_status() {
    let dir = common::TestDb::new();
    let clock = ManualClock::new(1_000_000);
    let mut engine = Engine::open(dir.db()).unwrap();
    engine.set_clock(clock.clock());
    let ids = ["s5", "s1", "s7", "s0", "s3", "s6", "s2", "s4"];
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            clock.advance(1000);
        }
        start(
            &mut engine,
            id,
            None,
            &[
                gate("b", json!({})),
                gate("a", json!({})),
                gate("c", json!({})),
            ],
        );
    }
    clock.advance(1000);
    for (run, node) in [("s1", "a"), ("s0", "c"), ("s6", "b"), ("s4", "a")] {
        engine.approve(req(run, node, "dave")).unwrap();
    }
    for (run, node) in [("s5", "b"), ("s2", "c")] {
        engine.deny(req(run, node, "erin")).unwrap();
    }
    // Withdrawn: every request of a cancelled run.
    engine.cancel_run("s3").unwrap();
    let mut expected: Vec<ApprovalSummary> = Vec::new();
    for id in ids {
        expected.extend(engine.inspect(id).unwrap().approvals);
    }
    expected.sort_by_key(sort_key);
    let statuses = |rows: &[ApprovalSummary]| {
        let mut s: Vec<&str> = rows.iter().map(|a| a.status.as_str()).collect();
        s.sort();
        s.dedup();
        s.join(",")
    };
    assert_eq!(expected.len(), 24);
    assert_eq!(statuses(&expected), "approved,cancelled,denied,requested");
    let keys: Vec<_> = expected.iter().map(sort_key).collect();
    let all = || ApprovalFilter {
        status: Some("all".into()),
        ..ApprovalFilter::default()
    };

    for per in [1, 4, 7, 24, 100] {
        let paged = page_through(&mut engine, all(), per, |_, _, _| {});
        assert_eq!(
            paged.iter().map(sort_key).collect::<Vec<_>>(),
            keys,
            "pages of {per}"
        );
        assert_eq!(
            paged.iter().map(|a| a.status.as_str()).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|a| a.status.as_str())
                .collect::<Vec<_>>()
        );
    }
    // `offset` (and a cursor with it) counts in the same order.
    let page = engine
        .pending_approvals(&ApprovalFilter {
            limit: Some(5),
            offset: Some(7),
            ..all()
        })
        .unwrap();
    assert_eq!(page.iter().map(sort_key).collect::<Vec<_>>(), keys[7..12]);
    let cursor = &expected[3];
    let page = engine
        .pending_approvals(&ApprovalFilter {
            limit: Some(4),
            offset: Some(2),
            after: Some(ApprovalCursor {
                requested_at_ms: cursor.requested_at_ms,
                run_id: cursor.run_id.clone(),
                node_id: cursor.node_id.clone(),
                iteration: cursor.iteration,
            }),
            ..all()
        })
        .unwrap();
    assert_eq!(page.iter().map(sort_key).collect::<Vec<_>>(), keys[6..10]);
    // The filters keep the order: one node's, one workflow's, one run's.
    let a_only = page_through(
        &mut engine,
        ApprovalFilter {
            node_id: Some("a".into()),
            workflow_name: Some("ops".into()),
            ..all()
        },
        3,
        |_, _, _| {},
    );
    let want: Vec<_> = expected
        .iter()
        .filter(|a| a.node_id == "a")
        .map(sort_key)
        .collect();
    assert_eq!(a_only.iter().map(sort_key).collect::<Vec<_>>(), want);
    assert_eq!(statuses(&a_only), "approved,cancelled,requested");
    let one_run = page_through(
        &mut engine,
        ApprovalFilter {
            run_id: Some("s5".into()),
            ..all()
        },
        2,
        |_, _, _| {},
    );
    assert_eq!(
        one_run
            .iter()
            .map(|a| (a.node_id.as_str(), a.status.as_str()))
            .collect::<Vec<_>>(),
        [("a", "requested"), ("b", "denied"), ("c", "requested")]
    );
    let none = engine
        .pending_approvals(&ApprovalFilter {
            workflow_name: Some("other".into()),
            ..all()
        })
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn the_feed_orders_every_runs_events_and_orphans_are_found() {
    let dir = common::TestDb::new();
    let db = dir.db().to_path_buf();
    let mut a = Engine::open(&db).unwrap();
    let head = a.feed_head().unwrap();
    assert_eq!(head, 0);
    start(&mut a, "r1", None, &[gate("g", json!({}))]);
    start(&mut a, "r2", None, &[gate("g", json!({}))]);
    let feed = a.feed(0, 1000).unwrap();
    let ids: Vec<i64> = feed.iter().map(|e| e.feed_id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert!(feed.iter().any(|e| e.run_id == "r1") && feed.iter().any(|e| e.run_id == "r2"));
    let r1_last = feed.iter().rposition(|e| e.run_id == "r1").unwrap();
    let r2_first = feed.iter().position(|e| e.run_id == "r2").unwrap();
    assert!(r1_last < r2_first, "r1 was written before r2");

    // A decision from another connection (another process) shows up after the head, and
    // leaves its run running with no owner: an orphan for a watcher to drive.
    let head = a.feed_head().unwrap();
    assert!(a.orphaned_runs(10, true, None).unwrap().is_empty());
    let mut b = Engine::open(&db).unwrap();
    let outcome = b.approve(req("r2", "g", "erin")).unwrap();
    assert!(outcome.needs_resume);
    let new: Vec<String> = a
        .feed(head, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_string())
        .collect();
    assert!(new.contains(&"ApprovalGranted".to_string()), "{new:?}");
    let orphans = a.orphaned_runs(10, false, None).unwrap();
    assert_eq!(
        orphans
            .iter()
            .map(|r| r.run.run_id.as_str())
            .collect::<Vec<_>>(),
        ["r2"]
    );
}

/// Deciders on engines of their own (connections, as processes have) race for one gate:
/// exactly one decision is recorded, every other is `ALREADY_DECIDED` naming the winner. The
/// database decides, on either store.
#[test]
fn racing_deciders_on_separate_engines_record_one_decision() {
    let dir = common::TestDb::new();
    let mut setup = dir.engine();
    start(&mut setup, "race", None, &[gate("g", json!({}))]);
    drop(setup);
    let db = dir.db().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut engine = Engine::open(&db).unwrap();
                engine
                    .approve(req("race", "g", &format!("user{n}")))
                    .map(|o| o.decided_by)
                    .map_err(|e| (e.code(), e.details()))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0].clone().unwrap();
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.0, "ALREADY_DECIDED");
        assert_eq!(r.1["decidedBy"], json!(winner));
    }
    let rows = common::query(&dir, "SELECT decided_by FROM gate");
    assert_eq!(rows, vec![vec![json!(winner)]]);
}

/// A decision made on another connection wakes a waiter at once on PostgreSQL
/// (LISTEN/NOTIFY: no polling); a commit in another schema does not. SQLite has no such
/// signal: readers poll `data_version`, and the waiter is None.
#[test]
fn a_commit_elsewhere_wakes_a_change_waiter() {
    let dir = common::TestDb::new();
    let mut a = dir.engine();
    start(&mut a, "w1", None, &[gate("g", json!({}))]);
    let Some(mut waiter) = a.change_waiter().unwrap() else {
        assert!(!dir.is_postgres(), "PostgreSQL pushes commits");
        return;
    };
    assert!(dir.is_postgres());
    // Nothing committed: the wait times out.
    assert!(!waiter.wait(50).unwrap());
    // Another schema's commits are not this database's.
    let other = common::TestDb::new();
    start(&mut other.engine(), "x", None, &[gate("g", json!({}))]);
    assert!(!waiter.wait(50).unwrap());
    let waiting = std::thread::spawn(move || waiter.wait(30_000).unwrap());
    let mut b = dir.engine();
    b.approve(req("w1", "g", "erin")).unwrap();
    assert!(waiting.join().unwrap(), "woken by the decision");
}
