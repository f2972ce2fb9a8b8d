//! Geofences and crossings.
//!
//! A crossing is a pure function of the previous and the new position of a vehicle and the
//! city's fences: the fences that contain one position but not the other. The caller evaluates
//! it only for reports the ingest rules *applied* (strictly newer than the last accepted one), so
//! duplicated or reordered telemetry can never invent a crossing: a redelivery is not applied,
//! and a report older than the latest is refused as stale.

use geo::{BoundingRect, Contains, Coord, LineString, Point, Polygon, Rect};
use mobility_core::{LatLon, ParseError, VehicleType};

/// Most vertices of one fence (bounds the cost of every containment test).
pub const FENCE_VERTICES_MAX: usize = 5_000;
/// Most fences in one city (bounds the per-report work).
pub const FENCES_PER_CITY_MAX: usize = 1_000;

/// What a zone means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    /// Where service runs; leaving it raises an alert.
    OperatingArea,
    /// Trips may not end here (a fee applies).
    NoParking,
    /// Vehicles may not be ridden here; entering raises an alert.
    NoRiding,
    /// Speed is capped here.
    SlowZone {
        /// The cap, km/h.
        speed_limit_kmh: u8,
    },
    /// Preferred parking (incentives later).
    ParkingHub,
}

impl ZoneKind {
    /// Parses a kind name (and the speed limit slow zones need).
    pub fn parse(name: &str, speed_limit_kmh: Option<i64>) -> Result<Self, ParseError> {
        let kind = match name {
            "operating_area" => Self::OperatingArea,
            "no_parking" => Self::NoParking,
            "no_riding" => Self::NoRiding,
            "parking_hub" => Self::ParkingHub,
            "slow_zone" => {
                let kmh = speed_limit_kmh
                    .and_then(|k| u8::try_from(k).ok())
                    .filter(|k| (1..=mobility_core::command::SPEED_LIMIT_KMH_MAX).contains(k))
                    .ok_or_else(|| zone_error("slow_zone needs speed_limit_kmh in 1..=130"))?;
                return Ok(Self::SlowZone {
                    speed_limit_kmh: kmh,
                });
            }
            other => {
                return Err(zone_error(&format!(
                    "{other:?} is not one of operating_area, no_parking, no_riding, slow_zone, parking_hub"
                )));
            }
        };
        if speed_limit_kmh.is_some() {
            return Err(zone_error("only slow_zone takes speed_limit_kmh"));
        }
        Ok(kind)
    }

    /// The kind's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::OperatingArea => "operating_area",
            Self::NoParking => "no_parking",
            Self::NoRiding => "no_riding",
            Self::SlowZone { .. } => "slow_zone",
            Self::ParkingHub => "parking_hub",
        }
    }

    /// The slow zone's limit, if this is one.
    #[must_use]
    pub const fn speed_limit_kmh(self) -> Option<u8> {
        match self {
            Self::SlowZone { speed_limit_kmh } => Some(speed_limit_kmh),
            _ => None,
        }
    }
}

fn zone_error(reason: &str) -> ParseError {
    ParseError {
        what: "geofence",
        reason: reason.to_owned(),
    }
}

/// The speed limit a vehicle returns to outside slow zones, km/h.
#[must_use]
pub const fn default_speed_limit_kmh(t: VehicleType) -> u8 {
    match t {
        VehicleType::Scooter | VehicleType::Ebike => 25,
        VehicleType::Car => 130,
        VehicleType::Van => 120,
    }
}

/// One zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Geofence {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it means.
    pub kind: ZoneKind,
    ring: Vec<LatLon>,
    polygon: Polygon<f64>,
    bbox: Rect<f64>,
}

impl Geofence {
    /// Builds a fence from its outer ring (open or closed, at least 3 distinct vertices).
    pub fn new(
        id: String,
        name: String,
        kind: ZoneKind,
        mut ring: Vec<LatLon>,
    ) -> Result<Self, ParseError> {
        if ring.len() > 1 && ring.first() == ring.last() {
            ring.pop();
        }
        if ring.len() < 3 || ring.len() > FENCE_VERTICES_MAX {
            return Err(zone_error(&format!(
                "a geofence needs 3 to {FENCE_VERTICES_MAX} distinct vertices, not {}",
                ring.len()
            )));
        }
        let coords: Vec<Coord<f64>> = ring
            .iter()
            .map(|p| Coord {
                x: p.lon(),
                y: p.lat(),
            })
            .collect();
        let polygon = Polygon::new(LineString::from(coords), vec![]);
        let bbox = polygon
            .bounding_rect()
            .ok_or_else(|| zone_error("the polygon has no extent"))?;
        Ok(Self {
            id,
            name,
            kind,
            ring,
            polygon,
            bbox,
        })
    }

    /// The outer ring, open.
    #[must_use]
    pub fn ring(&self) -> &[LatLon] {
        &self.ring
    }

