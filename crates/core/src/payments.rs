//! Money movements, as pure rules: a double-entry ledger (every journal entry balances, per
//! currency, so the books always reconcile) and the circuit breaker that decides whether a
//! payment provider gets the next call. The payment orchestrator in the server does the IO.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Currency, Money, TimestampMs};

/// What a payment record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// A fare, a pass or a fee, taken from the rider's card (or wallet).
    Charge,
    /// Money given back for an earlier charge.
    Refund,
    /// Money put into the rider's wallet.
    TopUp,
    /// A hold on the rider's card at unlock: no money moves until it is captured.
    Authorization,
}

/// How a payment attempt ended. A record is written once, with its outcome: there are no later
/// moves on a record (a hold is settled by a new `charge` record that captures it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// The money moved.
    Succeeded,
    /// Every provider refused or was down; nothing moved.
    Failed,
    /// The hold is placed (authorizations only).
    Authorized,
}

impl PaymentKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Charge, Self::Refund, Self::TopUp, Self::Authorization];

    /// Stable name (the store's and the API's).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Refund => "refund",
            Self::TopUp => "top_up",
            Self::Authorization => "authorization",
        }
    }

    /// The kind named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether an attempt of this kind may end in `state`: an authorization is `authorized` or
    /// `failed`, anything else `succeeded` or `failed`.
    #[must_use]
    pub const fn may_end_in(self, state: PaymentState) -> bool {
        match (self, state) {
            (_, PaymentState::Failed) => true,
            (Self::Authorization, s) => matches!(s, PaymentState::Authorized),
            (_, s) => matches!(s, PaymentState::Succeeded),
        }
    }
}

impl PaymentState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Succeeded, Self::Failed, Self::Authorized];

    /// Stable name (the store's and the API's).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Authorized => "authorized",
        }
    }

    /// The state named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for PaymentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for PaymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a journal entry: an account and a signed amount (debit positive, credit
/// negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// Account name, e.g. `psp:sandbox`, `revenue:trips`, `wallet:<user>`.
    pub account: String,
    /// Signed amount.
    pub amount: Money,
}

/// Why a journal entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Fewer than two postings.
    #[error("a journal entry needs at least two postings")]
    TooFewPostings,
    /// The postings of a currency do not sum to zero.
    #[error("the postings in {0} do not balance (they sum to {1} minor units)")]
    Unbalanced(Currency, i64),
    /// A posting of zero, or an empty account name.
    #[error("postings need an account and a non-zero amount")]
    EmptyPosting,
    /// An amount too large to add up.
    #[error("amount overflow")]
    Overflow,
}

/// A balanced set of postings (only constructible balanced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    postings: Vec<Posting>,
}

impl JournalEntry {
    /// Checks that the postings balance per currency.
    pub fn new(postings: Vec<Posting>) -> Result<Self, LedgerError> {
        if postings.len() < 2 {
            return Err(LedgerError::TooFewPostings);
        }
        let mut sums: BTreeMap<Currency, i64> = BTreeMap::new();
        for p in &postings {
            if p.account.trim().is_empty() || p.amount.minor == 0 {
                return Err(LedgerError::EmptyPosting);
            }
            let s = sums.entry(p.amount.currency).or_default();
            *s = s.checked_add(p.amount.minor).ok_or(LedgerError::Overflow)?;
        }
        if let Some((c, s)) = sums.into_iter().find(|(_, s)| *s != 0) {
            return Err(LedgerError::Unbalanced(c, s));
        }
        Ok(Self { postings })
    }

    /// The postings.
    #[must_use]
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// A captured trip fare: cash arrives at the provider, revenue is earned.
    pub fn trip_charge(provider: &str, fare: Money) -> Result<Self, LedgerError> {
        Self::new(vec![
            Posting {
                account: format!("psp:{provider}"),
                amount: fare,
            },
            Posting {
                account: "revenue:trips".into(),
                amount: neg(fare)?,
            },
        ])
    }

