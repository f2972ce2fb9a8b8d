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
    Clock, Money,
    payments::{Breaker, JournalEntry},
    payments::{PaymentKind, PaymentState},
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
    /// Places a hold of `amount` (pre-authorisation) under an idempotency key: its reference.
    async fn authorize(&self, key: &str, amount: Money) -> Result<String, ProviderError>;
    /// Captures at most the held amount of a hold, under its own key: the charge reference.
    async fn capture(
        &self,
        key: &str,
        hold_ref: &str,
        amount: Money,
    ) -> Result<String, ProviderError>;
    /// Releases a hold (nothing is charged).
    async fn void(&self, hold_ref: &str) -> Result<(), ProviderError>;
}

#[derive(Debug, Default)]
struct SandboxState {
    charges: HashMap<String, (String, Money)>,
    refunds: HashMap<String, (String, Money)>,
    /// Holds by key: (reference, amount, released).
    holds: HashMap<String, (String, Money, bool)>,
    fail_next: u32,
    decline_next: u32,
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

    /// The next `n` charges or holds are declined (a card the bank refuses).
    pub fn decline_next(&self, n: u32) {
        self.state.lock().decline_next = n;
    }

    /// Holds currently placed and not released (captured or voided), minor units.
    #[must_use]
    pub fn held(&self) -> i64 {
        self.state
            .lock()
            .holds
            .values()
            .filter(|(_, _, released)| !released)
            .map(|(_, m, _)| m.minor)
            .sum()
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
            if s.decline_next > 0 {
                s.decline_next -= 1;
                return Err(ProviderError::Declined("sandbox: card declined".into()));
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

    async fn authorize(&self, key: &str, amount: Money) -> Result<String, ProviderError> {
        let mut s = self.state.lock();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Err(ProviderError::Unavailable("sandbox fault injected".into()));
        }
        if s.decline_next > 0 {
            s.decline_next -= 1;
            return Err(ProviderError::Declined("sandbox: card declined".into()));
        }
        Ok(s.holds
            .entry(key.to_owned())
            .or_insert_with(|| {
                (
                    format!("{}-hold-{}", self.name, uuid::Uuid::now_v7()),
                    amount,
                    false,
                )
            })
            .0
            .clone())
    }

    async fn capture(
        &self,
        key: &str,
        hold_ref: &str,
        amount: Money,
    ) -> Result<String, ProviderError> {
        let mut s = self.state.lock();
        if let Some((reference, _)) = s.charges.get(key) {
            return Ok(reference.clone());
        }
        let Some(hold) = s.holds.values_mut().find(|(r, _, _)| r == hold_ref) else {
            return Err(ProviderError::Declined(format!("no hold {hold_ref}")));
        };
        if hold.2 {
            return Err(ProviderError::Declined(format!(
                "the hold {hold_ref} was released"
            )));
        }
        if amount.currency != hold.1.currency || amount.minor > hold.1.minor {
            return Err(ProviderError::Declined("more than the hold".into()));
        }
        hold.2 = true;
        let reference = format!("{}-{}", self.name, uuid::Uuid::now_v7());
        s.charges
            .insert(key.to_owned(), (reference.clone(), amount));
        Ok(reference)
    }

    async fn void(&self, hold_ref: &str) -> Result<(), ProviderError> {
        if let Some(hold) = self
            .state
            .lock()
            .holds
            .values_mut()
            .find(|(r, _, _)| r == hold_ref)
        {
            hold.2 = true;
        }
        Ok(())
    }
}

/// The orchestrator.
#[derive(Debug)]
pub struct Payments {
    store: Arc<dyn Store>,
    providers: Vec<(Arc<dyn PaymentProvider>, Mutex<Breaker>)>,
    timeout: Duration,
    attempts: u32,
    clock: Arc<dyn Clock>,
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
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            providers: providers
                .into_iter()
                .map(|p| (p, Mutex::new(Breaker::new(3, 30_000))))
                .collect(),
            timeout,
            attempts: 2,
            clock,
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
        self.collect(key, user_id, booking_id, amount, PaymentKind::Charge)
            .await
    }

