//! The simulated city: where people are, where they go at what time, and the zones the operator
//! draws. The default is a Barcelona-sized city (lat 41.32–41.47, lon 2.07–2.23) with hotspots at
//! real places, so demo maps look familiar; any city can be described the same way.

use mobility_core::LatLon;
use serde::{Deserialize, Serialize};

/// What kind of place a hotspot is; it decides when trips start and end there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HotspotKind {
    /// Where people live: trips start here in the morning and end here in the evening.
    Residential,
    /// Offices: the reverse of residential.
    Office,
    /// Railway and metro interchanges: both directions at both peaks.
    Station,
    /// Campuses: morning arrivals, afternoon departures, quiet weekends.
    University,
    /// Beaches: afternoons, and much more at weekends.
    Beach,
    /// Bars and clubs: evenings out, late-night departures.
    Nightlife,
    /// Sights: daytime, more at weekends.
    Tourist,
}

/// Part of the day, in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Late,
    Morning,
    Midday,
    Evening,
    Night,
}

fn period(hour: u32) -> Period {
    match hour {
        0..=5 => Period::Late,
        6..=9 => Period::Morning,
        10..=15 => Period::Midday,
        16..=19 => Period::Evening,
        _ => Period::Night,
    }
}

impl HotspotKind {
    /// How strongly trips *start* here at `hour` (local), relative to the place's weight.
    #[must_use]
    pub fn produces(self, hour: u32, weekend: bool) -> f64 {
        use Period::{Evening, Late, Midday, Morning, Night};
        let p = period(hour);
        let base = match self {
            Self::Residential => match p {
                Morning => 3.0,
                Midday => 1.0,
                Evening => 0.6,
                Night => 0.8,
                Late => 0.5,
            },
            Self::Office => match p {
                Morning => 0.3,
                Midday => 1.2,
                Evening => 3.0,
                Night => 0.3,
                Late => 0.1,
            },
            Self::Station => match p {
                Morning => 2.0,
                Midday => 1.0,
                Evening => 1.5,
                Night => 0.6,
                Late => 0.2,
            },
            Self::University => match p {
                Morning => 0.3,
                Midday => 1.5,
                Evening => 1.5,
                Night => 0.2,
                Late => 0.1,
            },
            Self::Beach => match p {
                Morning => 0.1,
                Midday => 1.0,
                Evening => 1.5,
                Night => 0.5,
                Late => 0.1,
            },
            Self::Nightlife => match p {
                Morning => 0.1,
                Midday => 0.5,
                Evening => 0.8,
                Night => 1.5,
                Late => 3.0,
            },
            Self::Tourist => match p {
                Morning => 0.3,
                Midday => 1.5,
                Evening => 1.2,
                Night => 1.0,
                Late => 0.3,
            },
        };
        base * self.weekend_factor(weekend, p, true)
    }

    /// How strongly trips *end* here at `hour` (local), relative to the place's weight.
    #[must_use]
    pub fn attracts(self, hour: u32, weekend: bool) -> f64 {
        use Period::{Evening, Late, Midday, Morning, Night};
        let p = period(hour);
        let base = match self {
            Self::Residential => match p {
                Morning => 0.3,
                Midday => 0.8,
                Evening => 2.5,
                Night => 1.5,
                Late => 3.0,
            },
            Self::Office => match p {
                Morning => 3.0,
                Midday => 1.0,
                Evening => 0.2,
                Night | Late => 0.1,
            },
            Self::Station => match p {
                Morning => 1.5,
                Midday => 1.0,
                Evening => 1.5,
                Night => 0.5,
                Late => 0.2,
            },
            Self::University => match p {
                Morning => 2.0,
                Midday => 1.0,
                Evening => 0.3,
                Night => 0.1,
                Late => 0.0,
            },
            Self::Beach => match p {
                Morning => 0.2,
                Midday => 1.5,
                Evening => 1.0,
                Night => 0.5,
                Late => 0.1,
            },
            Self::Nightlife => match p {
                Morning => 0.1,
                Midday => 0.5,
                Evening => 1.5,
                Night => 3.0,
                Late => 0.3,
            },
            Self::Tourist => match p {
                Morning => 0.5,
                Midday => 1.5,
                Evening => 1.0,
                Night => 0.8,
                Late => 0.1,
            },
        };
        base * self.weekend_factor(weekend, p, false)
    }

