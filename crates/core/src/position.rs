//! Geographic positions (WGS 84).

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A WGS 84 position in degrees. Always finite, latitude in [-90, 90], longitude in [-180, 180].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLatLon")]
pub struct LatLon {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
struct RawLatLon {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawLatLon> for LatLon {
    type Error = ParseError;
    fn try_from(raw: RawLatLon) -> Result<Self, Self::Error> {
        Self::new(raw.lat, raw.lon)
    }
}

/// Mean Earth radius used for distances (IUGG), in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

impl LatLon {
    /// 0° N, 0° E.
    pub const ORIGIN: Self = Self { lat: 0.0, lon: 0.0 };

    /// Checks ranges and finiteness. NaN and infinities are rejected.
    pub fn new(lat: f64, lon: f64) -> Result<Self, ParseError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(ParseError::new(
                "latitude",
                format!("{lat} is not a number between -90 and 90"),
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(ParseError::new(
                "longitude",
                format!("{lon} is not a number between -180 and 180"),
            ));
        }
        Ok(Self { lat, lon })
    }

    /// Latitude in degrees.
    #[must_use]
    pub const fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    #[must_use]
    pub const fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle (haversine) distance in metres.
    #[must_use]
    pub fn distance_m(&self, other: &Self) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_out_of_range_and_non_finite() {
        assert!(LatLon::new(41.39, 2.17).is_ok());
        assert!(LatLon::new(90.0, 180.0).is_ok());
        assert!(LatLon::new(-90.0, -180.0).is_ok());
        for (lat, lon) in [
            (90.000_001, 0.0),
            (-91.0, 0.0),
            (0.0, 180.5),
            (0.0, -181.0),
            (f64::NAN, 0.0),
            (0.0, f64::NAN),
            (f64::INFINITY, 0.0),
            (0.0, f64::NEG_INFINITY),
        ] {
            assert!(LatLon::new(lat, lon).is_err(), "({lat}, {lon})");
        }
        let err = LatLon::new(99.0, 0.0).unwrap_err();
        assert_eq!(err.what, "latitude");
    }

    #[test]
    fn deserialization_checks_ranges() {
        assert!(serde_json::from_str::<LatLon>(r#"{"lat":41.4,"lon":2.1}"#).is_ok());
        assert!(serde_json::from_str::<LatLon>(r#"{"lat":141.4,"lon":2.1}"#).is_err());
    }

    #[test]
    fn known_distance() {
        // Barcelona Sagrada Família to Camp Nou is about 4.2 km.
        let a = LatLon::new(41.403_63, 2.174_36).unwrap();
        let b = LatLon::new(41.380_90, 2.122_82).unwrap();
        let d = a.distance_m(&b);
        assert!((4_900.0..5_000.0).contains(&d), "{d}");
    }

    proptest! {
        #[test]
        fn any_valid_pair_parses_and_distance_is_sane(
            lat in -90.0f64..=90.0, lon in -180.0f64..=180.0,
            lat2 in -90.0f64..=90.0, lon2 in -180.0f64..=180.0,
        ) {
            let a = LatLon::new(lat, lon).unwrap();
            let b = LatLon::new(lat2, lon2).unwrap();
            let d = a.distance_m(&b);
            prop_assert!(d >= 0.0);
            prop_assert!(d <= std::f64::consts::PI * EARTH_RADIUS_M + 1.0);
            prop_assert!((d - b.distance_m(&a)).abs() < 1e-6);
        }
    }
}
