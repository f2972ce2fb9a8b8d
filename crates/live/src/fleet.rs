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
    geofence::{Crossing, FenceSet, Geofence, ZoneKind, default_speed_limit_kmh},
    index::{CELL_M_DEFAULT, FleetStats},
};
use mobility_store::{GeofenceRecord, Store, StoreError};
use parking_lot::RwLock;
use serde::Serialize;

/// Most reports applied under one write lock.
pub const INGEST_BATCH_MAX: usize = 1_024;

/// One city's live state.
#[derive(Debug)]
pub struct Shard {
    /// The city.
    pub city: RwLock<City>,
    /// Its vehicles.
    pub index: RwLock<CityIndex>,
    /// Its geofences (including the operating area), replaced whole on change.
    pub fences: RwLock<Arc<FenceSet>>,
}

/// Id of the fence made from a city's operating area.
pub const OPERATING_AREA_FENCE_ID: &str = "operating-area";

/// Builds a fence from its stored form.
pub fn fence_from_record(r: &GeofenceRecord) -> Result<Geofence, mobility_core::ParseError> {
    let kind = ZoneKind::parse(&r.kind, r.speed_limit_kmh)?;
    let ring = r
        .ring
        .iter()
        .map(|[lon, lat]| LatLon::new(*lat, *lon))
        .collect::<Result<Vec<_>, _>>()?;
    Geofence::new(r.id.clone(), r.name.clone(), kind, ring)
}

/// What a batch of applied reports caused: one entry per report that crossed a fence.
#[derive(Debug, Clone)]
pub struct Reaction {
    /// The city.
    pub city: CityId,
    /// The vehicle.
    pub vehicle: VehicleId,
    /// Its type.
    pub vehicle_type: mobility_core::VehicleType,
    /// When (vehicle time).
    pub at: TimestampMs,
    /// The crossings.
    pub crossings: Vec<Crossing>,
    /// The speed limit the vehicle should now have, if a slow-zone crossing changed it.
    pub speed_limit_kmh: Option<u8>,
}

/// Every city's live state.
#[derive(Debug, Default)]
pub struct Fleet {
    shards: RwLock<HashMap<CityId, Arc<Shard>>>,
    /// Each vehicle's city (foldhash: looked up for every report, and a million inserted at
    /// start).
    routes: RwLock<HashMap<VehicleId, CityId, foldhash::fast::RandomState>>,
    /// Each vehicle's stored version (bumped by every state change): public feeds derive their
    /// rotating vehicle ids from it.
    versions: RwLock<HashMap<VehicleId, u64, foldhash::fast::RandomState>>,
    /// Riders' searches per city and minute: (minute, searches, unmet), the last hour.
    searches: RwLock<HashMap<CityId, SearchLog>>,
    /// The last telemetry stream sequence the replica applied (0: none): a snapshot of this
    /// index covers at least the stream up to it (`crate::replica`).
    pub(crate) replica_seq: std::sync::atomic::AtomicU64,
}

/// Per minute of the last hour: searches, those that found nothing, and both per H3 cell.
type SearchLog = std::collections::VecDeque<SearchMinute>;

/// Resolution of the cells searches are counted in (about 0.7 km² each).
pub const DEMAND_RESOLUTION: h3o::Resolution = h3o::Resolution::Eight;

#[derive(Debug, Default)]
struct SearchMinute {
    minute: i64,
    searches: u32,
    unmet: u32,
    cells: HashMap<h3o::CellIndex, (u32, u32)>,
    /// Trips that ended in each cell.
    returns: HashMap<h3o::CellIndex, u32>,
}