    fn weekend_factor(self, weekend: bool, p: Period, producing: bool) -> f64 {
        if !weekend {
            return 1.0;
        }
        match self {
            Self::Office | Self::University => 0.2,
            Self::Beach | Self::Tourist => 2.0,
            Self::Residential if producing && p == Period::Morning => 0.5,
            _ => 1.0,
        }
    }
}

/// A place that draws trips.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hotspot {
    /// Name, shown in reports ("lost demand by zone").
    pub name: String,
    /// Kind of place.
    pub kind: HotspotKind,
    /// Centre.
    pub center: LatLon,
    /// Spread of trip ends around the centre (one standard deviation), metres.
    pub radius_m: f64,
    /// Relative size.
    pub weight: f64,
}

/// A zone the operator draws (becomes a geofence on the platform).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Name.
    pub name: String,
    /// Geofence kind as the platform API names it (`no_parking`, `slow_zone`, `no_riding`, `parking_hub`).
    pub kind: String,
    /// Speed limit for slow zones.
    pub speed_limit_kmh: Option<i64>,
    /// Outer ring, open (first point not repeated).
    pub ring: Vec<LatLon>,
}

/// A city to simulate (`--city FILE` reads one as JSON; `CityModel::barcelona()` is the default,
/// and `mobility sim --print-city` prints it as a starting point).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityModel {
    /// City id on the platform (slug).
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA time zone (informational; the simulation uses `utc_offset_min`).
    pub timezone: String,
    /// Local time minus UTC, minutes.
    pub utc_offset_min: i32,
    /// Currency code.
    pub currency: String,
    /// Operating area ring, open.
    pub operating_area: Vec<LatLon>,
    /// Places that draw trips.
    pub hotspots: Vec<Hotspot>,
    /// Operator zones.
    pub zones: Vec<Zone>,
}

fn p(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap_or(LatLon::ORIGIN)
}

/// A rectangle ring around a centre, `half_m` metres each way.
fn square(center: LatLon, half_lat_m: f64, half_lon_m: f64) -> Vec<LatLon> {
    let dlat = half_lat_m / 111_320.0;
    let dlon = half_lon_m / (111_320.0 * center.lat().to_radians().cos());
    vec![
        p(center.lat() - dlat, center.lon() - dlon),
        p(center.lat() - dlat, center.lon() + dlon),
        p(center.lat() + dlat, center.lon() + dlon),
        p(center.lat() + dlat, center.lon() - dlon),
    ]
}

