//! Know-your-customer checks behind a provider interface. The built-in provider is a manual
//! review queue for staff; an external KYC service implements [`KycProvider`] and answers at
//! once or later. Cars and vans can be booked only with a verified, unexpired driving licence.

use std::sync::Arc;

use async_trait::async_trait;
use mobility_core::TimestampMs;
use mobility_store::{KycRecord, Store, StoreError};

/// What a provider says about a new submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A person will look at it (or the provider answers later).
    Pending,
    /// Verified.
    Verified,
    /// Rejected, with the reason the rider is shown.
    Rejected(String),
}

/// A KYC service.
#[async_trait]
pub trait KycProvider: Send + Sync + std::fmt::Debug {
    /// Its name, recorded with each submission.
    fn name(&self) -> &'static str;
    /// Looks at a new submission.
    async fn check(&self, submission: &KycRecord) -> Verdict;
}

/// The built-in provider: every submission waits in the staff review queue.
#[derive(Debug, Default)]
pub struct ManualReview;

#[async_trait]
impl KycProvider for ManualReview {
    fn name(&self) -> &'static str {
        "manual"
    }

    async fn check(&self, _: &KycRecord) -> Verdict {
        Verdict::Pending
    }
}

/// A checked date, `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<(i32, u32, u32), String> {
    let bad = || format!("{s:?} is not a date like 2031-12-31");
    let mut it = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (i32, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1900..=2200).contains(&y) || d == 0 || d > days_in_month {
        return Err(bad());
    }
    Ok((y, m, d))
}

/// Today's date (UTC) as `YYYY-MM-DD`, from a timestamp.
#[must_use]
pub fn date_of(t: TimestampMs) -> String {
    // Civil from days (Howard Hinnant).
    let z = t.0.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// KYC services.
#[derive(Debug)]
pub struct Kyc {
    store: Arc<dyn Store>,
    provider: Arc<dyn KycProvider>,
}

impl Kyc {
    /// KYC with a provider.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, provider: Arc<dyn KycProvider>) -> Self {
        Self { store, provider }
    }

    /// Records a submission and asks the provider.
    pub async fn submit(
        &self,
        mut k: KycRecord,
        now: TimestampMs,
    ) -> Result<KycRecord, StoreError> {
        k.provider = self.provider.name().to_owned();
        match self.provider.check(&k).await {
            Verdict::Pending => {}
            Verdict::Verified => {
                k.state = "verified".into();
                k.decided_at = Some(now);
                k.decided_by = Some(k.provider.clone());
            }
            Verdict::Rejected(reason) => {
                k.state = "rejected".into();
                k.reason = Some(reason);
                k.decided_at = Some(now);
                k.decided_by = Some(k.provider.clone());
            }
        }
        self.store.insert_kyc(&k).await?;
        metrics::counter!("kyc_submissions_total", "kind" => k.kind.clone(), "state" => k.state.clone())
            .increment(1);
        Ok(k)
    }

    /// Whether the rider holds a verified driving licence valid on `now`'s date.
    pub async fn may_drive(&self, user_id: &str, now: TimestampMs) -> Result<bool, StoreError> {
        let today = date_of(now);
        Ok(self.store.user_kyc(user_id).await?.iter().any(|k| {
            k.kind == "driving_licence"
                && k.state == "verified"
                && k.expires_on.as_deref().is_some_and(|e| e >= today.as_str())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_and_printed() {
        assert!(parse_date("2031-12-31").is_ok());
        assert!(parse_date("2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2031-13-01",
            "2031-1-01",
            "31-12-2031",
            "",
            "2031-12-31x",
            "2031-12-00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert_eq!(date_of(TimestampMs(0)), "1970-01-01");
        assert_eq!(date_of(TimestampMs(1_795_000_000_000)), "2026-11-18");
        assert_eq!(date_of(TimestampMs(951_782_400_000)), "2000-02-29");
    }
}
