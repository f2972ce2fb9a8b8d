//! The payment orchestrator under faults: the primary provider fails or times out mid-flow and
//! the fallback takes over; no charge is lost or doubled, retries with the same key charge
//! once, and the ledger balances. On SQLite, and on PostgreSQL when its URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{sync::Arc, time::Duration};

use mobility_core::{Currency, Money};
use mobility_services::payments::{PaymentError, PaymentProvider, Payments, SandboxProvider};
use mobility_store::testsuite::TestStore;

fn eur(m: i64) -> Money {
    Money::new(m, Currency::parse("EUR").unwrap())
}

async fn scenario(t: Option<TestStore>) {
    let Some(t) = t else { return };
    let primary = Arc::new(SandboxProvider::new("primary"));
    let fallback = Arc::new(SandboxProvider::new("fallback"));
    let payments = Payments::new(
        t.store.clone(),
        vec![
            primary.clone() as Arc<dyn PaymentProvider>,
            fallback.clone(),
        ],
        Duration::from_millis(200),
        Arc::new(mobility_server::SystemClock),
    );
    // Healthy: the primary takes it; a retry with the same key charges nothing more.
    let p = payments
        .charge("trip:1", "u1", Some("1"), eur(625))
        .await
        .unwrap();
    assert_eq!(
        (p.state.as_str(), p.provider.as_deref()),
        ("succeeded", Some("primary"))
    );
    let again = payments
        .charge("trip:1", "u1", Some("1"), eur(625))
        .await
        .unwrap();
    assert_eq!(again, p);
    assert_eq!(primary.charged(), (625, 1));

    // The primary charges, then goes quiet: the orchestrator finds the charge there and does not
    // charge the fallback too.
    primary.hang_after_charging_next(1);
    let p = payments
        .charge("trip:4", "u1", Some("4"), eur(200))
        .await
        .unwrap();
    assert_eq!(p.provider.as_deref(), Some("primary"), "{p:?}");

    // The primary fails (both attempts): the fallback takes over.
    primary.fail_next(2);
    let p = payments
        .charge("trip:2", "u1", Some("2"), eur(400))
        .await
        .unwrap();
    assert_eq!(p.provider.as_deref(), Some("fallback"));

    // The primary hangs before charging: it times out, says it did not charge, the fallback
    // takes it.
    primary.hang_next(1);
    let p = payments
        .charge("trip:3", "u1", Some("3"), eur(300))
        .await
        .unwrap();
    assert_eq!(p.provider.as_deref(), Some("fallback"), "{p:?}");

    // Three failures in a row opened the primary's circuit: it is skipped now.
    // Both down: recorded as failed, no ledger movement; the same key stays failed.
    primary.fail_next(10);
    fallback.fail_next(10);
    let p = payments
        .charge("trip:5", "u1", Some("5"), eur(100))
        .await
        .unwrap();
    assert_eq!(p.state.as_str(), "failed");
    assert!(p.detail.as_deref().unwrap().contains("primary"), "{p:?}");
    primary.fail_next(0);
    fallback.fail_next(0);

    // Nothing lost or doubled: what the providers hold is what the ledger says, and it balances.
    let (primary_total, primary_n) = primary.charged();
    let (fallback_total, fallback_n) = fallback.charged();
    assert_eq!((primary_total, primary_n), (825, 2));
    assert_eq!((fallback_total, fallback_n), (700, 2));
    let balances = t.store.ledger_balances().await.unwrap();
    let get = |a: &str| {
        balances
            .iter()
            .find(|(acc, _, _)| acc == a)
            .map_or(0, |(_, _, v)| *v)
    };
    assert_eq!(get("psp:primary"), primary_total);
    assert_eq!(get("psp:fallback"), fallback_total);
    assert_eq!(get("revenue:trips"), -(primary_total + fallback_total));
    assert_eq!(balances.iter().map(|(_, _, v)| v).sum::<i64>(), 0);

    // A provider that cannot say whether it charged: nothing is recorded, and a later retry
    // with the same key settles it exactly once.
    #[derive(Debug)]
    struct Mute;
    #[async_trait::async_trait]
    impl PaymentProvider for Mute {
        fn name(&self) -> &str {
            "mute"
        }
        async fn charge(
            &self,
            _: &str,
            _: Money,
        ) -> Result<String, mobility_services::payments::ProviderError> {
            std::future::pending().await
        }
        async fn lookup(
            &self,
            _: &str,
        ) -> Result<Option<String>, mobility_services::payments::ProviderError> {
            std::future::pending().await
        }
        async fn refund(
            &self,
            _: &str,
            _: &str,
            _: Money,
        ) -> Result<String, mobility_services::payments::ProviderError> {
            std::future::pending().await
        }
        async fn authorize(
            &self,
            _: &str,
            _: Money,
        ) -> Result<String, mobility_services::payments::ProviderError> {
            std::future::pending().await
        }
        async fn capture(
            &self,
            _: &str,
            _: &str,
            _: Money,
        ) -> Result<String, mobility_services::payments::ProviderError> {
            std::future::pending().await
        }
        async fn void(&self, _: &str) -> Result<(), mobility_services::payments::ProviderError> {
            std::future::pending().await
        }
    }
    let mute = Payments::new(
        t.store.clone(),
        vec![Arc::new(Mute) as Arc<dyn PaymentProvider>, fallback.clone()],
        Duration::from_millis(100),
        Arc::new(mobility_server::SystemClock),
    );
    assert!(matches!(
        mute.charge("trip:6", "u1", None, eur(50)).await,
        Err(PaymentError::Unknown(_))
    ));
    assert!(t.store.payment("trip:6").await.unwrap().is_none());
    let p = payments
        .charge("trip:6", "u1", None, eur(50))
        .await
        .unwrap();
    assert_eq!(p.state.as_str(), "succeeded");

    // Refunds go back through the provider that charged, once per key, never above the charge.
    let r = payments
        .refund("refund:1:a", "trip:1", eur(200), 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.kind.as_str(), r.provider.as_deref()),
        ("refund", Some("primary"))
    );
    let again = payments
        .refund("refund:1:a", "trip:1", eur(200), 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, r, "same key, same refund");
    let too_much = payments
        .refund("refund:1:b", "trip:1", eur(500), 200)
        .await
        .unwrap();
    assert!(
        too_much.is_err(),
        "625 charged, 200 refunded: 500 more is too much"
    );
    assert!(
        payments
            .refund("refund:x", "trip:5", eur(10), 0)
            .await
            .unwrap()
            .is_err(),
        "trip:5 failed: nothing to refund"
    );
    assert_eq!(primary.refunded(), 200);
    let balances = t.store.ledger_balances().await.unwrap();
    let get = |a: &str| {
        balances
            .iter()
            .find(|(acc, _, _)| acc == a)
            .map_or(0, |(_, _, v)| *v)
    };
    assert_eq!(get("psp:primary"), primary.charged().0 - primary.refunded());
    assert_eq!(balances.iter().map(|(_, _, v)| v).sum::<i64>(), 0);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_is_exact_on_sqlite() {
    scenario(mobility_store::testsuite::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_is_exact_on_postgres() {
    scenario(mobility_store::testsuite::postgres().await).await;
}

/// Pre-authorisation: a hold is placed once per key and moves no money; the end captures the
/// fare from it (and charges any excess on top); a zero fare or a failed trip releases it; a
/// declined hold is recorded as failed. The ledger balances throughout.
async fn holds(t: Option<TestStore>) {
    let Some(t) = t else { return };
    let primary = Arc::new(SandboxProvider::new("primary"));
    let fallback = Arc::new(SandboxProvider::new("fallback"));
    let payments = Payments::new(
        t.store.clone(),
        vec![
            primary.clone() as Arc<dyn PaymentProvider>,
            fallback.clone(),
        ],
        Duration::from_millis(200),
        Arc::new(mobility_server::SystemClock),
    );
    // The primary is down: the fallback holds it; retrying the key places nothing more.
    primary.fail_next(1);
    let hold = payments
        .authorize("auth:1", "u1", Some("1"), eur(850))
        .await
        .unwrap();
    assert_eq!(
        (hold.state.as_str(), hold.provider.as_deref()),
        ("authorized", Some("fallback"))
    );
    assert_eq!(
        payments
            .authorize("auth:1", "u1", Some("1"), eur(850))
            .await
            .unwrap(),
        hold
    );
    assert_eq!(
        (fallback.held(), fallback.charged().0),
        (850, 0),
        "a hold moves no money"
    );
    assert!(
        t.store
            .ledger_balances()
            .await
            .unwrap()
            .iter()
            .all(|(_, _, v)| *v == 0)
    );

    // Captured: the fare, at the provider that holds it, once per key.
    let paid = payments.capture("trip:1", &hold, eur(325)).await.unwrap();
    assert_eq!(
        (paid.state.as_str(), paid.provider.as_deref(), paid.amount),
        ("succeeded", Some("fallback"), eur(325))
    );
    assert_eq!(
        payments
            .capture("trip:1", &hold, eur(325))
            .await
            .unwrap()
            .idempotency_key,
        "trip:1"
    );
    assert_eq!((fallback.held(), fallback.charged()), (0, (325, 1)));

    // A fare above the hold: the hold is captured whole and the rest charged on top.
    let hold2 = payments
        .authorize("auth:2", "u1", Some("2"), eur(850))
        .await
        .unwrap();
    let paid = payments
        .capture("trip:2", &hold2, eur(1_000))
        .await
        .unwrap();
    assert_eq!((paid.state.as_str(), paid.amount), ("succeeded", eur(850)));
    let rest = t.store.payment("trip:2:rest").await.unwrap().unwrap();
    assert_eq!((rest.state.as_str(), rest.amount), ("succeeded", eur(150)));

    // A free trip, or one that never started, releases the hold.
    let hold3 = payments
        .authorize("auth:3", "u1", Some("3"), eur(850))
        .await
        .unwrap();
    let free = payments.capture("trip:3", &hold3, eur(0)).await.unwrap();
    assert_eq!(
        (free.state.as_str(), free.provider.as_deref()),
        ("succeeded", None)
    );
    let hold4 = payments
        .authorize("auth:4", "u1", Some("4"), eur(850))
        .await
        .unwrap();
    payments.void(&hold4).await;
    assert_eq!(primary.held() + fallback.held(), 0, "no hold left behind");

    // Declined: recorded as failed, nothing held.
    primary.decline_next(1);
    let refused = payments
        .authorize("auth:5", "u1", Some("5"), eur(850))
        .await
        .unwrap();
    assert_eq!(refused.state.as_str(), "failed");
    assert!(refused.detail.unwrap().contains("declined"));

    let balances = t.store.ledger_balances().await.unwrap();
    assert_eq!(
        balances.iter().map(|(_, _, v)| v).sum::<i64>(),
        0,
        "the books balance"
    );
    let revenue: i64 = balances
        .iter()
        .filter(|(a, _, _)| a == "revenue:trips")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(revenue, -(325 + 850 + 150));
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_sqlite() {
    holds(mobility_store::testsuite::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_on_postgres() {
    holds(mobility_store::testsuite::postgres().await).await;
}
