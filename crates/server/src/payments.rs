//! The payment orchestrator (seed 000): providers behind one interface, tried in order
//! (primary, then fallbacks) under a circuit breaker each, with bounded retries and time-outs;
//! one idempotency key per payment, so a retried call never charges twice; every successful
//! movement is posted to the double-entry ledger in the same transaction as the payment record.
//!
//! The built-in provider is a **sandbox** (no money moves) for development and demos; real
//! payment service providers implement [`PaymentProvider`].

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use mobility_core::{
    Money,
    payments::{Breaker, JournalEntry},
};
use mobility_store::{PaymentRecord, Store, StoreError};
use parking_lot::Mutex;

/// Why a provider call did not charge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the payment (card declined…): trying elsewhere would not help.
    #[error("declined: {0}")]
    Declined(String),
    /// The provider is down or erred: another provider may take it.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// A payment service provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    /// Its name (ledger accounts are `psp:<name>`).
    fn name(&self) -> &str;
    /// Charges `amount` under an idempotency key (a repeated key returns the first charge).
    async fn charge(&self, key: &str, amount: Money) -> Result<String, ProviderError>;
    /// The reference of the charge made under `key`, if one was made.
    async fn lookup(&self, key: &str) -> Result<Option<String>, ProviderError>;
    /// Refunds (part of) a charge, under its own idempotency key.
    async fn refund(
        &self,
        key: &str,
        charge_ref: &str,
        amount: Money,
    ) -> Result<String, ProviderError>;
}

#[derive(Debug, Default)]
struct SandboxState {
    charges: HashMap<String, (String, Money)>,
    refunds: HashMap<String, (String, Money)>,
    fail_next: u32,
    hang_next: u32,
    hang_after_charging_next: u32,
}

/// A sandbox provider: it records charges in memory and moves no money. Faults can be injected
/// for tests and demos (fail, hang before charging, hang after charging).
#[derive(Debug)]
pub struct SandboxProvider {
    name: String,
    state: Mutex<SandboxState>,
}

impl SandboxProvider {
    /// A sandbox named `name`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: Mutex::new(SandboxState::default()),
        }
    }

    /// The next `n` charges fail as unavailable.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().fail_next = n;
    }

    /// The next `n` charges hang without charging.
    pub fn hang_next(&self, n: u32) {
        self.state.lock().hang_next = n;
    }

    /// The next `n` charges charge, then hang (the caller times out not knowing).
    pub fn hang_after_charging_next(&self, n: u32) {
        self.state.lock().hang_after_charging_next = n;
    }

    /// Total refunded, minor units.
    #[must_use]
    pub fn refunded(&self) -> i64 {
        self.state
            .lock()
            .refunds
            .values()
            .map(|(_, m)| m.minor)
            .sum()
    }

    /// Total charged, minor units, and the number of charges.
    #[must_use]
    pub fn charged(&self) -> (i64, usize) {
        let s = self.state.lock();
        (
            s.charges.values().map(|(_, m)| m.minor).sum(),
            s.charges.len(),
        )
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn charge(&self, key: &str, amount: Money) -> Result<String, ProviderError> {
        let hang = {
            let mut s = self.state.lock();
            if s.fail_next > 0 {
                s.fail_next -= 1;
                return Err(ProviderError::Unavailable("sandbox fault injected".into()));
            }
            if s.hang_next > 0 {
                s.hang_next -= 1;
                Some(false)
            } else {
                let reference = s
                    .charges
                    .entry(key.to_owned())
                    .or_insert_with(|| (format!("{}-{}", self.name, uuid::Uuid::now_v7()), amount))
                    .0
                    .clone();
                if s.hang_after_charging_next > 0 {
                    s.hang_after_charging_next -= 1;
                    Some(true)
                } else {
                    return Ok(reference);
                }
            }
        };
        if hang.is_some() {
            std::future::pending::<()>().await;
        }
        Err(ProviderError::Unavailable("unreachable".into()))
    }

    async fn lookup(&self, key: &str) -> Result<Option<String>, ProviderError> {
        Ok(self.state.lock().charges.get(key).map(|(r, _)| r.clone()))
    }

    async fn refund(
        &self,
        key: &str,
        charge_ref: &str,
        amount: Money,
    ) -> Result<String, ProviderError> {
        let mut s = self.state.lock();
        if !s.charges.values().any(|(r, _)| r == charge_ref) {
            return Err(ProviderError::Declined(format!("no charge {charge_ref}")));
        }
        Ok(s.refunds
            .entry(key.to_owned())
            .or_insert_with(|| {
                (
                    format!("{}-refund-{}", self.name, uuid::Uuid::now_v7()),
                    amount,
                )
            })
            .0
            .clone())
    }
}

/// The orchestrator.
#[derive(Debug)]
pub struct Payments {
    store: Arc<dyn Store>,
    providers: Vec<(Arc<dyn PaymentProvider>, Mutex<Breaker>)>,
    timeout: Duration,
    attempts: u32,
}

