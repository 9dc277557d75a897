use super::*;

/// The node machine as a diagram: every (state, event) pair and where it goes, or `None`
/// where the move is illegal. Written out on its own, so a change to [`MOVES`] must be
/// made here too.
fn expected(from: NodeState, event: NodeEvent) -> Option<NodeState> {
    use NodeEvent as E;
    use NodeState as S;
    Some(match (from, event) {
        (S::Pending, E::Start) => S::InProgress,
        (S::InProgress, E::Finish) => S::Finished,
        (S::InProgress, E::Retry | E::Abandon) => S::Pending,
        (S::InProgress, E::Fail) => S::Failed,
        (S::Pending, E::RequestApproval) => S::WaitingApproval,
        (S::Pending | S::WaitingApproval, E::ApproveDecision) => S::Finished,
        (S::WaitingApproval, E::DenyContinue | E::ApproveReview) => S::Finished,
        (S::WaitingApproval, E::ApproveGate | E::PushBack | E::SubRunEnded) => S::Pending,
        (S::WaitingApproval, E::DenyFail) => S::Failed,
        (S::Pending | S::WaitingApproval, E::Skip) => S::Skipped,
        (S::Pending | S::InProgress | S::WaitingApproval, E::Cancel) => S::Cancelled,
        (S::InProgress, E::AwaitReview | E::AwaitSubRun | E::AwaitTimer) => S::WaitingApproval,
        (S::WaitingApproval, E::TimerFired) => S::Finished,
        (S::WaitingApproval, E::Reject) => S::Rejected,
        (S::Finished | S::Failed | S::Skipped | S::WaitingApproval, E::Rewind) => S::Pending,
        (S::WaitingApproval, E::RefuseAnswer) => S::WaitingApproval,
        _ => return None,
    })
}

#[test]
fn every_move_and_nothing_else() {
    let mut legal = 0;
    for &from in NodeState::ALL {
        for &event in NodeEvent::ALL {
            let got = next(from, event).ok();
            assert_eq!(got, expected(from, event), "{from:?} --{event:?}-->");
            legal += usize::from(got.is_some());
        }
    }
    assert_eq!(legal, MOVES.len(), "a move is listed twice");
}

#[test]
fn finished_nodes_never_restart_and_rejected_ones_never_come_back() {
    for event in [E::Start, E::RequestApproval, E::Skip] {
        assert!(next(S::Finished, event).is_err());
    }
    for event in [E::Start, E::ApproveReview, E::PushBack, E::Skip, E::Rewind] {
        assert!(next(S::Rejected, event).is_err(), "{event:?}");
    }
    assert!(next(S::InProgress, E::Rewind).is_err());
}

#[test]
fn a_finished_attempt_writes_its_output_then_the_node_then_the_attempt() {
    let key = NodeKey::new("r", "t", 0);
    let schema = json!({"type": "object", "properties": {"v": {"type": "number"}}});
    let table = Rc::new(OutputTable::new("step", &schema).unwrap());
    let (to, effects) = finish(&key, S::InProgress, 2, &table, json!({"v": 1})).unwrap();
    assert_eq!(to, S::Finished);
    let kinds: Vec<&str> = effects
        .iter()
        .map(|e| match e {
            Effect::WriteOutput { publish: true, .. } => "write",
            Effect::SetNode {
                state: S::Finished, ..
            } => "node",
            Effect::CloseAttempt {
                state: AttemptState::Finished,
                attempt: 2,
                ..
            } => "attempt",
            Effect::Emit {
                kind: EventKind::NodeFinished,
                ..
            } => "event",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["write", "node", "attempt", "event"]);
}

#[test]
fn a_failure_without_continue_on_fail_fails_the_run_with_the_tasks_code() {
    let key = NodeKey::new("r", "t", 0);
    let error = TaskError {
        code: Some("BOOM".into()),
        message: "it broke".into(),
        ..TaskError::default()
    };
    let (to, effects) = fail(&key, S::InProgress, 1, &error, false, false).unwrap();
    assert_eq!(to, S::Failed);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::FailRun(RunError { code, .. }) if code == "BOOM"))
    );
    let (to, effects) = fail(&key, S::InProgress, 1, &error, true, false).unwrap();
    assert_eq!(to, S::Pending);
    assert!(!effects.iter().any(|e| matches!(e, Effect::FailRun(_))));
}
