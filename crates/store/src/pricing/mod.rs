//! Pricing plans and passes.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Pricing plans and passes.
#[async_trait::async_trait]
pub trait PricingStore: Send + Sync {
    /// Creates or replaces the plan of a city and vehicle type (`MissingReference` for an
    /// unknown city).
    async fn put_pricing_plan(&self, plan: &PricingPlan) -> Result<(), StoreError>;

    /// A city's plans, by vehicle type.
    async fn pricing_plans(&self, city: &CityId) -> Result<Vec<PricingPlan>, StoreError>;

    /// Creates or replaces a pass plan.
    async fn put_pass_plan(&self, plan: &PassPlan) -> Result<(), StoreError>;

    /// A city's pass plans (sold or not).
    async fn pass_plans(&self, city: &CityId) -> Result<Vec<PassPlan>, StoreError>;

    /// One pass plan.
    async fn pass_plan(&self, id: &str) -> Result<Option<PassPlan>, StoreError>;

    /// Records a bought pass; [`StoreError::AlreadyExists`] when its payment key was used.
    async fn insert_rider_pass(&self, pass: &RiderPass) -> Result<(), StoreError>;

    /// The pass bought with a payment key.
    async fn rider_pass_by_key(&self, payment_key: &str) -> Result<Option<RiderPass>, StoreError>;

    /// A rider's passes, newest first.
    async fn rider_passes(&self, user_id: &str) -> Result<Vec<RiderPass>, StoreError>;
}