/// Why a payment could not be settled now (nothing was recorded; retrying with the same key is
/// safe).
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// A provider timed out and cannot say whether it charged: retry later with the same key.
    #[error("the outcome at {0} is unknown; retry later with the same key")]
    Unknown(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Payments {
    /// Providers in order of preference (primary first); each gets a breaker that opens after 3
    /// consecutive failures for 30 s.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        providers: Vec<Arc<dyn PaymentProvider>>,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            providers: providers
                .into_iter()
                .map(|p| (p, Mutex::new(Breaker::new(3, 30_000))))
                .collect(),
            timeout,
            attempts: 2,
        }
    }

    /// Charges a rider once per idempotency key, falling back across providers. Returns the
    /// payment as recorded (`succeeded`, or `failed` when every provider refused or was down).
    pub async fn charge(
        &self,
        key: &str,
        user_id: &str,
        booking_id: Option<&str>,
        amount: Money,
    ) -> Result<PaymentRecord, PaymentError> {
        self.collect(key, user_id, booking_id, amount, "charge")
            .await
    }

    async fn collect(
        &self,
        key: &str,
        user_id: &str,
        booking_id: Option<&str>,
        amount: Money,
        kind: &str,
    ) -> Result<PaymentRecord, PaymentError> {
        if let Some(done) = self.store.payment(key).await? {
            return Ok(done);
        }
        let record = |state: &str,
                      provider: Option<&str>,
                      reference: Option<String>,
                      detail: Option<String>| PaymentRecord {
            idempotency_key: key.to_owned(),
            user_id: user_id.to_owned(),
            booking_id: booking_id.map(str::to_owned),
            kind: kind.into(),
            amount,
            state: state.into(),
            provider: provider.map(str::to_owned),
            provider_ref: reference,
            detail,
            created_at: crate::http::now(),
        };
        if amount.minor == 0 {
            // Nothing to charge (a free trip): recorded, no provider, no ledger movement.
            return Ok(self
                .store
                .record_payment(&record("succeeded", None, None, None), None)
                .await?);
        }
        let mut problems = Vec::new();
        for (provider, breaker) in &self.providers {
            let name = provider.name();
            for attempt in 0..self.attempts {
                if !breaker.lock().try_acquire(crate::http::now()) {
                    problems.push(format!("{name}: circuit open"));
                    break;
                }
                match tokio::time::timeout(self.timeout, provider.charge(key, amount)).await {
                    Ok(Ok(reference)) => {
                        breaker.lock().on_success();
                        return self
                            .settle(
                                record("succeeded", Some(name), Some(reference), None),
                                name,
                                amount,
                            )
                            .await;
                    }
                    Ok(Err(ProviderError::Declined(why))) => {
                        breaker.lock().on_success();
                        let failed =
                            record("failed", Some(name), None, Some(format!("declined: {why}")));
                        metrics::counter!("payments_total", "outcome" => "declined").increment(1);
                        return Ok(self.store.record_payment(&failed, None).await?);
                    }
                    Ok(Err(ProviderError::Unavailable(why))) => {
                        breaker.lock().on_failure(crate::http::now());
                        problems.push(format!("{name}: {why}"));
                    }
                    Err(_) => {
                        breaker.lock().on_failure(crate::http::now());
                        // Did it charge before going quiet? Ask before going elsewhere, so nothing
                        // is charged twice; if it cannot say, stop and leave the key open.
                        match tokio::time::timeout(self.timeout, provider.lookup(key)).await {
                            Ok(Ok(Some(reference))) => {
                                return self
                                    .settle(
                                        record("succeeded", Some(name), Some(reference), None),
                                        name,
                                        amount,
                                    )
                                    .await;
                            }
                            Ok(Ok(None)) => {
                                problems.push(format!("{name}: timed out without charging"))
                            }
                            _ => {
                                metrics::counter!("payments_total", "outcome" => "unknown")
                                    .increment(1);
                                return Err(PaymentError::Unknown(name.to_owned()));
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20 * (u64::from(attempt) + 1))).await;
            }
        }
        metrics::counter!("payments_total", "outcome" => "failed").increment(1);
        let failed = record("failed", None, None, Some(problems.join("; ")));
        Ok(self.store.record_payment(&failed, None).await?)
    }

    /// Tops up a rider's wallet through the providers (like a charge), crediting `wallet:<user>`.
    pub async fn top_up(
        &self,
        key: &str,
        user_id: &str,
        amount: Money,
    ) -> Result<PaymentRecord, PaymentError> {
        self.collect(key, user_id, None, amount, "top_up").await
    }

    /// A rider's wallet credit (minor units).
    pub async fn wallet(
        &self,
        user_id: &str,
        currency: mobility_core::Currency,
    ) -> Result<i64, StoreError> {
        // Credit balances are negative in the ledger (the platform owes the rider).
        Ok(-self
            .store
            .account_balance(&format!("wallet:{user_id}"), currency.code())
            .await?)
    }

    /// Pays a fare from the rider's wallet if it holds enough; `None` if it does not.
    pub async fn pay_from_wallet(
        &self,
        key: &str,
        user_id: &str,
        booking_id: Option<&str>,
        amount: Money,
    ) -> Result<Option<PaymentRecord>, PaymentError> {
        if let Some(done) = self.store.payment(key).await? {
            return Ok(Some(done));
        }
        if amount.minor <= 0 || self.wallet(user_id, amount.currency).await? < amount.minor {
            return Ok(None);
        }
        let entry = JournalEntry::wallet_charge(user_id, amount)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let record = PaymentRecord {
            idempotency_key: key.to_owned(),
            user_id: user_id.to_owned(),
            booking_id: booking_id.map(str::to_owned),
            kind: "charge".into(),
            amount,
            state: "succeeded".into(),
            provider: Some("wallet".into()),
            provider_ref: None,
            detail: None,
            created_at: crate::http::now(),
        };
        Ok(Some(
            self.store.record_payment(&record, Some(&entry)).await?,
        ))
    }

    /// Refunds `amount` of the charge recorded under `charge_key`, once per `key`, through the
    /// provider that took the charge. Refunds never exceed what was charged (counting earlier
    /// refunds listed in `refunded_so_far`).
    pub async fn refund(
        &self,
        key: &str,
        charge_key: &str,
        amount: Money,
        refunded_so_far: i64,
    ) -> Result<Result<PaymentRecord, String>, PaymentError> {
        if let Some(done) = self.store.payment(key).await? {
            return Ok(Ok(done));
        }
        let Some(charge) = self.store.payment(charge_key).await? else {
            return Ok(Err("nothing was charged for this".into()));
        };
        if charge.state != "succeeded" || charge.kind != "charge" {
            return Ok(Err("nothing was charged for this".into()));
        }
        if amount.currency != charge.amount.currency
            || amount.minor <= 0
            || amount.minor + refunded_so_far > charge.amount.minor
        {
            return Ok(Err(format!(
                "a refund must be positive, in {}, and at most {} minor units in all",
                charge.amount.currency, charge.amount.minor
            )));
        }
        if charge.provider.as_deref() == Some("wallet") {
            // Paid from wallet credit: the refund goes back to the wallet.
            let entry = JournalEntry::new(vec![
                mobility_core::payments::Posting {
                    account: "revenue:trips".into(),
                    amount,
                },
                mobility_core::payments::Posting {
                    account: format!("wallet:{}", charge.user_id),
                    amount: Money::new(-amount.minor, amount.currency),
                },
            ])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let record = PaymentRecord {
                idempotency_key: key.to_owned(),
                user_id: charge.user_id.clone(),
                booking_id: charge.booking_id.clone(),
                kind: "refund".into(),
                amount,
                state: "succeeded".into(),
                provider: Some("wallet".into()),
                provider_ref: None,
                detail: None,
                created_at: crate::http::now(),
            };
            return Ok(Ok(self.store.record_payment(&record, Some(&entry)).await?));
        }
        let (Some(name), Some(charge_ref)) =
            (charge.provider.as_deref(), charge.provider_ref.as_deref())
        else {
            return Ok(Err("the charge has no provider reference".into()));
        };
        let Some((provider, _)) = self.providers.iter().find(|(p, _)| p.name() == name) else {
            return Ok(Err(format!("provider {name} is not configured")));
        };
        let reference = match tokio::time::timeout(
            self.timeout,
            provider.refund(key, charge_ref, amount),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Ok(Err(e.to_string())),
            Err(_) => return Err(PaymentError::Unknown(name.to_owned())),
        };
        let entry =
            JournalEntry::refund(name, amount).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let record = PaymentRecord {
            idempotency_key: key.to_owned(),
            user_id: charge.user_id.clone(),
            booking_id: charge.booking_id.clone(),
            kind: "refund".into(),
            amount,
            state: "succeeded".into(),
            provider: Some(name.to_owned()),
            provider_ref: Some(reference),
            detail: None,
            created_at: crate::http::now(),
        };
        metrics::counter!("payments_total", "outcome" => "refunded").increment(1);
        Ok(Ok(self.store.record_payment(&record, Some(&entry)).await?))
    }

    async fn settle(
        &self,
        p: PaymentRecord,
        provider: &str,
        amount: Money,
    ) -> Result<PaymentRecord, PaymentError> {
        let entry = if p.kind == "top_up" {
            JournalEntry::top_up(provider, &p.user_id, amount)
        } else {
            JournalEntry::trip_charge(provider, amount)
        }
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        metrics::counter!("payments_total", "outcome" => "succeeded", "provider" => provider.to_owned())
            .increment(1);
        Ok(self.store.record_payment(&p, Some(&entry)).await?)
    }
}
