//! One city's live vehicles in a hashed uniform grid.
//!
//! Why a grid and not an R-tree: a position update must cost tens of nanoseconds (millions per
//! second per core). In a grid an update rewrites a 32-byte slot and, only when the vehicle
//! crosses into another cell (~200 m), moves one `u32` between two cell lists. An R-tree
//! would have to remove and re-insert the vehicle. Queries walk the cells ring by ring outwards
//! from the centre and stop as soon as no closer vehicle can exist.
//!
//! Cells are keyed by `(floor(lat / cell_lat), floor(lon / cell_lon))` in a hash map, so the grid
//! has no bounds: a vehicle anywhere on Earth is indexed, and memory follows the occupied cells.
//! Coordinates are stored as integer 1e-7 degrees (about 1 cm).

use std::collections::HashMap;

use foldhash::fast::RandomState;
use mobility_core::{BatteryPct, LatLon, TimestampMs, VehicleId, VehicleState, VehicleType};

use crate::telemetry::{ERROR_CODES_MAX, Reject, Telemetry, Verdict, judge};

mod best;
mod tiles;

use best::Best;
use tiles::{TILE_EDGE, Tile, TileCache, tile_key, tile_slot};

/// Metres per degree of latitude on the mean Earth sphere (2πR / 360).
const M_PER_DEG: f64 = 111_195.08;
/// Metres per 1e-7 degree of latitude.
const M_PER_E7: f64 = M_PER_DEG / 1e7;
/// Most results one nearest query returns.
pub const NEAREST_LIMIT_MAX: usize = 100;
/// Largest radius a nearest query may ask for, in metres.
pub const RADIUS_M_MAX: f64 = 50_000.0;
/// Cells of one ring gathered before scanning (more are scanned directly).
const RING_CELLS_MAX: usize = 64;
/// Default grid cell edge, metres.
pub const CELL_M_DEFAULT: f64 = 200.0;

const NOT_PLACED: u32 = u32::MAX;
const BATTERY_UNKNOWN: u8 = u8::MAX;
const FLAG_LOCKED: u8 = 1;
const FLAG_LOCK_KNOWN: u8 = 2;
const FLAG_SPEED_KNOWN: u8 = 4;
const FLAG_HEADING_KNOWN: u8 = 8;
const FLAG_ODOMETER_KNOWN: u8 = 16;

pub(super) type Map<K, V> = HashMap<K, V, RandomState>;

/// Everything the index keeps per vehicle, in 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    lat_e7: i32,
    lon_e7: i32,
    /// Vehicle time of the latest applied report; `i64::MIN` before the first.
    at_ms: i64,
    /// Index in its cell's list, or `NOT_PLACED` when it has no position yet.
    pos_in_cell: u32,
    odometer_m: u32,
    speed_cm_s: u16,
    heading_cdeg: u16,
    battery: u8,
    vtype: u8,
    state: u8,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

/// A vehicle as a cell list holds it: everything a query filters and measures on, so a query
/// scans contiguous memory and touches [`Slot`]s only for its results.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) lat_e7: i32,
    pub(super) lon_e7: i32,
    pub(super) slot: u32,
    pub(super) vtype: u8,
    pub(super) state: u8,
    pub(super) battery: u8,
    _pad: u8,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

impl Entry {
    pub(super) const EMPTY: Self = Self {
        lat_e7: 0,
        lon_e7: 0,
        slot: 0,
        vtype: 0,
        state: 0,
        battery: 0,
        _pad: 0,
    };

    #[inline]
    const fn of(slot: &Slot, i: u32) -> Self {
        Self {
            lat_e7: slot.lat_e7,
            lon_e7: slot.lon_e7,
            slot: i,
            vtype: slot.vtype,
            state: slot.state,
            battery: slot.battery,
            _pad: 0,
        }
    }
}

/// A set of vehicle types, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeMask(u8);

impl TypeMask {
    /// Every type.
    pub const ALL: Self = Self(0b1111);

