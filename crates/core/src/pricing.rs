//! Fares: a pure function of the tariff, the trip's duration and distance, and any parking fee.
//!
//! Rules (what riders are told):
//! - every started minute is charged (a 61-second trip is 2 minutes);
//! - distance is charged per metre at the per-km rate, rounded half up to the minor unit;
//! - unlock fee + time + distance is capped by the daily cap for every started 24 hours;
//! - a parking fee (ending in a no-parking zone) is added on top and never capped;
//! - a multiplier (dynamic pricing, in per-mille: 1000 = ×1.0) scales time and distance only.

use serde::{Deserialize, Serialize};

use crate::{Currency, Money, money::MoneyError};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// What a trip costs, per city and vehicle type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    /// Charged once per trip.
    pub unlock_fee: Money,
    /// Per started minute.
    pub per_minute: Money,
    /// Per kilometre (charged per metre).
    pub per_km: Money,
    /// Most charged for unlock, time and distance per started 24 hours, if capped.
    pub daily_cap: Option<Money>,
}

/// A fare, itemised for the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fare {
    /// Unlock fee.
    pub unlock: Money,
    /// Time charge (after the multiplier).
    pub time: Money,
    /// Distance charge (after the multiplier).
    pub distance: Money,
    /// What the daily cap took off (zero or negative).
    pub cap_discount: Money,
    /// Parking fee.
    pub parking_fee: Money,
    /// Total to pay.
    pub total: Money,
}

impl Tariff {
    /// The currency of every amount, if they agree.
    pub fn currency(&self) -> Result<Currency, MoneyError> {
        let c = self.unlock_fee.currency;
        for m in [Some(self.per_minute), Some(self.per_km), self.daily_cap]
            .into_iter()
            .flatten()
        {
            if m.currency != c {
                return Err(MoneyError::CurrencyMismatch(c, m.currency));
            }
        }
        Ok(c)
    }
}

fn scale(m: Money, num: i128, den: i128) -> Result<Money, MoneyError> {
    // Round half up, in i128 so no intermediate overflows.
    let v = (i128::from(m.minor) * num * 2 + den) / (den * 2);
    i64::try_from(v)
        .map(|minor| Money::new(minor, m.currency))
        .map_err(|_| MoneyError::Overflow)
}

/// The fare of a trip. `duration_ms` and `distance_m` below zero count as zero.
pub fn fare(
    tariff: &Tariff,
    duration_ms: i64,
    distance_m: u64,
    parking_fee: Money,
    multiplier_permille: u32,
) -> Result<Fare, MoneyError> {
    let currency = tariff.currency()?;
    if parking_fee.currency != currency {
        return Err(MoneyError::CurrencyMismatch(currency, parking_fee.currency));
    }
    let duration_ms = duration_ms.max(0);
    let minutes = (duration_ms + MINUTE_MS - 1) / MINUTE_MS;
    let mult = i128::from(multiplier_permille);
    let time = scale(tariff.per_minute.checked_mul(minutes)?, mult, 1_000)?;
    let distance = scale(tariff.per_km, i128::from(distance_m) * mult, 1_000 * 1_000)?;
    let raw = tariff.unlock_fee.checked_add(time)?.checked_add(distance)?;
    let cap_discount = match tariff.daily_cap {
        Some(cap) => {
            let days = ((duration_ms + DAY_MS - 1) / DAY_MS).max(1);
            let limit = cap.checked_mul(days)?;
            if raw.minor > limit.minor {
                limit.checked_sub(raw)?
            } else {
                Money::zero(currency)
            }
        }
        None => Money::zero(currency),
    };
    let total = raw.checked_add(cap_discount)?.checked_add(parking_fee)?;
    Ok(Fare {
        unlock: tariff.unlock_fee,
        time,
        distance,
        cap_discount,
        parking_fee,
        total,
    })
}

/// What a pass (a commuter's monthly pass, say) gives its holder on every trip it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassBenefit {
    /// No unlock fee.
    pub free_unlock: bool,
    /// The first minutes of each trip are free.
    pub free_minutes: u32,
}

