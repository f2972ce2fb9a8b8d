//! The conformance cases of [`crate::kyc`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// The review queue lists pending submissions oldest first; a decision is made once.
pub async fn kyc_queue_is_oldest_first_and_decisions_are_final(store: Arc<dyn Store>) {
    let (a, b) = (user(3_001, "k1@example.com"), user(3_002, "k2@example.com"));
    store.insert_user(&a).await.unwrap();
    store.insert_user(&b).await.unwrap();
    store.insert_kyc(&kyc(2, &b, "identity", 20)).await.unwrap();
    store
        .insert_kyc(&kyc(1, &a, "driving_licence", 10))
        .await
        .unwrap();
    store.insert_kyc(&kyc(3, &a, "identity", 30)).await.unwrap();
    let queue = store.kyc_queue(10).await.unwrap();
    let ids: Vec<&str> = queue.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            kyc(1, &a, "", 0).id,
            kyc(2, &a, "", 0).id,
            kyc(3, &a, "", 0).id
        ]
    );
    assert_eq!(store.kyc_queue(1).await.unwrap().len(), 1);
    let first = &queue[0].id;
    let done = store
        .decide_kyc(first, "verified", None, "staff-1", TimestampMs(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            done.state.as_str(),
            done.decided_by.as_deref(),
            done.decided_at
        ),
        ("verified", Some("staff-1"), Some(TimestampMs(40)))
    );
    assert!(
        store
            .decide_kyc(
                first,
                "rejected",
                Some("blurry"),
                "staff-2",
                TimestampMs(50)
            )
            .await
            .unwrap()
            .is_none()
    );
    let mine = store.user_kyc(&a.id).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].kind, "identity", "newest first");
    assert_eq!(store.kyc_queue(10).await.unwrap().len(), 2);
    // Debug output carries no personal data.
    assert!(!format!("{:?}", mine[0]).contains("Ana"));
}