    /// Exactly these types.
    #[must_use]
    pub fn of(types: &[VehicleType]) -> Self {
        Self(types.iter().fold(0, |m, t| m | type_bit(*t)))
    }

    /// Does the mask include `t`?
    #[must_use]
    pub const fn contains(self, t: VehicleType) -> bool {
        self.0 & type_bit(t) != 0
    }
}

const fn type_bit(t: VehicleType) -> u8 {
    1 << type_code(t)
}

const fn type_code(t: VehicleType) -> u8 {
    match t {
        VehicleType::Scooter => 0,
        VehicleType::Ebike => 1,
        VehicleType::Car => 2,
        VehicleType::Van => 3,
    }
}

const fn type_from_code(c: u8) -> VehicleType {
    match c {
        0 => VehicleType::Scooter,
        1 => VehicleType::Ebike,
        2 => VehicleType::Car,
        _ => VehicleType::Van,
    }
}

#[allow(clippy::cast_possible_truncation)]
fn state_code(s: VehicleState) -> u8 {
    VehicleState::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

fn state_filter_code(f: StateFilter) -> Option<u8> {
    match f {
        StateFilter::Any => None,
        StateFilter::Only(s) => Some(state_code(s)),
    }
}

fn state_from_code(c: u8) -> VehicleState {
    VehicleState::ALL
        .get(usize::from(c))
        .copied()
        .unwrap_or(VehicleState::Removed)
}

/// Which states a query accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Any state.
    Any,
    /// Only this state (riders search for `Available`).
    Only(VehicleState),
}

/// A nearest-vehicles query.
#[derive(Debug, Clone, Copy)]
pub struct NearbyQuery {
    /// Where the rider is.
    pub center: LatLon,
    /// Search radius in metres (capped at [`RADIUS_M_MAX`]).
    pub radius_m: f64,
    /// Most results (capped at [`NEAREST_LIMIT_MAX`]).
    pub limit: usize,
    /// Vehicle types wanted.
    pub types: TypeMask,
    /// Minimum battery; vehicles with unknown battery are excluded when this is above 0.
    pub min_battery: u8,
    /// States wanted.
    pub state: StateFilter,
}

/// One result of a nearest query, closest first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vehicle.
    pub id: VehicleId,
    /// Distance from the query centre, metres.
    pub distance_m: f32,
    /// Where it is.
    pub position: LatLon,
    /// Its type.
    pub vehicle_type: VehicleType,
    /// Battery, if reported.
    pub battery: Option<BatteryPct>,
}

/// Everything known about one vehicle's live state.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleView {
    /// The vehicle.
    pub id: VehicleId,
    /// Its type.
    pub vehicle_type: VehicleType,
    /// MDS state.
    pub state: VehicleState,
    /// Latest position, if it ever reported one.
    pub position: Option<LatLon>,
    /// Vehicle time of the latest applied report.
    pub at: Option<TimestampMs>,
    /// Battery.
    pub battery: Option<BatteryPct>,
    /// Speed, m/s.
    pub speed_m_s: Option<f32>,
    /// Heading, degrees.
    pub heading_deg: Option<f32>,
    /// Odometer, metres.
    pub odometer_m: Option<u32>,
    /// Lock engaged.
    pub locked: Option<bool>,
    /// Active fault codes.
    pub error_codes: Vec<u16>,
}

/// Counts over a city's fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Registered vehicles.
    pub total: u32,
    /// Count per MDS state, in `VehicleState::ALL` order.
    pub by_state: Vec<(VehicleState, u32)>,
    /// Count per type.
    pub by_type: Vec<(VehicleType, u32)>,
    /// Battery bands `[0,20) [20,40) [40,60) [60,80) [80,100]`, then unknown.
    pub battery_bands: [u32; 6],
}

