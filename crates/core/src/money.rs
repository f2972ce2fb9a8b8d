//! Money: integer minor units of one ISO 4217 currency. Never floating point.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ParseError;

/// An ISO 4217 alphabetic currency code such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Currencies whose minor unit is not the usual 1/100 (ISO 4217 list).
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

impl Currency {
    /// Euro.
    pub const EUR: Self = Self(*b"EUR");
    /// US dollar.
    pub const USD: Self = Self(*b"USD");

    /// Three ASCII letters; lowercase input is upper-cased.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bytes = s.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(ParseError::new(
                "currency",
                format!("{s:?} is not a three-letter ISO 4217 code such as \"EUR\""),
            ));
        }
        Ok(Self([
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ]))
    }

    /// The code, e.g. `"EUR"`.
    #[must_use]
    pub fn code(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Number of decimal digits of the minor unit (2 for EUR, 0 for JPY, 3 for KWD).
    #[must_use]
    pub fn minor_digits(&self) -> u32 {
        let code = self.code();
        if ZERO_DECIMALS.contains(&code) {
            0
        } else if THREE_DECIMALS.contains(&code) {
            3
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.code().to_owned()
    }
}

/// An amount of money in integer minor units (cents for EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units; negative for credits and refunds.
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

/// Arithmetic on money that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Two amounts of different currencies were combined.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit in 64 bits of minor units.
    #[error("amount overflow")]
    Overflow,
}

impl Money {
    /// `minor` units of `currency`.
    #[must_use]
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero of `currency`.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// Sum of two amounts of the same currency.
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.minor
            .checked_add(other.minor)
            .map(|minor| Self::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// Difference of two amounts of the same currency.
    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        self.checked_add(Self::new(
            other.minor.checked_neg().ok_or(MoneyError::Overflow)?,
            other.currency,
        ))
    }

    /// The amount times an integer quantity (e.g. minutes).
    pub fn checked_mul(self, qty: i64) -> Result<Self, MoneyError> {
        self.minor
            .checked_mul(qty)
            .map(|minor| Self::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    /// `12.34 EUR`, `-0.50 EUR`, `1200 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let scale = 10u64.pow(digits);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = digits as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_parsing() {
        assert_eq!(Currency::parse("eur").unwrap(), Currency::EUR);
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("E1R").is_err());
        assert!(Currency::parse("").is_err());
        assert_eq!(Currency::parse("JPY").unwrap().minor_digits(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_digits(), 3);
    }

    #[test]
    fn display_uses_minor_digits() {
        assert_eq!(Money::new(1234, Currency::EUR).to_string(), "12.34 EUR");
        assert_eq!(Money::new(-50, Currency::EUR).to_string(), "-0.50 EUR");
        assert_eq!(Money::new(7, Currency::USD).to_string(), "0.07 USD");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::new(1200, jpy).to_string(), "1200 JPY");
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::new(1005, kwd).to_string(), "1.005 KWD");
        assert_eq!(
            Money::new(i64::MIN, Currency::EUR).to_string(),
            "-92233720368547758.08 EUR"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::new(100, Currency::EUR);
        assert_eq!(a.checked_add(a).unwrap().minor, 200);
        assert_eq!(
            a.checked_sub(Money::new(150, Currency::EUR)).unwrap().minor,
            -50
        );
        assert_eq!(a.checked_mul(3).unwrap().minor, 300);
        assert_eq!(
            a.checked_add(Money::new(1, Currency::USD)),
            Err(MoneyError::CurrencyMismatch(Currency::EUR, Currency::USD))
        );
        assert_eq!(
            Money::new(i64::MAX, Currency::EUR).checked_add(a),
            Err(MoneyError::Overflow)
        );
        assert_eq!(a.checked_mul(i64::MAX), Err(MoneyError::Overflow));
        assert_eq!(
            a.checked_sub(Money::new(i64::MIN, Currency::EUR)),
            Err(MoneyError::Overflow)
        );
    }
}
