//! The live fleet: one [`CityIndex`] per city behind a read-write lock, plus the routing from
//! vehicle to city that ingest needs (a report names only its vehicle).
//!
//! Concurrency: ingest applies a batch under one short write lock per city (a batch is bounded
//! by [`INGEST_BATCH_MAX`], so readers wait at most one batch, tens of microseconds); queries take
//! read locks. Cities are few, so a query without a city asks every city and merges.

use std::{collections::HashMap, sync::Arc};

use mobility_core::{City, CityId, LatLon, TimestampMs, Vehicle, VehicleId};
use mobility_fleet::{
    CityIndex, Hit, NearbyQuery, Reject, StateFilter, Telemetry, TypeMask, VehicleView, Verdict,
    index::{CELL_M_DEFAULT, FleetStats},
};
use mobility_store::{Store, StoreError};
use parking_lot::RwLock;

use crate::live_log::{LiveLog, REPLAY_NOW, Recovered};

/// Most reports applied under one write lock.
pub const INGEST_BATCH_MAX: usize = 1_024;

/// One city's live state.
#[derive(Debug)]
pub struct Shard {
    /// The city.
    pub city: RwLock<City>,
    /// Its vehicles.
    pub index: RwLock<CityIndex>,
}

/// Every city's live state.
#[derive(Debug, Default)]
pub struct Fleet {
    shards: RwLock<HashMap<CityId, Arc<Shard>>>,
    routes: RwLock<HashMap<VehicleId, CityId>>,
}

/// Where a city's grid is centred: the middle of its operating area if it has one. (Only the
/// cells' width in metres depends on it; vehicles anywhere are indexed correctly.)
#[allow(clippy::cast_precision_loss)]
fn reference(city: &City) -> LatLon {
    city.operating_area
        .as_ref()
        .and_then(|a| {
            let n = a.ring().len() as f64;
            let lat = a.ring().iter().map(LatLon::lat).sum::<f64>() / n;
            let lon = a.ring().iter().map(LatLon::lon).sum::<f64>() / n;
            LatLon::new(lat, lon).ok()
        })
        .unwrap_or(LatLon::ORIGIN)
}

impl Fleet {
    /// Loads every city and vehicle from the store. Positions come later from telemetry (or,
    /// once persistence of live state lands, from its snapshot).
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let fleet = Self::default();
        for city in store.cities().await? {
            fleet.put_city(city);
        }
        let mut after: Option<VehicleId> = None;
        loop {
            let page = store.all_vehicles(after.as_ref(), 5_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for v in &page {
                fleet.register(v);
            }
        }
        Ok(fleet)
    }

    /// Adds a city or updates its details (its live vehicles stay).
    pub fn put_city(&self, city: City) {
        let mut shards = self.shards.write();
        match shards.get(&city.id) {
            Some(shard) => *shard.city.write() = city,
            None => {
                let index = CityIndex::new(reference(&city), CELL_M_DEFAULT);
                shards.insert(
                    city.id.clone(),
                    Arc::new(Shard {
                        city: RwLock::new(city.clone()),
                        index: RwLock::new(index),
                    }),
                );
            }
        }
    }

    /// The shard of a city.
    #[must_use]
    pub fn shard(&self, city: &CityId) -> Option<Arc<Shard>> {
        self.shards.read().get(city).cloned()
    }

