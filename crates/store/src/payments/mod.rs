//! Payments, once per idempotency key, and the double-entry ledger.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Payments, once per idempotency key, and the double-entry ledger.
#[async_trait::async_trait]
pub trait PaymentStore: Send + Sync {
    /// Records a payment outcome and, if given, its journal entry, in one transaction. If the
    /// idempotency key is already recorded, nothing is written and the first record is returned.
    async fn record_payment(
        &self,
        payment: &PaymentRecord,
        entry: Option<&mobility_core::payments::JournalEntry>,
    ) -> Result<PaymentRecord, StoreError>;

    /// A booking's payments (charges and refunds), oldest first.
    async fn booking_payments(&self, booking_id: &str) -> Result<Vec<PaymentRecord>, StoreError>;

    /// A payment by idempotency key.
    async fn payment(&self, idempotency_key: &str) -> Result<Option<PaymentRecord>, StoreError>;

    /// One account's balance in a currency (minor units; 0 when it has no postings).
    async fn account_balance(&self, account: &str, currency: &str) -> Result<i64, StoreError>;

    /// Every account's balance per currency (minor units), by account.
    async fn ledger_balances(&self) -> Result<Vec<(String, String, i64)>, StoreError>;
}