impl CityModel {
    /// The default: Barcelona, with its stations, beaches, office districts and nightlife.
    #[must_use]
    pub fn barcelona() -> Self {
        use HotspotKind::{Beach, Nightlife, Office, Residential, Station, Tourist, University};
        let h = |name: &str, kind, lat, lon, radius_m, weight| Hotspot {
            name: name.to_owned(),
            kind,
            center: p(lat, lon),
            radius_m,
            weight,
        };
        let hotspots = vec![
            h("Sants", Station, 41.3793, 2.1404, 450.0, 1.6),
            h("Sagrera", Station, 41.4215, 2.1895, 450.0, 0.8),
            h("Plaça Catalunya", Tourist, 41.3870, 2.1700, 400.0, 1.6),
            h("Passeig de Gràcia", Office, 41.3925, 2.1650, 500.0, 1.5),
            h("Sagrada Família", Tourist, 41.4036, 2.1744, 350.0, 1.0),
            h("Barceloneta beach", Beach, 41.3784, 2.1925, 450.0, 1.2),
            h("Bogatell beach", Beach, 41.3945, 2.2065, 450.0, 0.9),
            h("22@ Poblenou", Office, 41.4030, 2.1940, 600.0, 1.6),
            h("Diagonal Mar", Office, 41.4100, 2.2160, 500.0, 0.9),
            h("Glòries", Office, 41.4032, 2.1870, 400.0, 0.8),
            h(
                "Zona Universitària",
                University,
                41.3860,
                2.1150,
                600.0,
                1.2,
            ),
            h("Les Corts", Office, 41.3810, 2.1280, 500.0, 0.9),
            h("Gràcia", Nightlife, 41.4025, 2.1570, 500.0, 1.3),
            h("El Born", Nightlife, 41.3850, 2.1820, 350.0, 1.0),
            h("Raval", Nightlife, 41.3800, 2.1680, 350.0, 0.9),
            h(
                "Eixample Esquerra",
                Residential,
                41.3850,
                2.1550,
                800.0,
                2.0,
            ),
            h("Sant Antoni", Residential, 41.3780, 2.1600, 500.0, 1.0),
            h("Poble Sec", Residential, 41.3730, 2.1620, 500.0, 0.9),
            h("Sant Martí", Residential, 41.4180, 2.2000, 800.0, 1.4),
            h("Sant Andreu", Residential, 41.4350, 2.1900, 800.0, 1.2),
            h("Horta", Residential, 41.4300, 2.1600, 800.0, 1.0),
            h("Sarrià", Residential, 41.4000, 2.1200, 700.0, 0.9),
            h("Sants-Montjuïc", Residential, 41.3720, 2.1400, 700.0, 1.1),
            h("Camp de l'Arpa", Residential, 41.4140, 2.1820, 600.0, 1.0),
        ];
        let operating_area = vec![
            p(41.3560, 2.1300),
            p(41.3650, 2.1750),
            p(41.3720, 2.1920),
            p(41.3920, 2.2120),
            p(41.4100, 2.2270),
            p(41.4420, 2.2080),
            p(41.4500, 2.1880),
            p(41.4420, 2.1600),
            p(41.4230, 2.1300),
            p(41.4050, 2.1050),
            p(41.3850, 2.0980),
            p(41.3650, 2.1150),
        ];
        let zones = vec![
            Zone {
                name: "Plaça Catalunya".into(),
                kind: "no_parking".into(),
                speed_limit_kmh: None,
                ring: square(p(41.3870, 2.1700), 90.0, 110.0),
            },
            Zone {
                name: "La Rambla".into(),
                kind: "no_parking".into(),
                speed_limit_kmh: None,
                ring: vec![
                    p(41.3860, 2.1690),
                    p(41.3865, 2.1705),
                    p(41.3760, 2.1780),
                    p(41.3755, 2.1765),
                ],
            },
            Zone {
                name: "Sagrada Família squares".into(),
                kind: "no_parking".into(),
                speed_limit_kmh: None,
                ring: square(p(41.4036, 2.1744), 120.0, 140.0),
            },
            Zone {
                name: "Barceloneta promenade".into(),
                kind: "slow_zone".into(),
                speed_limit_kmh: Some(10),
                ring: vec![
                    p(41.3760, 2.1880),
                    p(41.3780, 2.1930),
                    p(41.3900, 2.2030),
                    p(41.3880, 2.2050),
                    p(41.3765, 2.1950),
                    p(41.3745, 2.1895),
                ],
            },
            Zone {
                name: "Barri Gòtic".into(),
                kind: "slow_zone".into(),
                speed_limit_kmh: Some(10),
                ring: square(p(41.3830, 2.1770), 300.0, 350.0),
            },
            Zone {
                name: "Park Güell".into(),
                kind: "no_riding".into(),
                speed_limit_kmh: None,
                ring: square(p(41.4145, 2.1527), 250.0, 300.0),
            },
        ];
        Self {
            id: "barcelona".into(),
            name: "Barcelona".into(),
            timezone: "Europe/Madrid".into(),
            utc_offset_min: 60,
            currency: "EUR".into(),
            operating_area,
            hotspots,
            zones,
        }
    }

