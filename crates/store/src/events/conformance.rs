//! The conformance cases of [`crate::events`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A change and its domain event are written in one transaction: a change that does not
/// happen (a lost race, a refused insert) leaves no event, and the relay reads them in order.
pub async fn store_changes_and_their_events_commit_together(store: Arc<dyn Store>) {
    use mobility_core::{DomainEvent, NewEvent};
    let types = |store: &Arc<dyn Store>| {
        let store = store.clone();
        async move {
            store
                .outbox_events(0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event.event.type_name())
                .collect::<Vec<_>>()
        }
    };
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let v = vehicle(900, VehicleType::Scooter);
    store.insert_vehicle(&v, SECRET).await.unwrap();
    let (a, b) = (
        user(9_001, "ev-a@example.com"),
        user(9_002, "ev-b@example.com"),
    );
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    assert!(types(&store).await.is_empty());
    let first = booking(90, &a, &v, 10_000);
    store.insert_booking(&first).await.unwrap();
    // The vehicle is taken: refused, and no event.
    assert!(
        store
            .insert_booking(&booking(91, &b, &v, 10_000))
            .await
            .is_err()
    );
    assert_eq!(types(&store).await, vec!["booking.changed"]);
    store
        .transition_booking(&first.id, "reserved", "cancelled", TimestampMs(20))
        .await
        .unwrap()
        .unwrap();
    // Lost compare-and-set: no event.
    assert!(
        store
            .transition_booking(&first.id, "reserved", "cancelled", TimestampMs(21))
            .await
            .unwrap()
            .is_none()
    );
    let change = v
        .decide(
            &[EventType::ProviderDropOff],
            VehicleState::Available,
            TimestampMs(1_700_000_001_000),
        )
        .unwrap();
    store.record_state_change(&change).await.unwrap();
    // A stale change is a conflict: no event.
    assert!(store.record_state_change(&change).await.is_err());
    let k = kyc(90, &a, "identity", 5);
    store.insert_kyc(&k).await.unwrap();
    store
        .decide_kyc(&k.id, "verified", None, "staff-1", TimestampMs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .decide_kyc(&k.id, "rejected", Some("late"), "staff-2", TimestampMs(31))
            .await
            .unwrap()
            .is_none()
    );
    let admin = NewEvent::new(
        Uuid::from_u128(77),
        None,
        TimestampMs(40),
        DomainEvent::AdminChanged {
            actor: "token:abc".into(),
            action: "PUT /v1/admin/cities/{city}".into(),
            target: "/v1/admin/cities/barcelona".into(),
            at: TimestampMs(40),
        },
    );
    store.record_event(&admin).await.unwrap();
    store.record_event(&admin).await.unwrap();
    assert_eq!(
        types(&store).await,
        vec![
            "booking.changed",
            "booking.changed",
            "lifecycle.state_changed",
            "account.kyc_decided",
            "admin.changed"
        ]
    );
    let all = store.outbox_events(0, 100).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    match &all[1].event.event {
        DomainEvent::BookingChanged {
            from, to, booking, ..
        } => {
            assert_eq!(
                (from.as_deref(), to.as_str(), booking.as_str()),
                (Some("reserved"), "cancelled", first.id.as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        all[2].event.city.as_ref().map(CityId::as_str),
        Some("barcelona")
    );
    assert_eq!(all[4].event, admin);
    // Relayed ones are deleted; the rest stay, in order.
    assert_eq!(store.delete_outbox_events(all[2].seq).await.unwrap(), 3);
    let rest = store.outbox_events(0, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![all[3].seq, all[4].seq]
    );
    assert_eq!(store.outbox_events(all[3].seq, 100).await.unwrap().len(), 1);
}