/// The fare of a trip taken with a pass, and what the pass saved (the fare without it, minus
/// this one; never negative). The pass waives the unlock fee and/or the first minutes; distance,
/// the daily cap and parking fees apply as without a pass.
pub fn fare_with_pass(
    tariff: &Tariff,
    duration_ms: i64,
    distance_m: u64,
    parking_fee: Money,
    multiplier_permille: u32,
    pass: PassBenefit,
) -> Result<(Fare, Money), MoneyError> {
    let without = fare(
        tariff,
        duration_ms,
        distance_m,
        parking_fee,
        multiplier_permille,
    )?;
    let mut covered = *tariff;
    if pass.free_unlock {
        covered.unlock_fee = Money::zero(tariff.unlock_fee.currency);
    }
    let free_ms = i64::from(pass.free_minutes) * MINUTE_MS;
    let charged_ms = duration_ms.max(0).saturating_sub(free_ms);
    let mut with = fare(
        &covered,
        charged_ms,
        distance_m,
        parking_fee,
        multiplier_permille,
    )?;
    // A free stretch still counts toward the daily cap's days, so the pass never costs more.
    if with.total.minor > without.total.minor {
        with = without;
    }
    let saved = without.total.checked_sub(with.total)?;
    Ok((with, saved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_waives_the_unlock_and_the_first_minutes_and_never_costs_more() {
        let pass = PassBenefit {
            free_unlock: true,
            free_minutes: 30,
        };
        // 25 minutes: all free.
        let (f, saved) =
            fare_with_pass(&scooter(), 25 * 60_000, 3_000, eur(0), 1_000, pass).unwrap();
        assert_eq!((f.total, saved), (eur(0), eur(100 + 25 * 25)));
        // 40 minutes: 10 charged.
        let (f, saved) = fare_with_pass(&scooter(), 40 * 60_000, 0, eur(0), 1_000, pass).unwrap();
        assert_eq!((f.unlock, f.time, f.total), (eur(0), eur(250), eur(250)));
        assert_eq!(saved, eur(100 + 30 * 25));
        // Parking fees are not covered.
        let (f, _) = fare_with_pass(&scooter(), 60_000, 0, eur(500), 1_000, pass).unwrap();
        assert_eq!(f.total, eur(500));
        // A pass with nothing in it changes nothing.
        let none = PassBenefit {
            free_unlock: false,
            free_minutes: 0,
        };
        let (f, saved) = fare_with_pass(&car(), 90 * 60_000, 12_000, eur(0), 1_000, none).unwrap();
        assert_eq!(f, fare(&car(), 90 * 60_000, 12_000, eur(0), 1_000).unwrap());
        assert_eq!(saved, eur(0));
    }

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn scooter() -> Tariff {
        Tariff {
            unlock_fee: eur(100),
            per_minute: eur(25),
            per_km: eur(0),
            daily_cap: Some(eur(3_000)),
        }
    }

    fn car() -> Tariff {
        Tariff {
            unlock_fee: eur(0),
            per_minute: eur(32),
            per_km: eur(19),
            daily_cap: Some(eur(6_900)),
        }
    }

    #[test]
    fn fares_for_a_table_of_trips() {
        // (tariff, duration ms, distance m, parking fee, multiplier ‰, expected total)
        let cases: &[(Tariff, i64, u64, i64, u32, i64)] = &[
            (scooter(), 0, 0, 0, 1_000, 100),      // unlock only
            (scooter(), 1, 0, 0, 1_000, 125),      // a started minute
            (scooter(), 60_000, 0, 0, 1_000, 125), // exactly one minute
            (scooter(), 61_000, 0, 0, 1_000, 150), // 2 started minutes
            (scooter(), 12 * 60_000, 2_400, 0, 1_000, 400),
            (scooter(), 12 * 60_000, 2_400, 500, 1_000, 900), // + no-parking fee
            (scooter(), 12 * 60_000, 0, 0, 1_500, 550),       // ×1.5 on time only
            (scooter(), 3 * 3_600_000, 0, 0, 1_000, 3_000),   // capped: 100 + 4500 > 3000
            (scooter(), 3 * 3_600_000, 0, 500, 1_000, 3_500), // fee not capped
            (scooter(), 25 * 3_600_000, 0, 0, 1_000, 6_000),  // two started days
            (car(), 30 * 60_000, 12_345, 0, 1_000, 960 + 235), // 19 × 12.345 = 234.555 → 235
            (car(), 30 * 60_000, 12_345, 0, 800, 768 + 188),  // ×0.8: 187.644 → 188
            (scooter(), -5, 0, 0, 1_000, 100),                // negative durations count as zero
        ];
        for (i, (t, d, m, fee, mult, want)) in cases.iter().enumerate() {
            let f = fare(t, *d, *m, eur(*fee), *mult).unwrap();
            assert_eq!(f.total, eur(*want), "case {i}: {f:?}");
            assert_eq!(
                f.unlock.minor
                    + f.time.minor
                    + f.distance.minor
                    + f.cap_discount.minor
                    + f.parking_fee.minor,
                f.total.minor,
                "case {i}: items add up"
            );
        }
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let usd = Money::new(100, Currency::parse("USD").unwrap());
        assert!(fare(&scooter(), 60_000, 0, usd, 1_000).is_err());
        let mut t = scooter();
        t.per_km = usd;
        assert!(fare(&t, 60_000, 0, eur(0), 1_000).is_err());
    }
}
