//! Identifiers. Each is its own type so a city id can never be passed where a vehicle id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::ParseError;

/// A vehicle's platform-wide identity: a UUID, as MDS requires for `device_id`.
///
/// The core never generates ids (no randomness here); the edges create them, e.g. with UUIDv7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VehicleId(Uuid);

impl VehicleId {
    /// Wraps an existing UUID.
    #[must_use]
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// Parses the hyphenated UUID form (any case).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|e| ParseError::new("vehicle id", format!("{s:?} is not a UUID ({e})")))
    }

    /// The underlying UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for VehicleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl TryFrom<String> for VehicleId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<VehicleId> for String {
    fn from(id: VehicleId) -> Self {
        id.to_string()
    }
}

/// A city (operating area) identifier: a short slug such as `barcelona` or `new-york`.
///
/// Rules: 1 to [`CityId::LEN_MAX`] characters of `a-z`, `0-9` and `-`, starting with a letter.
/// Slugs appear in URLs (`/gbfs/{city}/gbfs.json`) and MQTT topics, so nothing else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CityId(String);

impl CityId {
    /// The longest slug accepted.
    pub const LEN_MAX: usize = 64;

    /// Parses a slug.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let what = "city id";
        if s.is_empty() || s.len() > Self::LEN_MAX {
            return Err(ParseError::new(
                what,
                format!("{s:?} must be 1 to {} characters long", Self::LEN_MAX),
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(ParseError::new(
                what,
                format!("{s:?} must start with a lowercase letter"),
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(ParseError::new(
                what,
                format!("{s:?} contains {c:?}; only a-z, 0-9 and '-' are allowed"),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The slug.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CityId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CityId> for String {
    fn from(id: CityId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vehicle_id_round_trips_and_rejects_garbage() {
        let s = "0190f1c2-7a3b-7cde-8f01-23456789abcd";
        let id = VehicleId::parse(s).unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(
            VehicleId::parse("0190F1C2-7A3B-7CDE-8F01-23456789ABCD").unwrap(),
            id
        );
        let err = VehicleId::parse("scooter-1").unwrap_err();
        assert_eq!(err.what, "vehicle id");
        assert!(err.to_string().contains("not a UUID"), "{err}");
    }

    #[test]
    fn city_id_accepts_slugs_only() {
        for ok in ["barcelona", "new-york", "a", "c3po"] {
            assert_eq!(CityId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "Barcelona",
            "1city",
            "new york",
            "city/x",
            "é",
            &"a".repeat(65),
        ] {
            assert!(CityId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn ids_deserialize_through_parsing() {
        let city: Result<CityId, _> = serde_json::from_str("\"Bad City\"");
        assert!(city.is_err());
        let id: VehicleId =
            serde_json::from_str("\"0190f1c2-7a3b-7cde-8f01-23456789abcd\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"0190f1c2-7a3b-7cde-8f01-23456789abcd\""
        );
    }
}
