//! Fleet intelligence: demand, weather, the events calendar and the incentive budget.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Fleet intelligence: demand, weather, the events calendar and the incentive budget.
#[async_trait::async_trait]
pub trait IntelStore: Send + Sync {
    /// Adds riders' searches to a city's demand slots (counts add up: several processes may
    /// report the same slot).
    async fn add_demand(&self, city: &CityId, slots: &[DemandSlot]) -> Result<(), StoreError>;

    /// Creates or replaces a city's weather for the given hours.
    async fn put_weather(&self, city: &CityId, hours: &[WeatherHour]) -> Result<(), StoreError>;

    /// A city's weather for hours in `[from, to)`, oldest first.
    async fn weather_between(
        &self,
        city: &CityId,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<WeatherHour>, StoreError>;

    /// Creates or replaces an event of a city's calendar.
    async fn put_calendar_event(&self, event: &CityEventRecord) -> Result<(), StoreError>;

    /// A city's events that end at `from` or later, by end.
    async fn calendar_events(
        &self,
        city: &CityId,
        from: TimestampMs,
    ) -> Result<Vec<CityEventRecord>, StoreError>;

    /// Deletes an event; its city, if it existed.
    async fn delete_calendar_event(&self, id: &str) -> Result<Option<CityId>, StoreError>;

    /// A city's demand slots from `from` on, oldest first.
    async fn demand_since(
        &self,
        city: &CityId,
        from: TimestampMs,
    ) -> Result<Vec<DemandSlot>, StoreError>;

    /// Spends `amount_minor` of a city's incentive budget for local `day` if what was spent that
    /// day plus this stays within `budget_minor`; true if it was spent. Atomic.
    async fn spend_incentive(
        &self,
        city: &CityId,
        day: i64,
        amount_minor: i64,
        budget_minor: i64,
    ) -> Result<bool, StoreError>;

    /// What a city spent on incentives on local `day`.
    async fn incentive_spent(&self, city: &CityId, day: i64) -> Result<i64, StoreError>;
}