/// Searches for a vehicle in the last hour, and how many found none: demand the fleet did not
/// meet where riders looked (the platform's own measure of lost demand).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchDemand {
    /// Searches.
    pub searches: u32,
    /// Searches that found no vehicle.
    pub unmet: u32,
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
            let id = city.id.clone();
            fleet.put_city(city);
            fleet.set_fences(&id, &store.geofences(&id).await?);
        }
        let mut page = store
            .all_vehicles(None, mobility_store::PAGE_LIMIT_MAX)
            .await?;
        // The next page is read (by the database's own thread, for SQLite) while this one is
        // registered.
        while let Some(last) = page.last().map(|v| v.id) {
            let (next, ()) = tokio::join!(
                store.all_vehicles(Some(&last), mobility_store::PAGE_LIMIT_MAX),
                async { fleet.register_many(&page) }
            );
            page = next?;
        }
        Ok(fleet)
    }

    /// Registers many vehicles, each lock taken once per city (loading the registry at start).
    pub fn register_many(&self, vehicles: &[Vehicle]) {
        let cities: Vec<CityId> = self.shards.read().keys().cloned().collect();
        {
            let mut routes = self.routes.write();
            let mut versions = self.versions.write();
            routes.reserve(vehicles.len());
            versions.reserve(vehicles.len());
            for v in vehicles {
                if cities.contains(&v.city) {
                    routes.insert(v.id, v.city.clone());
                    versions.insert(v.id, v.version);
                }
            }
        }
        let mut by_city: Vec<(&CityId, Vec<&Vehicle>)> = Vec::new();
        for v in vehicles {
            match by_city.iter_mut().find(|(c, _)| *c == &v.city) {
                Some((_, vs)) => vs.push(v),
                None => by_city.push((&v.city, vec![v])),
            }
        }
        for (city, vs) in by_city {
            if let Some(shard) = self.shard(city) {
                let mut index = shard.index.write();
                for v in vs {
                    index.register(v.id, v.vehicle_type, v.state);
                }
            }
        }
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
                        fences: RwLock::new(Arc::new(FenceSet::default())),
                    }),
                );
            }
        }
    }

    /// Replaces a city's fences: its operating area plus `records` (unusable records are
    /// skipped with a warning; they were validated when stored).
    pub fn set_fences(&self, city: &CityId, records: &[GeofenceRecord]) {
        let Some(shard) = self.shard(city) else {
            return;
        };
        let mut fences: Vec<Geofence> = records
            .iter()
            .filter_map(|r| match fence_from_record(r) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(fence = %r.id, error = %e, "skipping an unusable geofence");
                    None
                }
            })
            .collect();
        if let Some(area) = &shard.city.read().operating_area
            && let Ok(f) = Geofence::new(
                OPERATING_AREA_FENCE_ID.to_owned(),
                "operating area".to_owned(),
                ZoneKind::OperatingArea,
                area.ring().to_vec(),
            )
        {
            fences.push(f);
        }
        *shard.fences.write() = Arc::new(FenceSet::new(fences));
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
            self.versions.write().insert(v.id, v.version);
        }
    }

    /// Mirrors a vehicle's lifecycle state and version in the live index (after the store
    /// recorded the change that produced them).
    pub fn apply_vehicle(&self, v: &Vehicle) {
        if let Some(shard) = self.city_of(&v.id).and_then(|c| self.shard(&c)) {
            // Returns (trips that ended here) are counted by the intel-returns consumer from
            // the lifecycle events.
            shard.index.write().set_state(&v.id, v.state);
            let mut versions = self.versions.write();
            let known = versions.entry(v.id).or_insert(v.version);
            *known = (*known).max(v.version);
        }
    }

    /// The city a search at `at` belongs to: the one asked for, else the one whose operating area
    /// holds the point.
    #[must_use]
    pub fn city_at(&self, asked: Option<&CityId>, at: LatLon) -> Option<CityId> {
        if let Some(c) = asked {
            return self.shard(c).map(|_| c.clone());
        }
        self.shards().into_iter().find_map(|s| {
            let city = s.city.read();
            city.operating_area
                .as_ref()
                .is_some_and(|a| a.contains(at))
                .then(|| city.id.clone())
        })
    }

    /// Counts a trip that ended at `at` in its city's minute and H3 cell.
    pub fn note_return(&self, city: &CityId, at: LatLon, now: TimestampMs) {
        let Some(cell) = h3o::LatLng::new(at.lat(), at.lon())
            .ok()
            .map(|ll| ll.to_cell(DEMAND_RESOLUTION))
        else {
            return;
        };
        self.in_minute(city, now, |m| *m.returns.entry(cell).or_default() += 1);
    }

    /// Runs `f` on the city's log entry of `now`'s minute; the log keeps the last hour. A
    /// moment older than the newest minute counts in the newest one.
    fn in_minute(&self, city: &CityId, now: TimestampMs, f: impl FnOnce(&mut SearchMinute)) {
        let minute = now.0.div_euclid(60_000);
        let mut all = self.searches.write();
        let log = all.entry(city.clone()).or_default();
        if log.back().is_none_or(|m| m.minute < minute) {
            log.push_back(SearchMinute {
                minute,
                ..SearchMinute::default()
            });
        }
        let newest = log.back().map_or(minute, |m| m.minute);
        if let Some(m) = log.back_mut() {
            f(m);
        }
        while log.front().is_some_and(|m| m.minute <= newest - 60) {
            log.pop_front();
        }
    }

    /// Adds searches counted elsewhere (a process's `demand.searched` event) to the city's
    /// minute and cells. Cells that do not parse are skipped.
    pub fn add_searches(
        &self,
        city: &CityId,
        minute: TimestampMs,
        cells: &[mobility_core::SearchCount],
    ) {
        self.in_minute(city, minute, |m| {
            for c in cells {
                let Ok(cell) = c.cell.parse::<h3o::CellIndex>() else {
                    continue;
                };
                m.searches += c.searches;
                m.unmet += c.unmet;
                let e = m.cells.entry(cell).or_default();
                e.0 += c.searches;
                e.1 += c.unmet;
            }
        });
    }

    /// Counts a rider's search at `at` in its city's minute (and in its H3 cell).
    pub fn note_search(&self, city: &CityId, at: LatLon, now: TimestampMs, found: bool) {
        let cell = h3o::LatLng::new(at.lat(), at.lon())
            .ok()
            .map(|ll| ll.to_cell(DEMAND_RESOLUTION));
        self.in_minute(city, now, |m| {
            m.searches += 1;
            m.unmet += u32::from(!found);
            if let Some(c) = cell {
                let e = m.cells.entry(c).or_default();
                e.0 += 1;
                e.1 += u32::from(!found);
            }
        });
    }

    /// A city's returns (trips that ended) of the last hour per H3 cell at
    /// [`DEMAND_RESOLUTION`].
    #[must_use]
    pub fn return_cells(&self, city: &CityId, now: TimestampMs) -> Vec<(h3o::CellIndex, u32)> {
        let minute = now.0.div_euclid(60_000);
        let mut out: std::collections::BTreeMap<h3o::CellIndex, u32> =
            std::collections::BTreeMap::new();
        if let Some(log) = self.searches.read().get(city) {
            for m in log.iter().filter(|m| m.minute > minute - 60) {
                for (cell, r) in &m.returns {
                    *out.entry(*cell).or_default() += r;
                }
            }
        }
        out.into_iter().collect()
    }

    /// A city's searches of the last hour per H3 cell (at `resolution`, no finer than
    /// [`DEMAND_RESOLUTION`]): (cell, searches, unmet).
    #[must_use]
    pub fn search_cells(
        &self,
        city: &CityId,
        resolution: h3o::Resolution,
        now: TimestampMs,
    ) -> Vec<(h3o::CellIndex, u32, u32)> {
        let minute = now.0.div_euclid(60_000);
        let mut out: HashMap<h3o::CellIndex, (u32, u32)> = HashMap::new();
        if let Some(log) = self.searches.read().get(city) {
            for m in log.iter().filter(|m| m.minute > minute - 60) {
                for (cell, (n, u)) in &m.cells {
                    let key = cell.parent(resolution).unwrap_or(*cell);
                    let e = out.entry(key).or_default();
                    e.0 += n;
                    e.1 += u;
                }
            }
        }
        let mut cells: Vec<_> = out.into_iter().map(|(c, (n, u))| (c, n, u)).collect();
        cells.sort_by_key(|(c, ..)| *c);
        cells
    }

    /// A city's searches in minutes `[from_minute, to_minute)` (minutes since the epoch),
    /// summed per `slot_ms` slot and H3 cell: what [`crate::intel`] stores as demand history.
    #[must_use]
    pub fn search_slots(
        &self,
        city: &CityId,
        from_minute: i64,
        to_minute: i64,
        slot_ms: i64,
    ) -> Vec<mobility_store::DemandSlot> {
        let mut out: std::collections::BTreeMap<(i64, h3o::CellIndex), (u32, u32, u32)> =
            std::collections::BTreeMap::new();
        if let Some(log) = self.searches.read().get(city) {
            for m in log
                .iter()
                .filter(|m| m.minute >= from_minute && m.minute < to_minute)
            {
                let slot = (m.minute * 60_000).div_euclid(slot_ms.max(1)) * slot_ms.max(1);
                for (cell, (n, u)) in &m.cells {
                    let e = out.entry((slot, *cell)).or_default();
                    e.0 += n;
                    e.1 += u;
                }
                for (cell, r) in &m.returns {
                    out.entry((slot, *cell)).or_default().2 += r;
                }
            }
        }
        out.into_iter()
            .map(
                |((slot, cell), (searches, unmet, returns))| mobility_store::DemandSlot {
                    slot: TimestampMs(slot),
                    zone: cell.to_string(),
                    searches,
                    unmet,
                    returns,
                },
            )
            .collect()
    }

    /// A city's searches in the last hour.
    #[must_use]
    pub fn search_demand(&self, city: &CityId, now: TimestampMs) -> SearchDemand {
        let minute = now.0.div_euclid(60_000);
        self.searches
            .read()
            .get(city)
            .map_or_else(SearchDemand::default, |log| {
                log.iter().filter(|m| m.minute > minute - 60).fold(
                    SearchDemand::default(),
                    |d, m| SearchDemand {
                        searches: d.searches + m.searches,
                        unmet: d.unmet + m.unmet,
                    },
                )
            })
    }

    /// A vehicle's stored version as last mirrored here (0 if unknown).
    #[must_use]
    pub fn version_of(&self, id: &VehicleId) -> u64 {
        self.versions.read().get(id).copied().unwrap_or_default()
    }

    /// Every vehicle's latest applied report (those that have one), city by city.
    #[must_use]
    pub fn latest_reports(&self) -> Vec<Telemetry> {
        let mut all = Vec::new();
        for shard in self.shards() {
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
    }

    /// How many vehicles are registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.routes.read().len()
    }

    /// Whether no vehicle is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.read().is_empty()
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
        for (city, indices) in self.group_by_city(reports) {
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

    /// Like [`Fleet::ingest`], and also reports the geofence crossings of the applied reports,
    /// computed under the same write lock from the vehicle's previous applied position.
    pub fn ingest_tracked(&self, reports: &[Telemetry], now: TimestampMs) -> Tracked {
        let mut verdicts = vec![Err(Reject::UnknownVehicle); reports.len()];
        let mut reactions = Vec::new();
        let cities = self.group_by_city(reports);
        for (city, indices) in &cities {
            let Some(shard) = self.shard(city) else {
                continue;
            };
            let fences = shard.fences.read().clone();
            let fenced = !fences.fences().is_empty();
            for chunk in indices.chunks(INGEST_BATCH_MAX) {
                let mut index = shard.index.write();
                for &i in chunk {
                    let t = &reports[i];
                    // The previous position matters only where there are fences to cross.
                    let before = if fenced {
                        index.get(&t.vehicle_id)
                    } else {
                        None
                    };
                    verdicts[i] = index.apply(t, now);
                    if verdicts[i] != Ok(Verdict::Applied) || !fenced {
                        continue;
                    }
                    let crossings =
                        fences.crossings(before.as_ref().and_then(|v| v.position), t.position);
                    if crossings.is_empty() {
                        continue;
                    }
                    let vehicle_type =
                        before.map_or(mobility_core::VehicleType::Scooter, |v| v.vehicle_type);
                    let slow = crossings
                        .iter()
                        .any(|c| matches!(c.kind, ZoneKind::SlowZone { .. }));
                    let speed_limit_kmh = slow.then(|| {
                        fences
                            .containing(t.position)
                            .filter_map(|f| f.kind.speed_limit_kmh())
                            .min()
                            .unwrap_or_else(|| default_speed_limit_kmh(vehicle_type))
                    });
                    reactions.push(Reaction {
                        city: city.clone(),
                        vehicle: t.vehicle_id,
                        vehicle_type,
                        at: t.at,
                        crossings,
                        speed_limit_kmh,
                    });
                }
            }
        }
        Tracked {
            verdicts,
            reactions,
            cities,
        }
    }

    /// Report indices grouped by city. A single report (one vehicle's MQTT message, the common
    /// case) needs no map.
    fn group_by_city(&self, reports: &[Telemetry]) -> Vec<(CityId, Vec<usize>)> {
        let routes = self.routes.read();
        if let [only] = reports {
            return routes
                .get(&only.vehicle_id)
                .map(|c| (c.clone(), vec![0]))
                .into_iter()
                .collect();
        }
        // Cities are few: a short list scanned by reference, one city id cloned per group (a
        // map keyed by city hashed and cloned the id for every report).
        let mut by_city: Vec<(&CityId, Vec<usize>)> = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            let Some(city) = routes.get(&r.vehicle_id) else {
                continue;
            };
            match by_city.iter_mut().find(|(c, _)| *c == city) {
                Some((_, v)) => v.push(i),
                None => by_city.push((city, vec![i])),
            }
        }
        by_city.into_iter().map(|(c, v)| (c.clone(), v)).collect()
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

/// What [`Fleet::ingest_tracked`] did with a batch.
#[derive(Debug)]
pub struct Tracked {
    /// One verdict per report, in input order.
    pub verdicts: Vec<Result<Verdict, Reject>>,
    /// The geofence crossings applied reports caused.
    pub reactions: Vec<Reaction>,
    /// The reports' indices by city (reports of unknown vehicles in none).
    pub cities: Vec<(CityId, Vec<usize>)>,
}

/// Most events the feed keeps (the oldest are dropped first).
pub const EVENTS_KEPT_MAX: usize = 10_000;

/// One geofence crossing or alert.
#[derive(Debug, Clone, Serialize)]
pub struct FleetEvent {
    /// Increasing sequence number (for `?after=` paging).
    pub seq: u64,
    /// Vehicle time of the report that caused it, ms.
    pub at_ms: i64,
    /// The city.
    pub city: String,
    /// The vehicle.
    pub vehicle_id: String,
    /// `geofence` or `alert`.
    pub kind: &'static str,
    /// For geofence events `enter`/`exit`; for alerts the alert name.
    pub name: String,
    /// The fence.
    pub fence_id: String,
    /// The fence's zone kind.
    pub zone: String,
    /// Detail, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The recent geofence events and alerts, bounded: a view for the dashboard, fed by the
/// geofence-actions consumer from the bus (which is where they are kept).
#[derive(Debug, Default)]
pub struct FleetEvents {
    inner: parking_lot::Mutex<(u64, std::collections::VecDeque<FleetEvent>)>,
}

impl FleetEvents {
    /// Adds an event to the feed (the geofence-actions consumer calls this for each crossing
    /// and alert it takes from the bus).
    pub fn record(&self, mut event: FleetEvent) {
        let mut g = self.inner.lock();
        g.0 += 1;
        event.seq = g.0;
        if g.1.len() >= EVENTS_KEPT_MAX {
            g.1.pop_front();
        }
        g.1.push_back(event);
    }

    /// Events after `after` (exclusive), oldest first, at most `limit`.
    #[must_use]
    pub fn since(&self, after: u64, limit: usize) -> Vec<FleetEvent> {
        self.inner
            .lock()
            .1
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Batches of changes kept for slow stream clients before they must resync.
pub const CHANGE_BATCHES_BUFFERED: usize = 4_096;

/// One vehicle's new state, as live views (the map) need it.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The vehicle.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub vehicle_type: &'static str,
    /// MDS state.
    pub state: &'static str,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Battery, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<u8>,
    /// Vehicle time of the report.
    pub at_ms: i64,
}

impl Change {
    /// The change for a vehicle with a position.
    #[must_use]
    pub fn of(v: &VehicleView) -> Option<Self> {
        let p = v.position?;
        Some(Self {
            id: v.id.to_string(),
            vehicle_type: v.vehicle_type.as_str(),
            state: v.state.as_str(),
            lat: p.lat(),
            lon: p.lon(),
            battery_pct: v.battery.map(mobility_core::BatteryPct::get),
            at_ms: v.at.map_or(0, |t| t.0),
        })
    }
}