    /// A refund of (part of) a charge: the reverse movement.
    pub fn refund(provider: &str, amount: Money) -> Result<Self, LedgerError> {
        Self::new(vec![
            Posting {
                account: "revenue:trips".into(),
                amount,
            },
            Posting {
                account: format!("psp:{provider}"),
                amount: neg(amount)?,
            },
        ])
    }

    /// A wallet top-up: cash at the provider, owed to the rider as credit.
    pub fn top_up(provider: &str, user: &str, amount: Money) -> Result<Self, LedgerError> {
        Self::new(vec![
            Posting {
                account: format!("psp:{provider}"),
                amount,
            },
            Posting {
                account: format!("wallet:{user}"),
                amount: neg(amount)?,
            },
        ])
    }

    /// A fare paid from the rider's wallet credit.
    pub fn wallet_charge(user: &str, fare: Money) -> Result<Self, LedgerError> {
        Self::new(vec![
            Posting {
                account: format!("wallet:{user}"),
                amount: fare,
            },
            Posting {
                account: "revenue:trips".into(),
                amount: neg(fare)?,
            },
        ])
    }
}

fn neg(m: Money) -> Result<Money, LedgerError> {
    m.minor
        .checked_neg()
        .map(|minor| Money::new(minor, m.currency))
        .ok_or(LedgerError::Overflow)
}

/// Account balances built from journal entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances(BTreeMap<(String, Currency), i64>);

impl Balances {
    /// Applies an entry.
    pub fn apply(&mut self, e: &JournalEntry) -> Result<(), LedgerError> {
        for p in e.postings() {
            let b = self
                .0
                .entry((p.account.clone(), p.amount.currency))
                .or_default();
            *b = b.checked_add(p.amount.minor).ok_or(LedgerError::Overflow)?;
        }
        Ok(())
    }

    /// An account's balance in a currency.
    #[must_use]
    pub fn of(&self, account: &str, currency: Currency) -> i64 {
        self.0
            .get(&(account.to_owned(), currency))
            .copied()
            .unwrap_or(0)
    }

    /// Whether every currency sums to zero (the books reconcile).
    #[must_use]
    pub fn reconciles(&self) -> bool {
        let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
        for ((_, c), v) in &self.0 {
            *sums.entry(*c).or_default() += i128::from(*v);
        }
        sums.values().all(|s| *s == 0)
    }
}

/// A circuit breaker for one payment provider: after `threshold` consecutive failures it opens
/// for `cool_down_ms`, then lets one trial call through (half-open); a success closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    threshold: u32,
    cool_down_ms: i64,
    failures: u32,
    open_until: Option<TimestampMs>,
    trial_out: bool,
}

/// What the breaker says about the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One trial call may go through.
    HalfOpen,
}

impl Breaker {
    /// A closed breaker.
    #[must_use]
    pub const fn new(threshold: u32, cool_down_ms: i64) -> Self {
        Self {
            threshold: if threshold == 0 { 1 } else { threshold },
            cool_down_ms,
            failures: 0,
            open_until: None,
            trial_out: false,
        }
    }

