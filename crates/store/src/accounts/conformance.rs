//! The conformance cases of [`crate::accounts`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Tokens are found by secret digest, listed newest first, and revoked once.
pub async fn api_tokens_issue_find_and_revoke(store: Arc<dyn Store>) {
    let token = |id: &str, role, at| ApiToken {
        id: id.to_owned(),
        role,
        label: format!("{id} label"),
        secret_sha256: format!("sha-{id}"),
        created_at: TimestampMs(at),
        revoked_at: None,
    };
    store
        .insert_api_token(&token("t1", Role::Staff, 10))
        .await
        .unwrap();
    store
        .insert_api_token(&token("t2", Role::Gateway, 20))
        .await
        .unwrap();
    let err = store
        .insert_api_token(&token("t1", Role::Admin, 30))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(
        store.api_token_by_secret("sha-t2").await.unwrap(),
        Some(token("t2", Role::Gateway, 20))
    );
    assert_eq!(store.api_token_by_secret("nope").await.unwrap(), None);
    let ids: Vec<String> = store
        .api_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["t2", "t1"]);
    assert!(store.revoke_api_token("t1", TimestampMs(40)).await.unwrap());
    assert!(
        store.revoke_api_token("t1", TimestampMs(50)).await.unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.revoke_api_token("t9", TimestampMs(50)).await.unwrap());
    let t1 = store.api_token_by_secret("sha-t1").await.unwrap().unwrap();
    assert_eq!(
        t1.revoked_at,
        Some(TimestampMs(40)),
        "first revocation time is kept"
    );
}

/// Accounts: one per e-mail; found by e-mail and by id.
pub async fn users_are_unique_by_email(store: Arc<dyn Store>) {
    let ana = user(1, "ana@example.com");
    store.insert_user(&ana).await.unwrap();
    assert!(matches!(
        store.insert_user(&user(2, "ana@example.com")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.user_by_email("ana@example.com").await.unwrap(),
        Some(ana.clone())
    );
    assert_eq!(store.user(&ana.id).await.unwrap(), Some(ana));
    assert_eq!(store.user_by_email("bo@example.com").await.unwrap(), None);
}

/// A refresh token works once; presenting it again revokes every token of its login.
pub async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(store: Arc<dyn Store>) {
    let ana = user(3, "ana3@example.com");
    store.insert_user(&ana).await.unwrap();
    let first = RefreshToken {
        token_sha256: "a".repeat(64),
        user_id: ana.id.clone(),
        family_id: "family-1".into(),
        created_at: TimestampMs(10),
        expires_at: TimestampMs(1_000),
    };
    store.insert_refresh_token(&first).await.unwrap();
    let b = "b".repeat(64);
    let c = "c".repeat(64);
    assert_eq!(
        store
            .rotate_refresh_token(&first.token_sha256, &b, TimestampMs(1_000), TimestampMs(20))
            .await
            .unwrap(),
        Rotation::Rotated {
            user_id: ana.id.clone()
        }
    );
    // The successor works...
    assert_eq!(
        store
            .rotate_refresh_token(&b, &c, TimestampMs(1_000), TimestampMs(30))
            .await
            .unwrap(),
        Rotation::Rotated {
            user_id: ana.id.clone()
        }
    );
    // ...but the first token again is theft: the family dies, including the newest token.
    assert_eq!(
        store
            .rotate_refresh_token(
                &first.token_sha256,
                &"d".repeat(64),
                TimestampMs(1_000),
                TimestampMs(40)
            )
            .await
            .unwrap(),
        Rotation::ReuseDetected
    );
    assert_eq!(
        store
            .rotate_refresh_token(&c, &"e".repeat(64), TimestampMs(1_000), TimestampMs(50))
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // Unknown and expired tokens are invalid.
    assert_eq!(
        store
            .rotate_refresh_token(
                &"f".repeat(64),
                &"g".repeat(64),
                TimestampMs(1_000),
                TimestampMs(50)
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
    let old = RefreshToken {
        token_sha256: "h".repeat(64),
        family_id: "family-2".into(),
        expires_at: TimestampMs(100),
        ..first.clone()
    };
    store.insert_refresh_token(&old).await.unwrap();
    assert_eq!(
        store
            .rotate_refresh_token(
                &old.token_sha256,
                &"i".repeat(64),
                TimestampMs(1_000),
                TimestampMs(100)
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // Logout revokes the family.
    let live = RefreshToken {
        token_sha256: "j".repeat(64),
        family_id: "family-3".into(),
        ..first
    };
    store.insert_refresh_token(&live).await.unwrap();
    assert!(
        store
            .revoke_refresh_family(&live.token_sha256, TimestampMs(60))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .rotate_refresh_token(
                &live.token_sha256,
                &"k".repeat(64),
                TimestampMs(1_000),
                TimestampMs(70)
            )
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(
        !store
            .revoke_refresh_family(&"z".repeat(64), TimestampMs(60))
            .await
            .unwrap()
    );
}