    /// South-west and north-east corners of the bounding box.
    #[must_use]
    pub fn bounds(&self) -> (LatLon, LatLon) {
        let (min, max) = (self.bbox.min(), self.bbox.max());
        (
            LatLon::new(min.y, min.x).unwrap_or(LatLon::ORIGIN),
            LatLon::new(max.y, max.x).unwrap_or(LatLon::ORIGIN),
        )
    }

    /// Is `p` inside?
    #[must_use]
    pub fn contains(&self, p: LatLon) -> bool {
        let pt = Point::new(p.lon(), p.lat());
        self.bbox.contains(&pt) && self.polygon.contains(&pt)
    }
}

/// Entering or leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Was outside, is inside.
    Enter,
    /// Was inside, is outside.
    Exit,
}

/// One crossing of one fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// The fence's id.
    pub fence_id: String,
    /// Its kind.
    pub kind: ZoneKind,
    /// Which way.
    pub direction: Direction,
}

/// A city's fences.
#[derive(Debug, Clone, Default)]
pub struct FenceSet {
    fences: Vec<Geofence>,
}

impl FenceSet {
    /// A set of fences (at most [`FENCES_PER_CITY_MAX`]; extra ones are ignored).
    #[must_use]
    pub fn new(mut fences: Vec<Geofence>) -> Self {
        fences.truncate(FENCES_PER_CITY_MAX);
        fences.sort_by(|a, b| a.id.cmp(&b.id));
        Self { fences }
    }

    /// The fences.
    #[must_use]
    pub fn fences(&self) -> &[Geofence] {
        &self.fences
    }

    /// The crossings between `previous` (`None`: the vehicle had no position, so it was in no
    /// fence) and `current`, in fence-id order.
    #[must_use]
    pub fn crossings(&self, previous: Option<LatLon>, current: LatLon) -> Vec<Crossing> {
        self.fences
            .iter()
            .filter_map(|f| {
                let was = previous.is_some_and(|p| f.contains(p));
                let is = f.contains(current);
                let direction = match (was, is) {
                    (false, true) => Direction::Enter,
                    (true, false) => Direction::Exit,
                    _ => return None,
                };
                Some(Crossing {
                    fence_id: f.id.clone(),
                    kind: f.kind,
                    direction,
                })
            })
            .collect()
    }

    /// The fences containing `p`.
    pub fn containing(&self, p: LatLon) -> impl Iterator<Item = &Geofence> {
        self.fences.iter().filter(move |f| f.contains(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).unwrap()
    }

    fn square(id: &str, kind: ZoneKind, lat: f64, lon: f64, size: f64) -> Geofence {
        Geofence::new(
            id.into(),
            id.into(),
            kind,
            vec![
                p(lat, lon),
                p(lat, lon + size),
                p(lat + size, lon + size),
                p(lat + size, lon),
            ],
        )
        .unwrap()
    }

    #[test]
    fn kinds_parse_with_their_parameters() {
        assert_eq!(
            ZoneKind::parse("slow_zone", Some(10))
                .unwrap()
                .speed_limit_kmh(),
            Some(10)
        );
        assert!(ZoneKind::parse("slow_zone", None).is_err());
        assert!(ZoneKind::parse("slow_zone", Some(0)).is_err());
        assert!(ZoneKind::parse("no_riding", Some(10)).is_err());
        assert!(ZoneKind::parse("lava", None).is_err());
        assert_eq!(
            ZoneKind::parse("parking_hub", None).unwrap().name(),
            "parking_hub"
        );
    }

    #[test]
    fn crossings_are_the_symmetric_difference() {
        let set = FenceSet::new(vec![
            square(
                "a-slow",
                ZoneKind::SlowZone {
                    speed_limit_kmh: 10,
                },
                41.0,
                2.0,
                0.01,
            ),
            square("b-noride", ZoneKind::NoRiding, 41.005, 2.005, 0.01),
        ]);
        let outside = p(40.9, 1.9);
        let in_a = p(41.001, 2.001);
        let in_both = p(41.007, 2.007);
        assert!(set.crossings(Some(outside), outside).is_empty());
        let c = set.crossings(Some(outside), in_a);
        assert_eq!(
            (c.len(), c[0].fence_id.as_str(), c[0].direction),
            (1, "a-slow", Direction::Enter)
        );
        let c = set.crossings(Some(in_a), in_both);
        assert_eq!(
            (c.len(), c[0].fence_id.as_str(), c[0].direction),
            (1, "b-noride", Direction::Enter)
        );
        let c = set.crossings(Some(in_both), outside);
        assert_eq!(
            c.iter().map(|c| c.direction).collect::<Vec<_>>(),
            vec![Direction::Exit, Direction::Exit]
        );
        assert_eq!(
            set.crossings(None, in_a).len(),
            1,
            "first position inside a fence is an entry"
        );
        assert_eq!(set.containing(in_both).count(), 2);
    }

    #[test]
    fn degenerate_fences_are_refused() {
        assert!(
            Geofence::new(
                "x".into(),
                "x".into(),
                ZoneKind::NoParking,
                vec![p(1.0, 1.0), p(2.0, 2.0)]
            )
            .is_err()
        );
    }
}