    async fn collect(
        &self,
        key: &str,
        user_id: &str,
        booking_id: Option<&str>,
        amount: Money,
        kind: PaymentKind,
    ) -> Result<PaymentRecord, PaymentError> {
        if let Some(done) = self.store.payment(key).await? {
            return Ok(done);
        }
        let record = |state: PaymentState,
                      provider: Option<&str>,
                      reference: Option<String>,
                      detail: Option<String>| PaymentRecord {
            idempotency_key: key.to_owned(),
            user_id: user_id.to_owned(),
            booking_id: booking_id.map(str::to_owned),
            kind,
            amount,
            state,
            provider: provider.map(str::to_owned),
            provider_ref: reference,
            detail,
            created_at: self.clock.now(),
        };
        if amount.minor == 0 {
            // Nothing to charge (a free trip): recorded, no provider, no ledger movement.
            return Ok(self
                .store
                .record_payment(&record(PaymentState::Succeeded, None, None, None), None)
                .await?);
        }
        let mut problems = Vec::new();
        for (provider, breaker) in &self.providers {
            let name = provider.name();
            for attempt in 0..self.attempts {
                if !breaker.lock().try_acquire(self.clock.now()) {
                    problems.push(format!("{name}: circuit open"));
                    break;
                }
                match tokio::time::timeout(self.timeout, provider.charge(key, amount)).await {
                    Ok(Ok(reference)) => {
                        breaker.lock().on_success();
                        return self
                            .settle(
                                record(PaymentState::Succeeded, Some(name), Some(reference), None),
                                name,
                                amount,
                            )
                            .await;
                    }
                    Ok(Err(ProviderError::Declined(why))) => {
                        breaker.lock().on_success();
                        let failed = record(
                            PaymentState::Failed,
                            Some(name),
                            None,
                            Some(format!("declined: {why}")),
                        );
                        metrics::counter!("payments_total", "outcome" => "declined").increment(1);
                        return Ok(self.store.record_payment(&failed, None).await?);
                    }
                    Ok(Err(ProviderError::Unavailable(why))) => {
                        breaker.lock().on_failure(self.clock.now());
                        problems.push(format!("{name}: {why}"));
                    }
                    Err(_) => {
                        breaker.lock().on_failure(self.clock.now());
                        // Did it charge before going quiet? Ask before going elsewhere, so nothing
                        // is charged twice; if it cannot say, stop and leave the key open.
                        match tokio::time::timeout(self.timeout, provider.lookup(key)).await {
                            Ok(Ok(Some(reference))) => {
                                return self
                                    .settle(
                                        record(
                                            PaymentState::Succeeded,
                                            Some(name),
                                            Some(reference),
                                            None,
                                        ),
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
        let failed = record(PaymentState::Failed, None, None, Some(problems.join("; ")));
        Ok(self.store.record_payment(&failed, None).await?)
    }

    /// Places a hold (pre-authorisation) once per key, with the first provider that takes it.
    /// Recorded as kind `authorization` (`authorized` or `failed`); a hold moves no money, so
    /// nothing is posted to the ledger until it is captured.
    pub async fn authorize(
        &self,
        key: &str,
        user_id: &str,
        booking_id: Option<&str>,
        amount: Money,
    ) -> Result<PaymentRecord, PaymentError> {
        if let Some(done) = self.store.payment(key).await? {
            return Ok(done);
        }
        let record = |state: PaymentState,
                      provider: Option<&str>,
                      reference: Option<String>,
                      detail: Option<String>| {
            PaymentRecord {
                idempotency_key: key.to_owned(),
                user_id: user_id.to_owned(),
                booking_id: booking_id.map(str::to_owned),
                kind: PaymentKind::Authorization,
                amount,
                state,
                provider: provider.map(str::to_owned),
                provider_ref: reference,
                detail,
                created_at: self.clock.now(),
            }
        };
        let mut problems = Vec::new();
        for (provider, breaker) in &self.providers {
            let name = provider.name();
            if !breaker.lock().try_acquire(self.clock.now()) {
                problems.push(format!("{name}: circuit open"));
                continue;
            }
            match tokio::time::timeout(self.timeout, provider.authorize(key, amount)).await {
                Ok(Ok(reference)) => {
                    breaker.lock().on_success();
                    metrics::counter!("payments_total", "outcome" => "authorized").increment(1);
                    return Ok(self
                        .store
                        .record_payment(
                            &record(PaymentState::Authorized, Some(name), Some(reference), None),
                            None,
                        )
                        .await?);
                }
                Ok(Err(ProviderError::Declined(why))) => {
                    breaker.lock().on_success();
                    metrics::counter!("payments_total", "outcome" => "declined").increment(1);
                    let failed = record(
                        PaymentState::Failed,
                        Some(name),
                        None,
                        Some(format!("declined: {why}")),
                    );
                    return Ok(self.store.record_payment(&failed, None).await?);
                }
                // A hold that may or may not have been placed lapses at the provider by itself.
                Ok(Err(ProviderError::Unavailable(why))) => {
                    breaker.lock().on_failure(self.clock.now());
                    problems.push(format!("{name}: {why}"));
                }
                Err(_) => {
                    breaker.lock().on_failure(self.clock.now());
                    problems.push(format!("{name}: timed out"));
                }
            }
        }
        metrics::counter!("payments_total", "outcome" => "failed").increment(1);
        let failed = record(PaymentState::Failed, None, None, Some(problems.join("; ")));
        Ok(self.store.record_payment(&failed, None).await?)
    }

    /// Settles a trip held by `hold` (an `authorized` record): captures what the hold covers at
    /// its provider, once per `key`, and charges any excess (under `<key>:rest`) like any
    /// charge. A zero fare releases the hold. If the capture fails, the fare is charged through
    /// the providers instead and the hold is released.
    pub async fn capture(
        &self,
        key: &str,
        hold: &PaymentRecord,
        amount: Money,
    ) -> Result<PaymentRecord, PaymentError> {
        if let Some(done) = self.store.payment(key).await? {
            return Ok(done);
        }
        let provider = self
            .providers
            .iter()
            .find(|(p, _)| Some(p.name()) == hold.provider.as_deref())
            .map(|(p, _)| p.clone());
        let (Some(provider), Some(hold_ref)) = (provider, hold.provider_ref.as_deref()) else {
            return self
                .charge(key, &hold.user_id, hold.booking_id.as_deref(), amount)
                .await;
        };
        if amount.minor == 0 {
            let _ = tokio::time::timeout(self.timeout, provider.void(hold_ref)).await;
            return self
                .charge(key, &hold.user_id, hold.booking_id.as_deref(), amount)
                .await;
        }
        let covered = if amount.currency == hold.amount.currency {
            Money::new(amount.minor.min(hold.amount.minor), amount.currency)
        } else {
            Money::zero(amount.currency)
        };
        let captured = match tokio::time::timeout(
            self.timeout,
            provider.capture(key, hold_ref, covered),
        )
        .await
        {
            Ok(Ok(reference)) if covered.minor > 0 => Some(reference),
            _ => None,
        };
        let Some(reference) = captured else {
            let _ = tokio::time::timeout(self.timeout, provider.void(hold_ref)).await;
            return self
                .charge(key, &hold.user_id, hold.booking_id.as_deref(), amount)
                .await;
        };
        let name = provider.name().to_owned();
        let main = self
            .settle(
                PaymentRecord {
                    idempotency_key: key.to_owned(),
                    user_id: hold.user_id.clone(),
                    booking_id: hold.booking_id.clone(),
                    kind: PaymentKind::Charge,
                    amount: covered,
                    state: PaymentState::Succeeded,
                    provider: Some(name.clone()),
                    provider_ref: Some(reference),
                    detail: Some(format!("captured from hold {hold_ref}")),
                    created_at: self.clock.now(),
                },
                &name,
                covered,
            )
            .await?;
        let rest = amount.minor - covered.minor;
        if rest > 0 {
            let extra = self
                .charge(
                    &format!("{key}:rest"),
                    &hold.user_id,
                    hold.booking_id.as_deref(),
                    Money::new(rest, amount.currency),
                )
                .await?;
            if extra.state != PaymentState::Succeeded {
                return Ok(extra);
            }
        }
        Ok(main)
    }

    /// Releases a hold (a trip that never started), best effort: holds also lapse by themselves.
    pub async fn void(&self, hold: &PaymentRecord) {
        let provider = self
            .providers
            .iter()
            .find(|(p, _)| Some(p.name()) == hold.provider.as_deref());
        if let (Some((p, _)), Some(r)) = (provider, hold.provider_ref.as_deref())
            && let Err(e) = tokio::time::timeout(self.timeout, p.void(r))
                .await
                .unwrap_or_else(|_| Err(ProviderError::Unavailable("timed out".into())))
        {
            tracing::warn!(hold = %r, error = %e, "could not release a hold; it lapses at the provider");
        }
    }

    /// Tops up a rider's wallet through the providers (like a charge), crediting `wallet:<user>`.
    pub async fn top_up(
        &self,
        key: &str,
        user_id: &str,
        amount: Money,
    ) -> Result<PaymentRecord, PaymentError> {
        self.collect(key, user_id, None, amount, PaymentKind::TopUp)
            .await
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
            kind: PaymentKind::Charge,
            amount,
            state: PaymentState::Succeeded,
            provider: Some("wallet".into()),
            provider_ref: None,
            detail: None,
            created_at: self.clock.now(),
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
        if charge.state != PaymentState::Succeeded || charge.kind != PaymentKind::Charge {
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
                kind: PaymentKind::Refund,
                amount,
                state: PaymentState::Succeeded,
                provider: Some("wallet".into()),
                provider_ref: None,
                detail: None,
                created_at: self.clock.now(),
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
            kind: PaymentKind::Refund,
            amount,
            state: PaymentState::Succeeded,
            provider: Some(name.to_owned()),
            provider_ref: Some(reference),
            detail: None,
            created_at: self.clock.now(),
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
        let entry = if p.kind == PaymentKind::TopUp {
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
