//! The conformance cases of [`crate::commands`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A command is resolved by exactly one decider; expiry takes only overdue pending ones; a late
/// ack is noted without changing the outcome.
pub async fn commands_resolve_once_and_expire(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(31, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let cmd = |id: &str, created: i64, kind| CommandRecord {
        id: id.to_owned(),
        vehicle_id: v.id,
        kind,
        state: CommandState::Pending,
        detail: None,
        created_at: TimestampMs(created),
        deadline: TimestampMs(created + 1_000),
        finished_at: None,
        late_ack_at: None,
    };
    store
        .insert_command(&cmd("c1", 100, CommandKind::Unlock))
        .await
        .unwrap();
    store
        .insert_command(&cmd(
            "c2",
            200,
            CommandKind::SetSpeedLimit {
                speed_limit_kmh: 15,
            },
        ))
        .await
        .unwrap();
    store
        .insert_command(&cmd("c3", 5_000, CommandKind::Ring))
        .await
        .unwrap();
    let mut ghost = cmd("c4", 1, CommandKind::Lock);
    ghost.vehicle_id = VehicleId::from_uuid(Uuid::from_u128(4242));
    assert!(matches!(
        store.insert_command(&ghost).await.unwrap_err(),
        StoreError::MissingReference(_)
    ));

    assert!(
        store
            .resolve_command("c1", CommandState::Acked, None, TimestampMs(150))
            .await
            .unwrap()
    );
    assert!(
        !store
            .resolve_command("c1", CommandState::Failed, Some("x"), TimestampMs(160))
            .await
            .unwrap(),
        "only once"
    );
    let expired = store.expire_commands(TimestampMs(2_000)).await.unwrap();
    assert_eq!(
        expired,
        vec!["c2".to_owned()],
        "c1 is resolved, c3 not yet due"
    );
    assert!(
        !store
            .resolve_command("c2", CommandState::Acked, None, TimestampMs(2_100))
            .await
            .unwrap()
    );
    store.note_late_ack("c2", TimestampMs(2_100)).await.unwrap();
    let c2 = store.command("c2").await.unwrap().unwrap();
    assert_eq!(
        (c2.state, c2.finished_at, c2.late_ack_at),
        (
            CommandState::TimedOut,
            Some(TimestampMs(2_000)),
            Some(TimestampMs(2_100))
        )
    );
    assert_eq!(
        c2.kind,
        CommandKind::SetSpeedLimit {
            speed_limit_kmh: 15
        }
    );
    let c1 = store.command("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.state, c1.finished_at),
        (CommandState::Acked, Some(TimestampMs(150)))
    );
    let ids: Vec<String> = store
        .vehicle_commands(&v.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["c3", "c2", "c1"]);
    assert_eq!(store.command("nope").await.unwrap(), None);
}
