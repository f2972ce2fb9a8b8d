//! Dynamic pricing and relocation incentives per zone: pure functions of forecast demand and
//! available supply, bounded, smoothed and explained.

use serde::{Deserialize, Serialize};

/// Pricing settings (per city).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PricingConfig {
    /// Lowest multiplier (a discount where vehicles stand idle).
    pub floor: f64,
    /// Highest multiplier.
    pub cap: f64,
    /// How strongly the multiplier follows the demand/supply ratio (elasticity of the rule).
    pub sensitivity: f64,
    /// Weight of the new value in the exponential smoothing (1 = no smoothing).
    pub smoothing: f64,
    /// Relocation credit for ending a trip in a deficit zone, cents.
    pub end_credit_cents: i64,
    /// Discount for starting a trip in a surplus zone, cents.
    pub start_discount_cents: i64,
    /// Incentive budget per city and day, cents.
    pub daily_budget_cents: i64,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            floor: 0.8,
            cap: 1.5,
            sensitivity: 0.35,
            smoothing: 0.5,
            end_credit_cents: 100,
            start_discount_cents: 50,
            daily_budget_cents: 300_000,
        }
    }
}

/// A zone's price and incentives, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZonePrice {
    /// Price multiplier on the tariff's per-minute rate.
    pub multiplier: f64,
    /// Forecast requests over the horizon.
    pub forecast_demand: f64,
    /// Rentable vehicles now.
    pub supply: u32,
    /// Trips forecast to end here over the horizon (vehicles arriving).
    pub forecast_returns: f64,
    /// Vehicles missing (positive) or spare (negative) for the forecast.
    pub balance: i32,
    /// Credit offered for ending a trip here, cents (deficit zones).
    pub end_credit_cents: i64,
    /// Discount offered for starting a trip here, cents (surplus zones).
    pub start_discount_cents: i64,
    /// Why, in words.
    pub reason: String,
}

/// Vehicles a zone needs for its forecast demand: enough for the expected requests, and at
/// least one wherever requests are expected at all.
#[must_use]
pub fn needed(forecast_demand: f64) -> i32 {
    #[allow(clippy::cast_possible_truncation)]
    let n = (forecast_demand * 1.1).ceil() as i32;
    n.max(i32::from(forecast_demand >= 0.3))
}

/// Prices a zone: `previous` is the last multiplier (for smoothing).
#[must_use]
pub fn price_zone(
    forecast_demand: f64,
    supply: u32,
    previous: Option<f64>,
    cfg: &PricingConfig,
) -> ZonePrice {
    price_zone_flow(forecast_demand, supply, 0.0, previous, cfg)
}

/// Prices a zone that also expects `forecast_returns` vehicles to arrive over the horizon
/// (trips ending there): they count as supply, whole vehicles only.
#[must_use]
pub fn price_zone_flow(
    forecast_demand: f64,
    supply: u32,
    forecast_returns: f64,
    previous: Option<f64>,
    cfg: &PricingConfig,
) -> ZonePrice {
    let demand = forecast_demand.max(0.0);
    let returns = if forecast_returns.is_finite() {
        forecast_returns.max(0.0)
    } else {
        0.0
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let arriving = returns.floor().min(f64::from(u32::MAX)) as u32;
    let supply_now = supply;
    let supply = supply.saturating_add(arriving);
    let supply_f = f64::from(supply);
    // Demand per vehicle against one ride per vehicle over the horizon: log-ratio, so doubling
    // and halving move the price by the same step.
    let ratio = (demand + 0.5) / (supply_f + 0.5);
    let raw = (1.0 + cfg.sensitivity * ratio.ln()).clamp(cfg.floor, cfg.cap);
    let smoothed = previous.map_or(raw, |p| {
        cfg.smoothing.clamp(0.0, 1.0) * raw + (1.0 - cfg.smoothing.clamp(0.0, 1.0)) * p
    });
    let multiplier = (smoothed.clamp(cfg.floor, cfg.cap) * 100.0).round() / 100.0;
    let balance = needed(demand) - i32::try_from(supply).unwrap_or(i32::MAX);
    let (end_credit_cents, start_discount_cents) = if balance > 0 {
        (cfg.end_credit_cents, 0)
    } else if balance < -2 {
        (0, cfg.start_discount_cents)
    } else {
        (0, 0)
    };
    let reason = format!(
        "{demand:.1} requests forecast for {supply_now} rentable vehicle{}{}: {}; multiplier {:.2} (bounds {:.2}–{:.2}{})",
        if supply_now == 1 { "" } else { "s" },
        if arriving > 0 {
            format!(" and {arriving} arriving")
        } else {
            String::new()
        },
        match balance {
            b if b > 0 => format!("{b} short, riders ending trips here earn a credit"),
            b if b < -2 => format!("{} spare, riders starting trips here get a discount", -b),
            _ => "balanced".to_owned(),
        },
        multiplier,
        cfg.floor,
        cfg.cap,
        if previous.is_some() { ", smoothed" } else { "" }
    );
    ZonePrice {
        multiplier,
        forecast_demand: demand,
        supply: supply_now,
        forecast_returns: returns,
        balance,
        end_credit_cents,
        start_discount_cents,
        reason,
    }
}

/// A city's incentive budget for one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Day (local day number) the spending belongs to.
    pub day: i64,
    /// Spent so far that day, cents.
    pub spent_cents: i64,
}