/// One city's live vehicles.
#[derive(Debug, Clone)]
pub struct CityIndex {
    cell_lat_e7: i32,
    cell_lon_e7: i32,
    slots: Vec<Slot>,
    ids: Vec<VehicleId>,
    by_id: Map<VehicleId, u32>,
    /// Occupied tiles of 8×8 cells, so a neighbourhood costs one or two hash probes, not nine.
    tiles: Map<u64, Box<Tile>>,
    /// Sparse: only vehicles with active fault codes.
    errors: Map<VehicleId, Vec<u16>>,
}

#[allow(clippy::cast_possible_truncation)]
fn to_e7(deg: f64) -> i32 {
    (deg * 1e7).round() as i32
}

fn from_e7(lat_e7: i32, lon_e7: i32) -> Option<LatLon> {
    LatLon::new(f64::from(lat_e7) / 1e7, f64::from(lon_e7) / 1e7).ok()
}

#[allow(clippy::cast_sign_loss)]
#[inline]
pub(super) const fn pack(cy: i32, cx: i32) -> u64 {
    ((cy as u32 as u64) << 32) | (cx as u32 as u64)
}

impl CityIndex {
    /// An empty index whose cells are about `cell_m` metres wide around `reference` (the city
    /// centre). Vehicles far from the reference are still indexed correctly.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn new(reference: LatLon, cell_m: f64) -> Self {
        let cell_m = cell_m.clamp(20.0, 5_000.0);
        let cell_lat_e7 = (cell_m / M_PER_E7).round().max(1.0) as i32;
        let cos = reference.lat().to_radians().cos().max(0.01);
        let cell_lon_e7 = ((cell_m / (M_PER_E7 * cos)).round().max(1.0) as i32).min(i32::MAX / 4);
        Self {
            cell_lat_e7,
            cell_lon_e7,
            slots: Vec::new(),
            ids: Vec::new(),
            by_id: Map::default(),
            tiles: Map::default(),
            errors: Map::default(),
        }
    }

    /// Registered vehicles.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No vehicles?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn cell_of(&self, lat_e7: i32, lon_e7: i32) -> (i32, i32) {
        (
            lat_e7.div_euclid(self.cell_lat_e7),
            lon_e7.div_euclid(self.cell_lon_e7),
        )
    }

    /// Adds a vehicle (without a position until it reports), or updates its type and state.
    pub fn register(&mut self, id: VehicleId, vehicle_type: VehicleType, state: VehicleState) {
        if let Some(&i) = self.by_id.get(&id) {
            let slot = &mut self.slots[i as usize];
            slot.vtype = type_code(vehicle_type);
            slot.state = state_code(state);
            self.sync_entry(i);
            return;
        }
        let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX - 1);
        self.slots.push(Slot {
            lat_e7: 0,
            lon_e7: 0,
            at_ms: i64::MIN,
            pos_in_cell: NOT_PLACED,
            odometer_m: 0,
            speed_cm_s: 0,
            heading_cdeg: 0,
            battery: BATTERY_UNKNOWN,
            vtype: type_code(vehicle_type),
            state: state_code(state),
            flags: 0,
        });
        self.ids.push(id);
        self.by_id.insert(id, i);
    }

    /// Forgets a vehicle entirely (decommissioned). Returns whether it was there.
    pub fn remove(&mut self, id: &VehicleId) -> bool {
        let Some(i) = self.by_id.remove(id) else {
            return false;
        };
        self.unplace(i);
        self.errors.remove(id);
        let last = u32::try_from(self.slots.len() - 1).unwrap_or(0);
        if i != last {
            // Move the last vehicle into slot i and repoint everything that referred to it.
            let moved_id = self.ids[last as usize];
            let moved = self.slots[last as usize];
            if moved.pos_in_cell != NOT_PLACED {
                let (cy, cx) = self.cell_of(moved.lat_e7, moved.lon_e7);
                if let Some(tile) = self.tiles.get_mut(&tile_key(cy, cx)) {
                    tile.cells[tile_slot(cy, cx)][moved.pos_in_cell as usize].slot = i;
                }
            }
            self.by_id.insert(moved_id, i);
        }
        self.slots.swap_remove(i as usize);
        self.ids.swap_remove(i as usize);
        true
    }

    /// Takes slot `i` out of its cell list.
    fn unplace(&mut self, i: u32) {
        let slot = self.slots[i as usize];
        if slot.pos_in_cell == NOT_PLACED {
            return;
        }
        let (cy, cx) = self.cell_of(slot.lat_e7, slot.lon_e7);
        let key = tile_key(cy, cx);
        if let Some(tile) = self.tiles.get_mut(&key) {
            let list = &mut tile.cells[tile_slot(cy, cx)];
            let pos = slot.pos_in_cell as usize;
            list.swap_remove(pos);
            if let Some(moved) = list.get(pos) {
                self.slots[moved.slot as usize].pos_in_cell = slot.pos_in_cell;
            }
            if list.is_empty() {
                *list = Vec::new(); // give the memory back
            }
            tile.vehicles -= 1;
            if tile.vehicles == 0 {
                self.tiles.remove(&key);
            }
        }
        self.slots[i as usize].pos_in_cell = NOT_PLACED;
    }

    /// Puts slot `i` into the list of the cell of its current position.
    fn place(&mut self, i: u32) {
        let slot = self.slots[i as usize];
        let (cy, cx) = self.cell_of(slot.lat_e7, slot.lon_e7);
        let tile = self.tiles.entry(tile_key(cy, cx)).or_default();
        tile.vehicles += 1;
        let list = &mut tile.cells[tile_slot(cy, cx)];
        self.slots[i as usize].pos_in_cell = u32::try_from(list.len()).unwrap_or(NOT_PLACED);
        list.push(Entry::of(&slot, i));
    }

    /// Rewrites slot `i`'s cell entry after its position, state, type or battery changed.
    fn sync_entry(&mut self, i: u32) {
        let slot = self.slots[i as usize];
        if slot.pos_in_cell == NOT_PLACED {
            return;
        }
        let (cy, cx) = self.cell_of(slot.lat_e7, slot.lon_e7);
        if let Some(e) = self
            .tiles
            .get_mut(&tile_key(cy, cx))
            .and_then(|t| t.cells[tile_slot(cy, cx)].get_mut(slot.pos_in_cell as usize))
        {
            *e = Entry::of(&slot, i);
        }
    }

    /// Sets a vehicle's MDS state (decided by the state machine elsewhere).
    pub fn set_state(&mut self, id: &VehicleId, state: VehicleState) -> bool {
        match self.by_id.get(id) {
            Some(&i) => {
                self.slots[i as usize].state = state_code(state);
                self.sync_entry(i);
                true
            }
            None => false,
        }
    }

    /// The vehicle time of the latest applied report, if any.
    #[must_use]
    pub fn latest_at(&self, id: &VehicleId) -> Option<TimestampMs> {
        let i = *self.by_id.get(id)?;
        let at = self.slots[i as usize].at_ms;
        (at != i64::MIN).then_some(TimestampMs(at))
    }

    /// Applies a telemetry report by the ingest rules ([`judge`]): new reports update the
    /// vehicle, redeliveries are no-ops, older reports never overwrite newer state.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn apply(&mut self, t: &Telemetry, now: TimestampMs) -> Result<Verdict, Reject> {
        let &i = self
            .by_id
            .get(&t.vehicle_id)
            .ok_or(Reject::UnknownVehicle)?;
        let old = self.slots[i as usize];
        let latest = (old.at_ms != i64::MIN).then_some(TimestampMs(old.at_ms));
        let verdict = judge(latest, t.at, now)?;
        if verdict == Verdict::Duplicate {
            return Ok(verdict);
        }
        let lat_e7 = to_e7(t.position.lat());
        let lon_e7 = to_e7(t.position.lon());
        let moved_cell = old.pos_in_cell == NOT_PLACED
            || self.cell_of(old.lat_e7, old.lon_e7) != self.cell_of(lat_e7, lon_e7);
        if moved_cell {
            self.unplace(i);
        }
        let slot = &mut self.slots[i as usize];
        slot.lat_e7 = lat_e7;
        slot.lon_e7 = lon_e7;
        slot.at_ms = t.at.0;
        if let Some(b) = t.battery {
            slot.battery = b.get();
        }
        if let Some(s) = t.speed_m_s {
            slot.speed_cm_s = (s.clamp(0.0, 655.0) * 100.0) as u16;
            slot.flags |= FLAG_SPEED_KNOWN;
        }
        if let Some(h) = t.heading_deg {
            slot.heading_cdeg = (h.rem_euclid(360.0) * 100.0) as u16;
            slot.flags |= FLAG_HEADING_KNOWN;
        }
        if let Some(o) = t.odometer_m {
            slot.odometer_m = o;
            slot.flags |= FLAG_ODOMETER_KNOWN;
        }
        if let Some(l) = t.locked {
            slot.flags =
                (slot.flags & !FLAG_LOCKED) | FLAG_LOCK_KNOWN | if l { FLAG_LOCKED } else { 0 };
        }
        if moved_cell {
            self.place(i);
        } else {
            self.sync_entry(i);
        }
        if t.error_codes.is_empty() {
            self.errors.remove(&t.vehicle_id);
        } else {
            let codes: Vec<u16> = t
                .error_codes
                .iter()
                .copied()
                .take(ERROR_CODES_MAX)
                .collect();
            self.errors.insert(t.vehicle_id, codes);
        }
        Ok(verdict)
    }

    /// The live state of one vehicle.
    #[must_use]
    pub fn get(&self, id: &VehicleId) -> Option<VehicleView> {
        let &i = self.by_id.get(id)?;
        Some(self.view(i))
    }

    fn view(&self, i: u32) -> VehicleView {
        let s = self.slots[i as usize];
        let id = self.ids[i as usize];
        let known = |flag: u8| s.flags & flag != 0;
        VehicleView {
            id,
            vehicle_type: type_from_code(s.vtype),
            state: state_from_code(s.state),
            position: if s.pos_in_cell == NOT_PLACED {
                None
            } else {
                from_e7(s.lat_e7, s.lon_e7)
            },
            at: (s.at_ms != i64::MIN).then_some(TimestampMs(s.at_ms)),
            battery: (s.battery != BATTERY_UNKNOWN)
                .then(|| BatteryPct::new(i64::from(s.battery)).ok())
                .flatten(),
            speed_m_s: known(FLAG_SPEED_KNOWN).then(|| f32::from(s.speed_cm_s) / 100.0),
            heading_deg: known(FLAG_HEADING_KNOWN).then(|| f32::from(s.heading_cdeg) / 100.0),
            odometer_m: known(FLAG_ODOMETER_KNOWN).then_some(s.odometer_m),
            locked: known(FLAG_LOCK_KNOWN).then(|| known(FLAG_LOCKED)),
            error_codes: self.errors.get(&id).cloned().unwrap_or_default(),
        }
    }

    /// Every vehicle's live state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = VehicleView> + '_ {
        (0..self.slots.len()).map(|i| self.view(u32::try_from(i).unwrap_or(u32::MAX)))
    }

    fn passes(s: &Slot, types: TypeMask, min_battery: u8, state: StateFilter) -> bool {
        Self::passes_coded(s, types, min_battery, state_filter_code(state))
    }

    /// `passes` with the state already coded (`None` = any), for the hot loop.
    #[inline]
    fn passes_coded(s: &Slot, types: TypeMask, min_battery: u8, state: Option<u8>) -> bool {
        Self::entry_passes(&Entry::of(s, 0), types, min_battery, state)
    }

    #[inline]
    fn entry_passes(e: &Entry, types: TypeMask, min_battery: u8, state: Option<u8>) -> bool {
        types.0 & (1 << e.vtype) != 0
            && (min_battery == 0 || (e.battery != BATTERY_UNKNOWN && e.battery >= min_battery))
            && state.is_none_or(|want| e.state == want)
    }

    /// The closest vehicles to `q.center` within `q.radius_m` that pass the filters, closest
    /// first (ties by id), into `out` (cleared first).
    pub fn nearest(&self, q: &NearbyQuery, out: &mut Vec<Hit>) {
        out.clear();
        let limit = q.limit.min(NEAREST_LIMIT_MAX);
        if limit == 0 || self.tiles.is_empty() {
            return;
        }
        if limit <= 16 {
            self.nearest_into::<16>(q, limit, out);
        } else {
            self.nearest_into::<NEAREST_LIMIT_MAX>(q, limit, out);
        }
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn nearest_into<const N: usize>(&self, q: &NearbyQuery, limit: usize, out: &mut Vec<Hit>) {
        let radius_m = q.radius_m.clamp(0.0, RADIUS_M_MAX);
        let radius2 = radius_m * radius_m;
        let c_lat = to_e7(q.center.lat());
        let c_lon = to_e7(q.center.lon());
        let m_lat = M_PER_E7;
        let m_lon = M_PER_E7 * q.center.lat().to_radians().cos();
        let cell_h_m = f64::from(self.cell_lat_e7) * m_lat;
        let cell_w_m = f64::from(self.cell_lon_e7) * m_lon;
        let cell_min_m = cell_h_m.min(cell_w_m).max(1e-3);
        let (cy, cx) = self.cell_of(c_lat, c_lon);
        let rings = ((radius_m / cell_min_m).ceil() as i32)
            .saturating_add(1)
            .min(10_000);
        let (ry, rx) = (
            ((radius_m / cell_h_m).ceil() as i32).saturating_add(1),
            ((radius_m / cell_w_m.max(1e-3)).ceil() as i32).saturating_add(1),
        );
        // Best candidates so far, sorted by distance²; on the stack, insertion into a short array.
        let mut best = Best::<N>::new(limit);
        let want_state = state_filter_code(q.state);
        let mut tiles = TileCache::new();
        let visit = |list: &[Entry], best: &mut Best<N>| {
            for s in list {
                if !Self::entry_passes(s, q.types, q.min_battery, want_state) {
                    continue;
                }

                let dy = f64::from(s.lat_e7 - c_lat) * m_lat;
                let dx = f64::from(s.lon_e7.wrapping_sub(c_lon)) * m_lon;
                let d2 = dx * dx + dy * dy;
                if d2 > radius2 || d2 > best.worst() {
                    continue;
                }
                best.offer(d2, *s, &self.ids);
            }
        };
        // Squared distance from the query point to the nearest point of cell (y, x): a cell
        // farther than the k-th best so far cannot hold a better candidate, so it is skipped
        // without reading its list. Near the antimeridian the longitudes wrap; no pruning there.
        let (clat, clon) = (i64::from(self.cell_lat_e7), i64::from(self.cell_lon_e7));
        let cell_d2 = |y: i32, x: i32| -> f64 {
            let gap = |c: i64, lo: i64, size: i64| (lo - c).max(c - (lo + size)).max(0);
            let dy = gap(i64::from(c_lat), i64::from(y) * clat, clat);
            let dx = gap(i64::from(c_lon), i64::from(x) * clon, clon);
            if dx > 1_800_000_000 {
                return 0.0;
            }
            let (my, mx) = (dy as f64 * m_lat, dx as f64 * m_lon);
            my * my + mx * mx
        };
        for r in 0..=rings.min(ry.max(rx)) {
            // Gather the ring's cells first, then touch each list once: the loads are
            // independent, so the CPU overlaps their cache misses instead of taking them in turn.
            let mut lists: [(f64, &[Entry]); RING_CELLS_MAX] = [(0.0, &[]); RING_CELLS_MAX];
            let mut n = 0;
            let worst = best.worst().min(radius2);
            macro_rules! gather {
                ($y:expr, $x:expr, $list:expr) => {
                    let d2 = cell_d2($y, $x);
                    if d2 > worst {
                        // Cannot beat what is already found, or outside the radius.
                    } else if n < RING_CELLS_MAX {
                        lists[n] = (d2, $list.as_slice());
                        n += 1;
                    } else {
                        visit($list, &mut best);
                    }
                };
            }
            // Cells at Chebyshev distance r from the centre cell, within the radius box.
            let (y0, y1) = (cy - r.min(ry), cy + r.min(ry));
            for y in y0..=y1 {
                let on_edge_y = (y - cy).abs() == r;
                if on_edge_y {
                    for x in (cx - r.min(rx))..=(cx + r.min(rx)) {
                        if let Some(list) = tiles.cell(&self.tiles, y, x) {
                            gather!(y, x, list);
                        }
                    }
                } else if r <= rx {
                    for x in [cx - r, cx + r] {
                        if let Some(list) = tiles.cell(&self.tiles, y, x) {
                            gather!(y, x, list);
                        }
                        if r == 0 {
                            break;
                        }
                    }
                }
            }
            // Nearest cells first, so the k-th best tightens before the far ones are read.
            let ring = &mut lists[..n];
            ring.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            let touched = ring
                .iter()
                .fold(0i32, |acc, (_, l)| acc ^ l.first().map_or(0, |e| e.lat_e7));
            std::hint::black_box(touched);
            for (d2, list) in ring.iter() {
                if *d2 > best.worst() {
                    break;
                }
                visit(list, &mut best);
            }
            // Anything in ring r+1 is at least r cells away along one axis.
            let bound = f64::from(r) * cell_min_m;
            if bound > radius_m || best.worst() <= bound * bound {
                break;
            }
        }
        out.extend(best.items().iter().filter_map(|&(d2, e)| {
            Some(Hit {
                id: self.ids[e.slot as usize],
                distance_m: d2.sqrt() as f32,
                position: from_e7(e.lat_e7, e.lon_e7)?,
                vehicle_type: type_from_code(e.vtype),
                battery: (e.battery != BATTERY_UNKNOWN)
                    .then(|| BatteryPct::new(i64::from(e.battery)).ok())
                    .flatten(),
            })
        }));
    }

    /// Vehicles inside the box spanned by `south_west` and `north_east` (at most `limit`).
    pub fn within_bbox(
        &self,
        south_west: LatLon,
        north_east: LatLon,
        types: TypeMask,
        state: StateFilter,
        limit: usize,
    ) -> Vec<VehicleView> {
        let (s, w) = (to_e7(south_west.lat()), to_e7(south_west.lon()));
        let (n, e) = (to_e7(north_east.lat()), to_e7(north_east.lon()));
        let mut out = Vec::new();
        if s > n || w > e {
            return out;
        }
        let (cy0, cx0) = self.cell_of(s, w);
        let (cy1, cx1) = self.cell_of(n, e);
        let cells_in_box = (i64::from(cy1 - cy0) + 1) * (i64::from(cx1 - cx0) + 1);
        let inside = |slot: &Slot| {
            (s..=n).contains(&slot.lat_e7)
                && (w..=e).contains(&slot.lon_e7)
                && Self::passes(slot, types, 0, state)
        };
        // A huge box has more cells than the city has occupied cells: scan the occupied ones.
        let occupied = self.tiles.len() * (TILE_EDGE * TILE_EDGE) as usize;
        if cells_in_box > i64::try_from(occupied).unwrap_or(i64::MAX) {
            for list in self.tiles.values().flat_map(|t| t.cells.iter()) {
                for e in list {
                    if out.len() >= limit {
                        return out;
                    }
                    if inside(&self.slots[e.slot as usize]) {
                        out.push(self.view(e.slot));
                    }
                }
            }
            return out;
        }
        let mut tiles = TileCache::new();
        for y in cy0..=cy1 {
            for x in cx0..=cx1 {
                let Some(list) = tiles.cell(&self.tiles, y, x) else {
                    continue;
                };
                for e in list {
                    if out.len() >= limit {
                        return out;
                    }
                    if inside(&self.slots[e.slot as usize]) {
                        out.push(self.view(e.slot));
                    }
                }
            }
        }
        out
    }

    /// Vehicles inside a polygon (at most `limit`): the bounding box first, then the polygon.
    #[must_use]
    pub fn within_polygon(
        &self,
        area: &crate::geofence::Geofence,
        types: TypeMask,
        state: StateFilter,
        limit: usize,
    ) -> Vec<VehicleView> {
        let (sw, ne) = area.bounds();
        let mut out: Vec<VehicleView> = self
            .within_bbox(sw, ne, types, state, usize::MAX)
            .into_iter()
            .filter(|v| v.position.is_some_and(|p| area.contains(p)))
            .collect();
        out.truncate(limit);
        out
    }

    /// Vehicles per H3 cell at `resolution` (placed vehicles that pass the filters).
    #[must_use]
    pub fn h3_counts(
        &self,
        resolution: h3o::Resolution,
        types: TypeMask,
        state: StateFilter,
    ) -> Vec<(h3o::CellIndex, u32)> {
        let mut counts: Map<h3o::CellIndex, u32> = Map::default();
        for s in &self.slots {
            if s.pos_in_cell == NOT_PLACED || !Self::passes(s, types, 0, state) {
                continue;
            }
            let lat = f64::from(s.lat_e7) / 1e7;
            let lon = f64::from(s.lon_e7) / 1e7;
            if let Ok(ll) = h3o::LatLng::new(lat, lon) {
                *counts.entry(ll.to_cell(resolution)).or_default() += 1;
            }
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_unstable();
        v
    }

    /// Counts by state, type and battery band.
    #[must_use]
    pub fn stats(&self) -> FleetStats {
        let states = VehicleState::ALL.len();
        let mut by_state = vec![0u32; states];
        let mut by_type = [0u32; 4];
        let mut bands = [0u32; 6];
        for s in &self.slots {
            by_state[usize::from(s.state).min(states - 1)] += 1;
            by_type[usize::from(s.vtype & 3)] += 1;
            let band = if s.battery == BATTERY_UNKNOWN {
                5
            } else {
                usize::from(s.battery / 20).min(4)
            };
            bands[band] += 1;
        }
        FleetStats {
            total: u32::try_from(self.slots.len()).unwrap_or(u32::MAX),
            by_state: VehicleState::ALL.iter().copied().zip(by_state).collect(),
            by_type: VehicleType::ALL.iter().copied().zip(by_type).collect(),
            battery_bands: bands,
        }
    }

    /// Bytes held by the index's own tables (capacity, not just length), for the memory budget.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        // hashbrown: one control byte per bucket plus the entry; buckets ≈ capacity * 8 / 7.
        let table = |cap: usize, entry: usize| cap * 8 / 7 * (entry + 1);
        let cell_lists: usize = self
            .tiles
            .values()
            .map(|t| {
                size_of::<Tile>()
                    + t.cells
                        .iter()
                        .map(|l| l.capacity() * size_of::<Entry>())
                        .sum::<usize>()
            })
            .sum();
        self.slots.capacity() * size_of::<Slot>()
            + self.ids.capacity() * size_of::<VehicleId>()
            + table(self.by_id.capacity(), size_of::<(VehicleId, u32)>())
            + table(self.tiles.capacity(), size_of::<(u64, Box<Tile>)>())
            + cell_lists
            + table(self.errors.capacity(), size_of::<(VehicleId, Vec<u16>)>())
    }
}
