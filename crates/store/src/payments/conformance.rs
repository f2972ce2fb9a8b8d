//! The conformance cases of [`crate::payments`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A payment is recorded once per idempotency key, with its journal entry; the ledger balances.
pub async fn payments_are_idempotent_and_the_ledger_balances(store: Arc<dyn Store>) {
    use mobility_core::payments::JournalEntry;
    let eur = |m| mobility_core::Money::new(m, Currency::parse("EUR").unwrap());
    let pay = |key: &str, amount: i64, provider: &str| crate::PaymentRecord {
        idempotency_key: key.into(),
        user_id: "u1".into(),
        booking_id: Some("b1".into()),
        kind: PaymentKind::Charge,
        amount: eur(amount),
        state: PaymentState::Succeeded,
        provider: Some(provider.into()),
        provider_ref: Some(format!("{provider}-{key}")),
        detail: None,
        created_at: TimestampMs(1),
    };
    let first = pay("trip:b1", 625, "primary");
    let entry = JournalEntry::trip_charge("primary", eur(625)).unwrap();
    assert_eq!(
        store.record_payment(&first, Some(&entry)).await.unwrap(),
        first
    );
    // A retry, even naming another provider and amount, returns the first outcome and posts nothing.
    let retry = pay("trip:b1", 999, "fallback");
    let again = store
        .record_payment(
            &retry,
            Some(&JournalEntry::trip_charge("fallback", eur(999)).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    let second = pay("trip:b2", 400, "fallback");
    store
        .record_payment(
            &second,
            Some(&JournalEntry::trip_charge("fallback", eur(400)).unwrap()),
        )
        .await
        .unwrap();
    let balances = store.ledger_balances().await.unwrap();
    let get = |a: &str| {
        balances
            .iter()
            .find(|(acc, _, _)| acc == a)
            .map(|(_, _, v)| *v)
    };
    assert_eq!(get("psp:primary"), Some(625));
    assert_eq!(get("psp:fallback"), Some(400));
    assert_eq!(get("revenue:trips"), Some(-1_025));
    assert_eq!(
        balances.iter().map(|(_, _, v)| v).sum::<i64>(),
        0,
        "the books reconcile"
    );
    assert_eq!(store.payment("trip:b2").await.unwrap(), Some(second));
    assert_eq!(store.payment("nope").await.unwrap(), None);
    assert_eq!(
        store.account_balance("psp:primary", "EUR").await.unwrap(),
        625
    );
    assert_eq!(
        store.account_balance("psp:primary", "USD").await.unwrap(),
        0
    );
    assert_eq!(store.account_balance("nobody", "EUR").await.unwrap(), 0);
}
