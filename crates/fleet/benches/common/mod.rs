//! Shared bench data: a Barcelona-sized city with vehicles spread uniformly, from a seeded
//! xorshift generator (no external RNG, so runs are identical).
#![allow(dead_code, clippy::unwrap_used, clippy::cast_precision_loss)]

use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId, VehicleState, VehicleType};
use mobility_fleet::{
    CityIndex, NearbyQuery, StateFilter, Telemetry, TypeMask, index::CELL_M_DEFAULT,
};

pub const NOW: TimestampMs = TimestampMs(1_800_000_000_000);
pub const LAT: (f64, f64) = (41.32, 41.47);
pub const LON: (f64, f64) = (2.07, 2.23);

#[derive(Debug)]
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

pub fn id(n: u64) -> VehicleId {
    VehicleId::from_uuid(uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, n))
}

/// `n` vehicles (80 % scooters, 15 % e-bikes, 5 % cars), 85 % available, each with a position.
pub fn city(n: u64, rng: &mut Rng) -> CityIndex {
    let cell_m = std::env::var("CELL_M")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CELL_M_DEFAULT);
    let mut index = CityIndex::new(LatLon::new(41.395, 2.15).unwrap(), cell_m);
    for i in 0..n {
        let t = match i % 20 {
            0 => VehicleType::Car,
            1..=3 => VehicleType::Ebike,
            _ => VehicleType::Scooter,
        };
        let state = if rng.unit() < 0.85 {
            VehicleState::Available
        } else {
            VehicleState::OnTrip
        };
        index.register(id(i), t, state);
        let t = telemetry(i, 1, rng.range(LAT), rng.range(LON), rng);
        index.apply(&t, NOW).unwrap();
    }
    index
}

pub fn telemetry(i: u64, at: i64, lat: f64, lon: f64, rng: &mut Rng) -> Telemetry {
    Telemetry {
        vehicle_id: id(i),
        at: TimestampMs(at),
        position: LatLon::new(lat, lon).unwrap(),
        battery: Some(BatteryPct::new((rng.next_u64() % 101) as i64).unwrap()),
        speed_m_s: Some(4.0),
        heading_deg: Some(90.0),
        odometer_m: None,
        locked: Some(false),
        error_codes: vec![],
    }
}

/// Nearest 10 available vehicles within 500 m of a random point.
pub fn query(rng: &mut Rng) -> NearbyQuery {
    NearbyQuery {
        center: LatLon::new(rng.range(LAT), rng.range(LON)).unwrap(),
        radius_m: 500.0,
        limit: 10,
        types: TypeMask::ALL,
        min_battery: 0,
        state: StateFilter::Only(VehicleState::Available),
    }
}

/// Position updates: each vehicle moves a few metres (a walk/ride step) from a random start.
pub fn updates(n: u64, count: usize, rng: &mut Rng) -> Vec<Telemetry> {
    let mut pos: Vec<(f64, f64)> = (0..n).map(|_| (rng.range(LAT), rng.range(LON))).collect();
    (0..count)
        .map(|k| {
            let i = (k as u64) % n;
            let p = &mut pos[i as usize];
            p.0 = (p.0 + (rng.unit() - 0.5) * 0.0002).clamp(LAT.0, LAT.1);
            p.1 = (p.1 + (rng.unit() - 0.5) * 0.0002).clamp(LON.0, LON.1);
            telemetry(i, 2 + k as i64, p.0, p.1, rng)
        })
        .collect()
}