    /// Reads a city from JSON and checks it is usable.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let city: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        city.validate()?;
        Ok(city)
    }

    /// Why this city cannot be simulated, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        mobility_core::CityId::parse(&self.id).map_err(|e| format!("id: {e}"))?;
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_min) {
            return Err("utc_offset_min must be within ±14 h".into());
        }
        if self.operating_area.len() < 3 {
            return Err("operating_area needs at least 3 points".into());
        }
        if self.hotspots.is_empty() {
            return Err("a city needs at least one hotspot".into());
        }
        for h in &self.hotspots {
            if !(h.weight.is_finite() && h.weight > 0.0) {
                return Err(format!("hotspot {}: weight must be positive", h.name));
            }
            if !(h.radius_m.is_finite() && h.radius_m > 0.0 && h.radius_m <= 20_000.0) {
                return Err(format!(
                    "hotspot {}: radius_m must be in (0, 20000]",
                    h.name
                ));
            }
            if !self.contains(h.center) {
                return Err(format!("hotspot {} is outside the operating area", h.name));
            }
        }
        for z in &self.zones {
            mobility_fleet::geofence::ZoneKind::parse(&z.kind, z.speed_limit_kmh)
                .map_err(|e| format!("zone {}: {e}", z.name))?;
            if z.ring.len() < 3 {
                return Err(format!("zone {}: needs at least 3 points", z.name));
            }
        }
        Ok(())
    }

    /// The bounding box of the operating area: (south-west, north-east).
    #[must_use]
    pub fn bounds(&self) -> (LatLon, LatLon) {
        let (mut s, mut w, mut n, mut e) = (90.0_f64, 180.0_f64, -90.0_f64, -180.0_f64);
        for q in &self.operating_area {
            s = s.min(q.lat());
            n = n.max(q.lat());
            w = w.min(q.lon());
            e = e.max(q.lon());
        }
        (p(s, w), p(n, e))
    }

    /// Whether a point is inside the operating area (even-odd rule).
    #[must_use]
    pub fn contains(&self, q: LatLon) -> bool {
        ring_contains(&self.operating_area, q)
    }

    /// The hotspot closest to a point (reports group lost demand by it).
    #[must_use]
    pub fn district_of(&self, q: LatLon) -> usize {
        let mut best = (0, f64::INFINITY);
        for (i, h) in self.hotspots.iter().enumerate() {
            let d = h.center.distance_m(&q);
            if d < best.1 {
                best = (i, d);
            }
        }
        best.0
    }
}

/// Even-odd point-in-polygon on lat/lon (fine at city scale).
#[must_use]
pub fn ring_contains(ring: &[LatLon], q: LatLon) -> bool {
    let mut inside = false;
    let n = ring.len();
    for i in 0..n {
        let a = ring[i];
        let b = ring[(i + n - 1) % n];
        if (a.lat() > q.lat()) != (b.lat() > q.lat()) {
            let x = (b.lon() - a.lon()) * (q.lat() - a.lat()) / (b.lat() - a.lat()) + a.lon();
            if q.lon() < x {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcelona_hotspots_and_zones_lie_in_the_operating_area_and_the_issue_box() {
        let c = CityModel::barcelona();
        let (sw, ne) = c.bounds();
        assert!(sw.lat() >= 41.32 && ne.lat() <= 41.47, "{sw:?} {ne:?}");
        assert!(sw.lon() >= 2.07 && ne.lon() <= 2.23, "{sw:?} {ne:?}");
        for h in &c.hotspots {
            assert!(c.contains(h.center), "{} is outside", h.name);
        }
        for z in &c.zones {
            for q in &z.ring {
                assert!(c.contains(*q), "zone {} leaves the area", z.name);
            }
        }
        assert!(!c.contains(p(41.50, 2.17)));
    }

    #[test]
    fn a_city_round_trips_through_json_and_bad_cities_are_refused() {
        let c = CityModel::barcelona();
        let text = serde_json::to_string(&c).unwrap();
        let back = CityModel::from_json(&text).unwrap();
        assert_eq!(back.hotspots.len(), c.hotspots.len());
        let mut bad = c.clone();
        bad.hotspots[0].center = p(41.50, 2.17);
        assert!(
            CityModel::from_json(&serde_json::to_string(&bad).unwrap())
                .unwrap_err()
                .contains("outside")
        );
        let mut bad = c.clone();
        bad.zones[0].kind = "moat".into();
        assert!(CityModel::from_json(&serde_json::to_string(&bad).unwrap()).is_err());
        assert!(CityModel::from_json("{\"id\": \"x\"}").is_err());
    }

    #[test]
    fn offices_draw_mornings_and_homes_draw_evenings() {
        use HotspotKind::{Office, Residential};
        assert!(Office.attracts(8, false) > Residential.attracts(8, false));
        assert!(Residential.attracts(18, false) > Office.attracts(18, false));
        assert!(Office.attracts(8, true) < Office.attracts(8, false));
    }
}
