//! Cities and their operating areas.

use geo::{Contains, Coord, LineString, Polygon};
use serde::{Deserialize, Serialize};

use crate::{CityId, Currency, LatLon, ParseError};

/// A city the platform operates in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct City {
    /// Slug used in URLs and topics.
    pub id: CityId,
    /// Display name.
    pub name: String,
    /// IANA time zone name, e.g. `Europe/Madrid`; local time drives demand and operating hours.
    pub timezone: String,
    /// Currency prices are charged in.
    pub currency: Currency,
    /// Where vehicles may be ridden and parked; `None` until configured.
    pub operating_area: Option<OperatingArea>,
}

impl City {
    /// The longest display name accepted.
    pub const NAME_LEN_MAX: usize = 200;

    /// Validates the free-text fields.
    pub fn new(
        id: CityId,
        name: &str,
        timezone: &str,
        currency: Currency,
        operating_area: Option<OperatingArea>,
    ) -> Result<Self, ParseError> {
        let name = name.trim();
        if name.is_empty() || name.len() > Self::NAME_LEN_MAX {
            return Err(ParseError::new(
                "city name",
                format!("must be 1 to {} characters", Self::NAME_LEN_MAX),
            ));
        }
        let tz_ok = !timezone.is_empty()
            && timezone.len() <= 64
            && timezone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
        if !tz_ok {
            return Err(ParseError::new(
                "time zone",
                format!("{timezone:?} is not an IANA time zone name such as \"Europe/Madrid\""),
            ));
        }
        Ok(Self {
            id,
            name: name.to_owned(),
            timezone: timezone.to_owned(),
            currency,
            operating_area,
        })
    }
}

/// A simple polygon (one outer ring, no holes) bounding where a city's service runs.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatingArea {
    ring: Vec<LatLon>,
    polygon: Polygon<f64>,
}

impl OperatingArea {
    /// The most vertices accepted; bounds the cost of every containment check.
    pub const VERTICES_MAX: usize = 10_000;

    /// Builds the area from its outer ring. The ring may be given open or closed.
    pub fn new(mut ring: Vec<LatLon>) -> Result<Self, ParseError> {
        if ring.len() > 1 && ring.first() == ring.last() {
            ring.pop();
        }
        if ring.len() < 3 {
            return Err(ParseError::new(
                "operating area",
                "a polygon needs at least 3 distinct vertices",
            ));
        }
        if ring.len() > Self::VERTICES_MAX {
            return Err(ParseError::new(
                "operating area",
                format!("at most {} vertices are allowed", Self::VERTICES_MAX),
            ));
        }
        let coords: Vec<Coord<f64>> = ring
            .iter()
            .map(|p| Coord {
                x: p.lon(),
                y: p.lat(),
            })
            .collect();
        let polygon = Polygon::new(LineString::from(coords), vec![]);
        Ok(Self { ring, polygon })
    }

    /// The outer ring, open (first vertex not repeated).
    #[must_use]
    pub fn ring(&self) -> &[LatLon] {
        &self.ring
    }

    /// Is the position strictly inside the area?
    #[must_use]
    pub fn contains(&self, p: LatLon) -> bool {
        self.polygon.contains(&geo::Point::new(p.lon(), p.lat()))
    }
}

impl Serialize for OperatingArea {
    /// As a list of `[lon, lat]` pairs (GeoJSON coordinate order).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<[f64; 2]> = self.ring.iter().map(|p| [p.lon(), p.lat()]).collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OperatingArea {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<[f64; 2]> = Vec::deserialize(d)?;
        let ring = pairs
            .into_iter()
            .map(|[lon, lat]| LatLon::new(lat, lon))
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::de::Error::custom)?;
        Self::new(ring).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> OperatingArea {
        let p = |lat, lon| LatLon::new(lat, lon).unwrap();
        OperatingArea::new(vec![
            p(41.0, 2.0),
            p(41.0, 2.2),
            p(41.2, 2.2),
            p(41.2, 2.0),
            p(41.0, 2.0),
        ])
        .unwrap()
    }

    #[test]
    fn containment() {
        let a = square();
        assert_eq!(a.ring().len(), 4, "closing vertex is dropped");
        assert!(a.contains(LatLon::new(41.1, 2.1).unwrap()));
        assert!(!a.contains(LatLon::new(41.3, 2.1).unwrap()));
    }

    #[test]
    fn degenerate_polygons_are_rejected() {
        let p = |lat, lon| LatLon::new(lat, lon).unwrap();
        assert!(OperatingArea::new(vec![p(1.0, 1.0), p(2.0, 2.0), p(1.0, 1.0)]).is_err());
        assert!(OperatingArea::new(vec![]).is_err());
    }

    #[test]
    fn serde_round_trip_in_geojson_order() {
        let a = square();
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.starts_with("[[2.0,41.0]"), "{json}");
        let back: OperatingArea = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<OperatingArea>("[[2.0,141.0],[2,1],[3,1]]").is_err());
    }

    #[test]
    fn city_validation() {
        let id = CityId::parse("barcelona").unwrap();
        assert!(
            City::new(
                id.clone(),
                "Barcelona",
                "Europe/Madrid",
                Currency::EUR,
                None
            )
            .is_ok()
        );
        assert!(City::new(id.clone(), "  ", "Europe/Madrid", Currency::EUR, None).is_err());
        assert!(City::new(id, "Barcelona", "Europe Madrid", Currency::EUR, None).is_err());
    }
}