    /// The state at `now`.
    #[must_use]
    pub fn state(&self, now: TimestampMs) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go out now (and, half-open, claims the one trial call).
    pub fn try_acquire(&mut self, now: TimestampMs) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.trial_out => false,
            BreakerState::HalfOpen => {
                self.trial_out = true;
                true
            }
        }
    }

    /// The call succeeded.
    pub fn on_success(&mut self) {
        *self = Self::new(self.threshold, self.cool_down_ms);
    }

    /// The call failed (or timed out) at `now`.
    pub fn on_failure(&mut self, now: TimestampMs) {
        self.trial_out = false;
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.threshold || self.open_until.is_some() {
            self.open_until = Some(now.plus_ms(self.cool_down_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn eur(m: i64) -> Money {
        Money::new(m, Currency::parse("EUR").unwrap())
    }

    #[test]
    fn entries_must_balance() {
        assert_eq!(
            JournalEntry::new(vec![Posting {
                account: "a".into(),
                amount: eur(5)
            }]),
            Err(LedgerError::TooFewPostings)
        );
        let unbalanced = JournalEntry::new(vec![
            Posting {
                account: "a".into(),
                amount: eur(5),
            },
            Posting {
                account: "b".into(),
                amount: eur(-4),
            },
        ]);
        assert!(matches!(unbalanced, Err(LedgerError::Unbalanced(_, 1))));
        let usd = Money::new(-5, Currency::parse("USD").unwrap());
        assert!(
            JournalEntry::new(vec![
                Posting {
                    account: "a".into(),
                    amount: eur(5)
                },
                Posting {
                    account: "b".into(),
                    amount: usd
                },
            ])
            .is_err()
        );
        assert!(JournalEntry::trip_charge("sandbox", eur(0)).is_err());
    }

    #[test]
    fn a_trip_paid_by_wallet_and_a_refund_reconcile() {
        let mut b = Balances::default();
        let c = eur(0).currency;
        b.apply(&JournalEntry::top_up("sandbox", "u1", eur(2_000)).unwrap())
            .unwrap();
        b.apply(&JournalEntry::wallet_charge("u1", eur(625)).unwrap())
            .unwrap();
        b.apply(&JournalEntry::trip_charge("primary", eur(400)).unwrap())
            .unwrap();
        b.apply(&JournalEntry::refund("primary", eur(100)).unwrap())
            .unwrap();
        assert_eq!(b.of("wallet:u1", c), -1_375, "credit left in the wallet");
        assert_eq!(b.of("revenue:trips", c), -925);
        assert_eq!(b.of("psp:sandbox", c), 2_000);
        assert_eq!(b.of("psp:primary", c), 300);
        assert!(b.reconciles());
    }

    proptest! {
        #[test]
        fn any_sequence_of_movements_reconciles(ops in proptest::collection::vec((0u8..4, 1i64..100_000), 0..200)) {
            let mut b = Balances::default();
            for (op, amount) in ops {
                let e = match op {
                    0 => JournalEntry::trip_charge("p", eur(amount)),
                    1 => JournalEntry::refund("p", eur(amount)),
                    2 => JournalEntry::top_up("p", "u", eur(amount)),
                    _ => JournalEntry::wallet_charge("u", eur(amount)),
                }.unwrap();
                b.apply(&e).unwrap();
                prop_assert!(b.reconciles());
            }
        }
    }

    #[test]
    fn the_breaker_opens_cools_down_and_tries_once() {
        let mut br = Breaker::new(3, 1_000);
        let t = |ms| TimestampMs(ms);
        assert!(br.try_acquire(t(0)));
        br.on_failure(t(0));
        br.on_failure(t(1));
        assert_eq!(br.state(t(1)), BreakerState::Closed, "below the threshold");
        br.on_failure(t(2));
        assert_eq!(br.state(t(2)), BreakerState::Open);
        assert!(!br.try_acquire(t(500)));
        assert_eq!(br.state(t(1_002)), BreakerState::HalfOpen);
        assert!(br.try_acquire(t(1_002)), "one trial call");
        assert!(!br.try_acquire(t(1_003)), "only one");
        br.on_failure(t(1_010));
        assert_eq!(
            br.state(t(1_500)),
            BreakerState::Open,
            "a failed trial re-opens at once"
        );
        assert!(br.try_acquire(t(2_010)));
        br.on_success();
        assert_eq!(br.state(t(2_011)), BreakerState::Closed);
        br.on_failure(t(2_012));
        assert_eq!(
            br.state(t(2_012)),
            BreakerState::Closed,
            "the count restarted"
        );
    }
}