    /// All shards.
    #[must_use]
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        self.shards.read().values().cloned().collect()
    }

    /// Adds a registered vehicle (its city must have been added).
    pub fn register(&self, v: &Vehicle) {
        if let Some(shard) = self.shard(&v.city) {
            shard.index.write().register(v.id, v.vehicle_type, v.state);
            self.routes.write().insert(v.id, v.city.clone());
        }
    }

    /// The city a vehicle belongs to.
    #[must_use]
    pub fn city_of(&self, id: &VehicleId) -> Option<CityId> {
        self.routes.read().get(id).cloned()
    }

    /// Applies reports in order, grouped per city under bounded write locks. Returns one
    /// verdict per report, in input order.
    pub fn ingest(&self, reports: &[Telemetry], now: TimestampMs) -> Vec<Result<Verdict, Reject>> {
        let mut verdicts = vec![Err(Reject::UnknownVehicle); reports.len()];
        let mut by_city: HashMap<CityId, Vec<usize>> = HashMap::new();
        {
            let routes = self.routes.read();
            for (i, r) in reports.iter().enumerate() {
                if let Some(city) = routes.get(&r.vehicle_id) {
                    by_city.entry(city.clone()).or_default().push(i);
                }
            }
        }
        for (city, indices) in by_city {
            let Some(shard) = self.shard(&city) else {
                continue;
            };
            for chunk in indices.chunks(INGEST_BATCH_MAX) {
                let mut index = shard.index.write();
                for &i in chunk {
                    verdicts[i] = index.apply(&reports[i], now);
                }
            }
        }
        verdicts
    }

    /// One vehicle's live state and city.
    #[must_use]
    pub fn vehicle(&self, id: &VehicleId) -> Option<(CityId, VehicleView)> {
        let city = self.city_of(id)?;
        let view = self.shard(&city)?.index.read().get(id)?;
        Some((city, view))
    }

    /// Nearest vehicles across cities (or in one), closest first.
    #[must_use]
    pub fn nearest(&self, city: Option<&CityId>, q: &NearbyQuery) -> Vec<Hit> {
        let shards = match city {
            Some(c) => self.shard(c).into_iter().collect(),
            None => self.shards(),
        };
        let mut all = Vec::new();
        let mut out = Vec::with_capacity(q.limit);
        for shard in shards {
            shard.index.read().nearest(q, &mut out);
            all.append(&mut out);
        }
        if all.len() > q.limit {
            all.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then(a.id.cmp(&b.id)));
            all.truncate(q.limit);
        }
        all
    }

    /// Fleet counts for one city.
    #[must_use]
    pub fn stats(&self, city: &CityId) -> Option<FleetStats> {
        Some(self.shard(city)?.index.read().stats())
    }

    /// Available-vehicle counts per H3 cell in a city.
    #[must_use]
    pub fn h3_supply(
        &self,
        city: &CityId,
        resolution: h3o::Resolution,
    ) -> Option<Vec<(h3o::CellIndex, u32)>> {
        Some(self.shard(city)?.index.read().h3_counts(
            resolution,
            TypeMask::ALL,
            StateFilter::Only(mobility_core::VehicleState::Available),
        ))
    }
}

/// The fleet plus its durability: [`LiveState::submit`] applies reports and returns only after
/// the applied ones are in the write-ahead log.
#[derive(Debug)]
pub struct LiveState {
    /// The in-memory state.
    pub fleet: Arc<Fleet>,
    log: LiveLog,
}

impl LiveState {
    /// Opens the log in `dir` and replays what it holds into `fleet`.
    pub fn open(fleet: Arc<Fleet>, dir: &std::path::Path) -> std::io::Result<(Self, Recovered)> {
        let (log, recovered) = LiveLog::open(dir)?;
        for chunk in recovered.reports.chunks(INGEST_BATCH_MAX * 8) {
            fleet.ingest(chunk, REPLAY_NOW);
        }
        Ok((Self { fleet, log }, recovered))
    }

    /// Applies reports (in order) and makes the applied ones durable before returning.
    pub async fn submit(
        &self,
        reports: &[Telemetry],
        now: TimestampMs,
    ) -> std::io::Result<Vec<Result<Verdict, Reject>>> {
        let verdicts = self.fleet.ingest(reports, now);
        let applied: Vec<Telemetry> = reports
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| matches!(v, Ok(Verdict::Applied)))
            .map(|(t, _)| t.clone())
            .collect();
        if let Err(e) = self.log.append(&applied).await {
            metrics::counter!("live_log_errors_total").increment(1);
            tracing::error!(error = %e, "cannot persist live state; reports are applied but not durable");
            return Err(e);
        }
        Ok(verdicts)
    }

    /// Writes a snapshot of every vehicle's latest report and drops the log it covers.
    pub async fn snapshot(&self) -> std::io::Result<usize> {
        let fleet = self.fleet.clone();
        self.log
            .snapshot(move || {
                let mut all = Vec::new();
                for shard in fleet.shards() {
                    let index = shard.index.read();
                    all.extend(index.iter().filter_map(|v| {
                        Some(Telemetry {
                            vehicle_id: v.id,
                            at: v.at?,
                            position: v.position?,
                            battery: v.battery,
                            speed_m_s: v.speed_m_s,
                            heading_deg: v.heading_deg,
                            odometer_m: v.odometer_m,
                            locked: v.locked,
                            error_codes: v.error_codes,
                        })
                    }));
                }
                all
            })
            .await
    }
}