impl Budget {
    /// Spends `cents` on `day` if the day's budget allows; returns whether it did.
    pub fn spend(&mut self, day: i64, cents: i64, cfg: &PricingConfig) -> bool {
        if day != self.day {
            self.day = day;
            self.spent_cents = 0;
        }
        if self.spent_cents + cents > cfg.daily_budget_cents {
            return false;
        }
        self.spent_cents += cents;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scarce_zones_cost_more_idle_zones_less_within_bounds() {
        let cfg = PricingConfig::default();
        let hot = price_zone(20.0, 2, None, &cfg);
        let cold = price_zone(0.0, 15, None, &cfg);
        let even = price_zone(4.0, 4, None, &cfg);
        assert!((hot.multiplier - cfg.cap).abs() < 1e-9, "{hot:?}");
        assert!((cold.multiplier - cfg.floor).abs() < 1e-9, "{cold:?}");
        assert!((even.multiplier - 1.0).abs() < 1e-9, "{even:?}");
        assert!(hot.end_credit_cents > 0 && hot.start_discount_cents == 0);
        assert!(cold.start_discount_cents > 0 && cold.end_credit_cents == 0);
        assert!(hot.reason.contains("short"), "{}", hot.reason);
        assert!(cold.reason.contains("spare"), "{}", cold.reason);
    }

    #[test]
    fn smoothing_moves_halfway_and_budgets_reset_daily() {
        let cfg = PricingConfig::default();
        let p = price_zone(20.0, 2, Some(1.0), &cfg);
        assert!((p.multiplier - 1.25).abs() < 1e-9, "{p:?}");
        let mut b = Budget {
            day: 0,
            spent_cents: 0,
        };
        let tight = PricingConfig {
            daily_budget_cents: 250,
            ..cfg
        };
        assert!(b.spend(1, 100, &tight));
        assert!(b.spend(1, 100, &tight));
        assert!(!b.spend(1, 100, &tight));
        assert!(b.spend(2, 100, &tight));
    }

    #[test]
    fn vehicles_arriving_count_as_supply() {
        let cfg = PricingConfig::default();
        let short = price_zone_flow(10.0, 2, 0.0, None, &cfg);
        let refilled = price_zone_flow(10.0, 2, 8.6, None, &cfg);
        assert!(refilled.multiplier < short.multiplier, "{refilled:?}");
        assert!(refilled.balance < short.balance);
        assert_eq!(refilled.supply, 2);
        assert!(
            refilled.reason.contains("and 8 arriving"),
            "{}",
            refilled.reason
        );
        assert_eq!(price_zone(10.0, 2, None, &cfg), short);
        assert_eq!(price_zone_flow(10.0, 2, f64::NAN, None, &cfg), short);
    }

    #[test]
    fn a_zone_with_expected_riders_needs_a_vehicle() {
        assert_eq!(needed(0.0), 0);
        assert_eq!(needed(0.35), 1);
        assert_eq!(needed(3.0), 4);
    }
}
