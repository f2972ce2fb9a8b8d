//! KYC submissions and their review.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// KYC submissions and their review.
#[async_trait::async_trait]
pub trait KycStore: Send + Sync {
    /// Stores a KYC submission.
    async fn insert_kyc(&self, k: &KycRecord) -> Result<(), StoreError>;

    /// A rider's submissions, newest first.
    async fn user_kyc(&self, user_id: &str) -> Result<Vec<KycRecord>, StoreError>;

    /// Pending submissions, oldest first (the review queue).
    async fn kyc_queue(&self, limit: u32) -> Result<Vec<KycRecord>, StoreError>;

    /// Decides a pending submission (compare-and-set); `None` if it was not pending.
    async fn decide_kyc(
        &self,
        id: &str,
        state: &str,
        reason: Option<&str>,
        by: &str,
        now: TimestampMs,
    ) -> Result<Option<KycRecord>, StoreError>;
}
