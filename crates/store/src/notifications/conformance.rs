//! The conformance cases of [`crate::notifications`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// One outbox message per event key; due messages come back until sent or given up.
pub async fn the_outbox_sends_each_event_once_and_retries_when_due(store: Arc<dyn Store>) {
    let ana = user(4_001, "n@example.com");
    store.insert_user(&ana).await.unwrap();
    let msg = |n: u32, key: &str| crate::OutboxMessage {
        id: format!("00000000-0000-7000-b000-{n:012}"),
        event_key: key.into(),
        user_id: ana.id.clone(),
        channel: "webhook".into(),
        template: "receipt".into(),
        payload: "{}".into(),
        state: "pending".into(),
        attempts: 0,
        next_attempt_at: TimestampMs(100),
        last_error: None,
        created_at: TimestampMs(100),
    };
    assert!(
        store
            .enqueue_notification(&msg(1, "receipt:b1:webhook"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue_notification(&msg(2, "receipt:b1:webhook"))
            .await
            .unwrap(),
        "same event, not again"
    );
    assert!(
        store
            .due_notifications(TimestampMs(99), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.due_notifications(TimestampMs(100), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    store
        .finish_notification(
            &due[0].id,
            "pending",
            TimestampMs(200),
            Some("HTTP 500"),
            TimestampMs(100),
        )
        .await
        .unwrap();
    assert!(
        store
            .due_notifications(TimestampMs(150), 10)
            .await
            .unwrap()
            .is_empty(),
        "backed off"
    );
    let again = store.due_notifications(TimestampMs(200), 10).await.unwrap();
    assert_eq!(
        (again[0].attempts, again[0].last_error.as_deref()),
        (1, Some("HTTP 500"))
    );
    store
        .finish_notification(
            &again[0].id,
            "sent",
            TimestampMs(200),
            None,
            TimestampMs(201),
        )
        .await
        .unwrap();
    assert!(
        store
            .due_notifications(TimestampMs(10_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .notification("receipt:b1:webhook")
            .await
            .unwrap()
            .unwrap()
            .state,
        "sent"
    );
    let pref = crate::NotificationPreference {
        channel: "webhook".into(),
        enabled: true,
        address: Some("https://example.com/hook".into()),
    };
    store
        .set_notification_preference(&ana.id, &pref)
        .await
        .unwrap();
    let off = crate::NotificationPreference {
        enabled: false,
        ..pref.clone()
    };
    store
        .set_notification_preference(&ana.id, &off)
        .await
        .unwrap();
    assert_eq!(
        store.notification_preferences(&ana.id).await.unwrap(),
        vec![off]
    );
}
