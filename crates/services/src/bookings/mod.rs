//! Bookings: a rider reserves a rentable vehicle, which is then held for them until they unlock
//! it, cancel, or the hold lapses. The database decides races (one active booking per vehicle
//! and per rider); each step is also an MDS lifecycle event of the vehicle.

use std::sync::Arc;

use std::time::Duration;

use mobility_core::{
    BookingState, CityId, Clock, CommandKind, CommandState, Currency, EventType, Money, Tariff,
    TimestampMs, VehicleId, VehicleState, VehicleType, fare,
    payments::{PaymentKind, PaymentState},
};
use mobility_fleet::geofence::ZoneKind;
use mobility_store::{BookingRecord, Store, StoreError, TripFacts};

use mobility_live::{commands::Commands, fleet::Fleet};

/// Least battery for a scooter or e-bike to be reserved, percent.
pub const MICRO_MIN_BATTERY: u8 = 15;
/// Least battery (charge) for a car or van to be reserved, percent.
pub const CAR_MIN_BATTERY: u8 = 20;

/// Why a reservation or a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// No such vehicle.
    #[error("no vehicle {0}")]
    UnknownVehicle(VehicleId),
    /// The vehicle cannot be rented now.
    #[error("the vehicle cannot be reserved: {0}")]
    Unavailable(String),
    /// Cars and vans need a verified driving licence.
    #[error("cars and vans can be booked only with a verified driving licence")]
    LicenceRequired,
    /// The vehicle or the rider already has an active booking.
    #[error("the vehicle is already booked, or you already have an active booking")]
    Conflict,
    /// The booking is not in a state that allows this.
    #[error("the booking is {0}")]
    WrongState(String),
    /// No such booking (or not the caller's).
    #[error("no such booking")]
    NotFound,
    /// The vehicle did not do what was asked in time (unlock or lock).
    #[error("the vehicle did not {0}: {1}")]
    VehicleDidNot(&'static str, String),
    /// Ending here is not allowed.
    #[error("trips cannot end outside the operating area; ride back in and end again")]
    OutsideOperatingArea,
    /// The pre-authorisation at unlock was refused: the vehicle stays reserved.
    #[error(
        "the payment method was declined for the hold at unlock ({0}); top up the wallet or try again"
    )]
    PaymentDeclined(String),
    /// The pre-authorisation could not be settled now: retry.
    #[error("the hold at unlock could not be placed now ({0}); try again")]
    PaymentPending(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn micromobility(t: VehicleType) -> bool {
    matches!(t, VehicleType::Scooter | VehicleType::Ebike)
}

/// The MDS events that end a hold (the vehicle becomes available again).
fn release_events(t: VehicleType, by_rider: bool) -> Vec<EventType> {
    if micromobility(t) {
        vec![EventType::ReservationCancel]
    } else if by_rider {
        vec![EventType::CustomerCancellation]
    } else {
        vec![EventType::ProviderCancellation]
    }
}

/// The tariff used until pricing plans are configured (amounts for a 2-decimal currency).
#[must_use]
pub fn default_tariff(t: VehicleType, currency: Currency) -> Tariff {
    let scale = 10_i64.pow(currency.minor_digits());
    let m = |cents: i64| Money::new(cents * scale / 100, currency);
    match t {
        VehicleType::Scooter => Tariff {
            unlock_fee: m(100),
            per_minute: m(25),
            per_km: m(0),
            daily_cap: Some(m(3_000)),
        },
        VehicleType::Ebike => Tariff {
            unlock_fee: m(100),
            per_minute: m(22),
            per_km: m(0),
            daily_cap: Some(m(3_000)),
        },
        VehicleType::Car => Tariff {
            unlock_fee: m(0),
            per_minute: m(32),
            per_km: m(19),
            daily_cap: Some(m(6_900)),
        },
        VehicleType::Van => Tariff {
            unlock_fee: m(0),
            per_minute: m(40),
            per_km: m(25),
            daily_cap: Some(m(8_900)),
        },
    }
}

/// Fee for ending a trip in a no-parking zone (2-decimal currency units).
pub const NO_PARKING_FEE_CENTS: i64 = 500;

/// What a trip in progress has come to so far.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveTrip {
    /// Seconds since the trip started.
    pub duration_s: i64,
    /// Metres from the odometer.
    pub distance_m: i64,
    /// The fare if it ended now (minor units; without a parking fee), after any pass.
    pub fare: i64,
    /// The same, for people.
    pub fare_display: String,
}

/// How long holds last and how long unlocking and locking wait.
#[derive(Debug, Clone, Copy)]
pub struct BookingTiming {
    /// Reservation hold, seconds.
    pub hold_s: u64,
    /// Bound on waiting for a vehicle's ack, seconds.
    pub unlock_timeout_s: u64,
    /// Fee for ending in a no-parking zone, hundredths of the city's currency.
    pub no_parking_fee_cents: i64,
}

/// The booking service.
#[derive(Debug)]
pub struct Bookings {
    store: Arc<dyn Store>,
    fleet: Arc<Fleet>,
    commands: Arc<Commands>,
    kyc: Arc<crate::kyc::Kyc>,
    payments: Arc<crate::payments::Payments>,
    hold_ms: i64,
    unlock_timeout: Duration,
    no_parking_fee_cents: i64,
    intel: Option<Arc<crate::intel::Intel>>,
    clock: Arc<dyn Clock>,
}

/// A stored booking's state (`None` for a name this version does not know).
fn state_of(b: &BookingRecord) -> Option<BookingState> {
    BookingState::parse(&b.state)
}

impl Bookings {
    /// Moves a booking by the rules of [`BookingState`] (a move they forbid is a bug: refused,
    /// logged, never stored), compare-and-set in the store.
    async fn move_booking(
        &self,
        id: &str,
        from: BookingState,
        to: BookingState,
        facts: &TripFacts,
        now: TimestampMs,
    ) -> Result<Option<BookingRecord>, StoreError> {
        if !from.can_move_to(to) {
            debug_assert!(false, "booking {id}: {from} -> {to} is not a move");
            tracing::error!(booking = %id, %from, %to, "refused an illegal booking move");
            return Ok(None);
        }
        self.store
            .update_booking(id, from.as_str(), to.as_str(), facts, now)
            .await
    }

    /// Bookings holding vehicles for `hold_s` seconds.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        fleet: Arc<Fleet>,
        commands: Arc<Commands>,
        kyc: Arc<crate::kyc::Kyc>,
        payments: Arc<crate::payments::Payments>,
        timing: BookingTiming,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            fleet,
            commands,
            kyc,
            payments,
            hold_ms: i64::try_from(timing.hold_s.saturating_mul(1_000)).unwrap_or(i64::MAX),
            unlock_timeout: Duration::from_secs(timing.unlock_timeout_s.clamp(1, 120)),
            no_parking_fee_cents: timing.no_parking_fee_cents.max(0),
            intel: None,
            clock,
        }
    }

    /// Trips priced dynamically: the zone's multiplier is locked at unlock, and relocation
    /// incentives are given at the end within the city's daily budget.
    #[must_use]
    pub fn with_intel(mut self, intel: Arc<crate::intel::Intel>) -> Self {
        self.intel = Some(intel);
        self
    }

    /// A trip in progress (on trip or paused) as of `now`: time, distance, fare so far.
    pub async fn live(
        &self,
        b: &BookingRecord,
        now: TimestampMs,
    ) -> Result<Option<LiveTrip>, BookingError> {
        if !state_of(b).is_some_and(BookingState::is_riding) {
            return Ok(None);
        }
        let Some(started) = b.trip.started_at else {
            return Ok(None);
        };
        let Some((city, view)) = self.fleet.vehicle(&b.vehicle_id) else {
            return Ok(None);
        };
        let Some(currency) = self.fleet.shard(&city).map(|s| s.city.read().currency) else {
            return Ok(None);
        };
        let distance = match (b.trip.start_odometer_m, view.odometer_m) {
            (Some(a), Some(z)) if i64::from(z) >= a => i64::from(z) - a,
            _ => 0,
        };
        let (_, tariff) = self.tariff_for(&city, view.vehicle_type, currency).await?;
        let duration = now.since(started).max(0);
        let metres = u64::try_from(distance).unwrap_or(0);
        let zero = Money::zero(currency);
        let corrupt = |e: mobility_core::money::MoneyError| {
            BookingError::Store(StoreError::Corrupt(e.to_string()))
        };
        let multiplier = b
            .trip
            .pricing
            .as_deref()
            .and_then(|j| serde_json::from_str::<crate::intel::LockedPrice>(j).ok())
            .map_or(1_000, |l| l.multiplier_permille);
        let f = match self
            .pass_for(&b.user_id, &city, view.vehicle_type, started)
            .await?
        {
            Some((_, plan)) => {
                mobility_core::fare_with_pass(
                    &tariff,
                    duration,
                    metres,
                    zero,
                    multiplier,
                    plan.benefit,
                )
                .map_err(corrupt)?
                .0
            }
            None => fare(&tariff, duration, metres, zero, multiplier).map_err(corrupt)?,
        };
        Ok(Some(LiveTrip {
            duration_s: duration / 1_000,
            distance_m: distance,
            fare: f.total.minor,
            fare_display: f.total.to_string(),
        }))
    }

    /// The payment orchestrator.
    #[must_use]
    pub fn payments(&self) -> &crate::payments::Payments {
        &self.payments
    }

    /// The tariff for a vehicle type in a city: its pricing plan, else the built-in default.
    /// Returns the plan's name too.
    pub async fn tariff_for(
        &self,
        city: &mobility_core::CityId,
        t: VehicleType,
        currency: Currency,
    ) -> Result<(String, Tariff), StoreError> {
        let plans = self.store.pricing_plans(city).await?;
        Ok(plans
            .into_iter()
            .find(|p| p.vehicle_type == t && p.tariff.unlock_fee.currency == currency)
            .map_or_else(
                || ("default".to_owned(), default_tariff(t, currency)),
                |p| (p.name, p.tariff),
            ))
    }

    /// The rider's pass that covers a trip of this type in this city starting at `at`, if any
    /// (the one ending last, when several do).
    async fn pass_for(
        &self,
        user_id: &str,
        city: &mobility_core::CityId,
        t: VehicleType,
        at: mobility_core::TimestampMs,
    ) -> Result<Option<(mobility_store::RiderPass, mobility_store::PassPlan)>, StoreError> {
        let mut best: Option<(mobility_store::RiderPass, mobility_store::PassPlan)> = None;
        for held in self.store.rider_passes(user_id).await? {
            if !(held.starts_at <= at && at < held.ends_at) {
                continue;
            }
            let Some(plan) = self.store.pass_plan(&held.plan_id).await? else {
                continue;
            };
            if plan.city == *city
                && plan.vehicle_types.contains(&t)
                && best.as_ref().is_none_or(|(b, _)| held.ends_at > b.ends_at)
            {
                best = Some((held, plan));
            }
        }
        Ok(best)
    }

    /// Minutes of riding the hold at unlock covers (with 5 km for per-km tariffs).
    pub const HOLD_MINUTES: i64 = 30;

    /// Places the hold at unlock, unless the rider's wallet covers the expected fare (then the
    /// wallet pays at the end) or the trip would be free. The hold is what `HOLD_MINUTES` of
    /// riding would cost (capped by the daily cap); the end captures the real fare from it.
    async fn preauthorize(
        &self,
        b: &BookingRecord,
    ) -> Result<Option<mobility_store::PaymentRecord>, BookingError> {
        // One hold per booking; a declined attempt does not block the next (its own key).
        if let Some(held) = self
            .store
            .booking_payments(&b.id)
            .await?
            .into_iter()
            .find(|p| p.kind == PaymentKind::Authorization && p.state == PaymentState::Authorized)
        {
            return Ok(Some(held));
        }
        let key = format!("auth:{}:{}", b.id, uuid::Uuid::now_v7());
        let Some((city, view)) = self.fleet.vehicle(&b.vehicle_id) else {
            return Err(BookingError::UnknownVehicle(b.vehicle_id));
        };
        let Some(currency) = self.fleet.shard(&city).map(|s| s.city.read().currency) else {
            return Err(BookingError::UnknownVehicle(b.vehicle_id));
        };
        let (_, tariff) = self.tariff_for(&city, view.vehicle_type, currency).await?;
        let expected = fare(
            &tariff,
            Self::HOLD_MINUTES * 60_000,
            5_000,
            Money::zero(currency),
            1_000,
        )
        .map_err(|e| BookingError::Store(StoreError::Corrupt(e.to_string())))?
        .total;
        let wallet = self
            .payments
            .wallet(&b.user_id, currency)
            .await
            .unwrap_or_default();
        if expected.minor <= 0 || wallet >= expected.minor {
            return Ok(None);
        }
        match self
            .payments
            .authorize(&key, &b.user_id, Some(&b.id), expected)
            .await
        {
            Ok(h) if h.state == PaymentState::Authorized => Ok(Some(h)),
            Ok(h) => Err(BookingError::PaymentDeclined(h.detail.unwrap_or_default())),
            Err(e) => Err(BookingError::PaymentPending(e.to_string())),
        }
    }

    /// Sends a command and waits for the vehicle's answer (bounded); `Err` says what went wrong.
    async fn command(
        &self,
        vehicle: VehicleId,
        kind: CommandKind,
        now: TimestampMs,
    ) -> Result<(), String> {
        let timeout_ms = i64::try_from(self.unlock_timeout.as_millis()).unwrap_or(i64::MAX);
        let sent = self
            .commands
            .send(vehicle, kind, timeout_ms, now)
            .await
            .map_err(|e| e.to_string())?;
        let decided = self
            .commands
            .wait(&sent.id, self.unlock_timeout + Duration::from_millis(500))
            .await
            .map_err(|e| e.to_string())?;
        match decided {
            Some(c) if c.state == CommandState::Acked => Ok(()),
            Some(c) if c.state == CommandState::Failed => {
                Err(c.detail.unwrap_or_else(|| "it refused".into()))
            }
            _ => Err(format!(
                "no answer within {} s",
                self.unlock_timeout.as_secs()
            )),
        }
    }

    /// Unlocks a reserved vehicle: the trip starts when the vehicle acknowledges; otherwise the
    /// booking fails cleanly and the vehicle is released.
    pub async fn unlock(
        &self,
        id: &str,
        user_id: Option<&str>,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        // Request to the vehicle's ack: what a rider waits for at the kerb (a duration, so a
        // monotonic timer, not the clock).
        let timer = std::time::Instant::now();
        let b = self.get(id, user_id).await?;
        if state_of(&b) != Some(BookingState::Reserved) {
            return Err(BookingError::WrongState(b.state));
        }
        let hold = self.preauthorize(&b).await?;
        if self
            .move_booking(
                &b.id,
                BookingState::Reserved,
                BookingState::Unlocking,
                &TripFacts::default(),
                now,
            )
            .await?
            .is_none()
        {
            if let Some(h) = &hold {
                self.payments.void(h).await;
            }
            return Err(BookingError::WrongState(self.get(id, user_id).await?.state));
        }
        if let Err(why) = self.command(b.vehicle_id, CommandKind::Unlock, now).await {
            if let Some(h) = &hold {
                self.payments.void(h).await;
            }
            let facts = TripFacts {
                detail: Some(format!("unlock failed: {why}")),
                ..TripFacts::default()
            };
            let failed_at = self.clock.now();
            self.move_booking(
                &b.id,
                BookingState::Unlocking,
                BookingState::Failed,
                &facts,
                failed_at,
            )
            .await?;
            self.release(&b, false, failed_at).await?;
            metrics::counter!("bookings_total", "outcome" => "unlock_failed").increment(1);
            return Err(BookingError::VehicleDidNot("unlock", why));
        }
        metrics::histogram!("booking_unlock_seconds").record(timer.elapsed().as_secs_f64());
        let started = self.clock.now();
        let odometer = self
            .fleet
            .vehicle(&b.vehicle_id)
            .and_then(|(_, v)| v.odometer_m)
            .map(i64::from);
        let locked = self.intel.as_ref().and_then(|intel| {
            let (city, v) = self.fleet.vehicle(&b.vehicle_id)?;
            intel.lock_price(&city, v.vehicle_type, v.position?)
        });
        let facts = TripFacts {
            started_at: Some(started),
            start_odometer_m: odometer,
            pricing: locked.and_then(|l| serde_json::to_string(&l).ok()),
            ..TripFacts::default()
        };
        let t = self
            .fleet
            .vehicle(&b.vehicle_id)
            .map_or(VehicleType::Scooter, |(_, v)| v.vehicle_type);
        let events = if micromobility(t) {
            vec![EventType::TripStart]
        } else {
            vec![EventType::ReservationStop, EventType::TripStart]
        };
        self.change_vehicle(&b.vehicle_id, &b.id, &events, VehicleState::OnTrip, started)
            .await?;
        let on_trip = self
            .move_booking(
                &b.id,
                BookingState::Unlocking,
                BookingState::OnTrip,
                &facts,
                started,
            )
            .await?
            .ok_or(BookingError::NotFound)?;
        metrics::counter!("bookings_total", "outcome" => "trip_started").increment(1);
        Ok(on_trip)
    }

    /// Pauses a trip (the rider steps away): the vehicle locks; the trip and its clock go on.
    pub async fn pause(
        &self,
        id: &str,
        user_id: Option<&str>,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        self.toggle(
            id,
            user_id,
            (BookingState::OnTrip, BookingState::Paused),
            CommandKind::Lock,
            now,
        )
        .await
    }

    /// Resumes a paused trip: the vehicle unlocks.
    pub async fn resume(
        &self,
        id: &str,
        user_id: Option<&str>,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        self.toggle(
            id,
            user_id,
            (BookingState::Paused, BookingState::OnTrip),
            CommandKind::Unlock,
            now,
        )
        .await
    }

    async fn toggle(
        &self,
        id: &str,
        user_id: Option<&str>,
        (from, to): (BookingState, BookingState),
        kind: CommandKind,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        let b = self.get(id, user_id).await?;
        if state_of(&b) != Some(from) {
            return Err(BookingError::WrongState(b.state));
        }
        if let Err(why) = self.command(b.vehicle_id, kind, now).await {
            let verb = if kind == CommandKind::Lock {
                "lock"
            } else {
                "unlock"
            };
            return Err(BookingError::VehicleDidNot(verb, why));
        }
        self.move_booking(&b.id, from, to, &TripFacts::default(), self.clock.now())
            .await?
            .ok_or_else(|| BookingError::WrongState("changed meanwhile".into()))
    }

    /// Ends a trip: the vehicle must be inside the operating area and lock; the fare is charged
    /// from the duration, the distance and any no-parking fee, and kept as the receipt.
    pub async fn end(
        &self,
        id: &str,
        user_id: Option<&str>,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        let b = self.get(id, user_id).await?;
        let Some(riding) = state_of(&b).filter(|s| s.is_riding()) else {
            return Err(BookingError::WrongState(b.state));
        };
        let (city, view) = self
            .fleet
            .vehicle(&b.vehicle_id)
            .ok_or(BookingError::UnknownVehicle(b.vehicle_id))?;
        let shard = self
            .fleet
            .shard(&city)
            .ok_or(BookingError::UnknownVehicle(b.vehicle_id))?;
        let currency = shard.city.read().currency;
        let fences = shard.fences.read().clone();
        let mut in_no_parking = false;
        if let Some(p) = view.position {
            let mut has_area = false;
            let mut inside_area = false;
            for f in fences.fences() {
                match f.kind {
                    ZoneKind::OperatingArea => {
                        has_area = true;
                        inside_area |= f.contains(p);
                    }
                    ZoneKind::NoParking => in_no_parking |= f.contains(p),
                    _ => {}
                }
            }
            if has_area && !inside_area {
                return Err(BookingError::OutsideOperatingArea);
            }
        }
        if let Err(why) = self.command(b.vehicle_id, CommandKind::Lock, now).await {
            return Err(BookingError::VehicleDidNot("lock", why));
        }
        let ended = self.clock.now();
        let started = b.trip.started_at.unwrap_or(b.created_at);
        let distance = match (
            b.trip.start_odometer_m,
            self.fleet
                .vehicle(&b.vehicle_id)
                .and_then(|(_, v)| v.odometer_m),
        ) {
            (Some(a), Some(z)) if i64::from(z) >= a => i64::from(z) - a,
            _ => 0,
        };
        let scale = 10_i64.pow(currency.minor_digits());
        let fee = Money::new(
            if in_no_parking {
                self.no_parking_fee_cents * scale / 100
            } else {
                0
            },
            currency,
        );
        let (plan, tariff) = self.tariff_for(&city, view.vehicle_type, currency).await?;
        let pass = self
            .pass_for(&b.user_id, &city, view.vehicle_type, started)
            .await?;
        let locked: Option<crate::intel::LockedPrice> = b
            .trip
            .pricing
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok());
        let multiplier = locked.as_ref().map_or(1_000, |l| l.multiplier_permille);
        let (mut f, pass_note) = match &pass {
            Some((held, pass_plan)) => {
                let (f, saved) = mobility_core::fare_with_pass(
                    &tariff,
                    ended.since(started),
                    u64::try_from(distance).unwrap_or(0),
                    fee,
                    multiplier,
                    pass_plan.benefit,
                )
                .map_err(|e| BookingError::Store(StoreError::Corrupt(e.to_string())))?;
                let note = serde_json::json!({
                    "id": held.id, "plan": pass_plan.name, "saved": saved.minor,
                });
                (f, Some(note))
            }
            None => (
                fare(
                    &tariff,
                    ended.since(started),
                    u64::try_from(distance).unwrap_or(0),
                    fee,
                    multiplier,
                )
                .map_err(|e| BookingError::Store(StoreError::Corrupt(e.to_string())))?,
                None,
            ),
        };
        let incentives = self
            .incentives(&city, locked.as_ref(), view.position, &mut f, ended)
            .await?;
        let receipt = serde_json::json!({
            "currency": currency.code(),
            "unlock": f.unlock.minor,
            "time": f.time.minor,
            "distance": f.distance.minor,
            "cap_discount": f.cap_discount.minor,
            "parking_fee": f.parking_fee.minor,
            "total": f.total.minor,
            "total_display": f.total.to_string(),
            "duration_s": ended.since(started) / 1_000,
            "distance_m": distance,
            "plan": plan,
            "pass": pass_note,
            "multiplier": f64::from(multiplier) / 1_000.0,
            "price_reason": locked.as_ref().map(|l| l.reason.clone()),
            "incentives": incentives,
        });
        let facts = TripFacts {
            ended_at: Some(ended),
            distance_m: Some(distance),
            receipt: Some(receipt.to_string()),
            ..TripFacts::default()
        };
        let done = self
            .move_booking(&b.id, riding, BookingState::Ended, &facts, ended)
            .await?
            .ok_or_else(|| BookingError::WrongState("no longer on a trip".into()))?;
        let events = if micromobility(view.vehicle_type) {
            vec![EventType::TripEnd]
        } else {
            vec![EventType::TripStop, EventType::TripEnd]
        };
        self.change_vehicle(
            &b.vehicle_id,
            &b.id,
            &events,
            VehicleState::Available,
            ended,
        )
        .await?;
        metrics::counter!("bookings_total", "outcome" => "trip_ended").increment(1);
        // Capture the fare (idempotent per booking); the trip has ended either way, and an
        // unsettled payment is visible in the booking's detail.
        let key = format!("trip:{}", done.id);
        // Captured from the hold placed at unlock; without one, wallet credit first and the
        // providers (card) otherwise.
        let hold = self
            .store
            .booking_payments(&done.id)
            .await?
            .into_iter()
            .find(|p| p.kind == PaymentKind::Authorization && p.state == PaymentState::Authorized);
        let paid = if let Some(hold) = hold {
            self.payments.capture(&key, &hold, f.total).await
        } else {
            match self
                .payments
                .pay_from_wallet(&key, &done.user_id, Some(&done.id), f.total)
                .await
            {
                Ok(Some(p)) => Ok(p),
                Ok(None) => {
                    self.payments
                        .charge(&key, &done.user_id, Some(&done.id), f.total)
                        .await
                }
                Err(e) => Err(e),
            }
        };
        let note = match paid {
            Ok(p) if p.state == PaymentState::Succeeded => format!(
                "paid {} via {}",
                f.total,
                p.provider
                    .as_deref()
                    .unwrap_or("no provider (nothing to pay)")
            ),
            Ok(p) => format!("payment failed: {}", p.detail.unwrap_or_default()),
            Err(e) => format!("payment pending: {e}"),
        };
        // The receipt is announced by the notify-bookings consumer once this is recorded.
        let facts = TripFacts {
            detail: Some(note),
            ..TripFacts::default()
        };
        Ok(self
            .move_booking(
                &done.id,
                BookingState::Ended,
                BookingState::Ended,
                &facts,
                ended,
            )
            .await?
            .unwrap_or(done))
    }

    /// Relocation incentives at the end of a trip: the discount for starting in a zone with
    /// spare vehicles (locked at unlock) and the credit for ending in one short of them (the
    /// board now), each taken off the fare (never below zero) if the city's budget for the day
    /// still allows it.
    async fn incentives(
        &self,
        city: &CityId,
        locked: Option<&crate::intel::LockedPrice>,
        end: Option<mobility_core::LatLon>,
        f: &mut mobility_core::Fare,
        at: TimestampMs,
    ) -> Result<Vec<serde_json::Value>, BookingError> {
        let Some(intel) = &self.intel else {
            return Ok(Vec::new());
        };
        let mut offers: Vec<(&'static str, i64, String)> = Vec::new();
        if let Some(l) = locked
            && l.start_discount_cents > 0
        {
            offers.push(("start_discount", l.start_discount_cents, l.zone.clone()));
        }
        if locked.is_some()
            && let Some(end) = end
            && let Some(board) = intel.board(city)
            && let Some(z) = board.at(end)
            && z.price.end_credit_cents > 0
        {
            offers.push(("end_credit", z.price.end_credit_cents, z.zone.clone()));
        }
        let budget = intel.pricing().daily_budget_cents;
        let scale = 10_i64.pow(f.total.currency.minor_digits());
        let mut out = Vec::new();
        for (kind, cents, zone) in offers {
            let amount = (cents * scale / 100).min(f.total.minor);
            if amount <= 0 {
                continue;
            }
            let day = crate::intel::budget_day(at);
            if self.store.spend_incentive(city, day, cents, budget).await? {
                f.total = Money::new(f.total.minor - amount, f.total.currency);
                metrics::counter!("incentives_given_total", "kind" => kind).increment(1);
                out.push(serde_json::json!({ "kind": kind, "zone": zone, "amount": amount }));
            } else {
                metrics::counter!("incentives_refused_total", "reason" => "budget").increment(1);
            }
        }
        Ok(out)
    }

    /// Records an MDS change of the vehicle (re-deciding on a concurrent change) and mirrors it
    /// in the live index.
    async fn change_vehicle(
        &self,
        id: &VehicleId,
        booking: &str,
        events: &[EventType],
        to: VehicleState,
        now: TimestampMs,
    ) -> Result<bool, StoreError> {
        for _ in 0..3 {
            let Some(v) = self.store.vehicle(id).await? else {
                return Ok(false);
            };
            let Ok(change) = v.decide(events, to, now) else {
                return Ok(false);
            };
            let here = self.fleet.vehicle(id).and_then(|(_, view)| view.position);
            let change = change.with_context(here, Some(booking.to_owned()));
            match self.store.record_state_change(&change).await {
                Ok(v) => {
                    self.fleet.apply_vehicle(&v);
                    return Ok(true);
                }
                Err(StoreError::VersionConflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Reserves a vehicle for a rider.
    pub async fn reserve(
        &self,
        user_id: &str,
        vehicle: VehicleId,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        let (city, view) = self
            .fleet
            .vehicle(&vehicle)
            .ok_or(BookingError::UnknownVehicle(vehicle))?;
        if !micromobility(view.vehicle_type) && !self.kyc.may_drive(user_id, now).await? {
            return Err(BookingError::LicenceRequired);
        }
        if view.state != VehicleState::Available {
            return Err(BookingError::Unavailable(format!(
                "it is {}",
                view.state.as_str()
            )));
        }
        let min = if micromobility(view.vehicle_type) {
            MICRO_MIN_BATTERY
        } else {
            CAR_MIN_BATTERY
        };
        match view.battery {
            Some(b) if b.get() >= min => {}
            Some(b) => {
                return Err(BookingError::Unavailable(format!(
                    "its battery is at {} % (at least {min} % is needed)",
                    b.get()
                )));
            }
            None => return Err(BookingError::Unavailable("its battery is unknown".into())),
        }
        let booking = BookingRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            vehicle_id: vehicle,
            city,
            state: BookingState::Reserved.as_str().into(),
            created_at: now,
            hold_until: now.plus_ms(self.hold_ms),
            updated_at: now,
            trip: TripFacts::default(),
        };
        match self.store.insert_booking(&booking).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => return Err(BookingError::Conflict),
            Err(e) => return Err(e.into()),
        }
        if !self
            .change_vehicle(
                &vehicle,
                &booking.id,
                &[EventType::ReservationStart],
                VehicleState::Reserved,
                now,
            )
            .await?
        {
            // The vehicle changed under us (taken out of service, say): give the hold back.
            self.store
                .transition_booking(
                    &booking.id,
                    BookingState::Reserved.as_str(),
                    BookingState::Cancelled.as_str(),
                    now,
                )
                .await?;
            return Err(BookingError::Unavailable("it just changed state".into()));
        }
        metrics::counter!("bookings_total", "outcome" => "reserved").increment(1);
        Ok(booking)
    }

    /// A rider's booking (`None` if it does not exist or is someone else's, unless `any`).
    pub async fn get(
        &self,
        id: &str,
        user_id: Option<&str>,
    ) -> Result<BookingRecord, BookingError> {
        match self.store.booking(id).await? {
            Some(b) if user_id.is_none_or(|u| u == b.user_id) => Ok(b),
            _ => Err(BookingError::NotFound),
        }
    }

    /// The rider cancels a reservation; the vehicle becomes available.
    pub async fn cancel(
        &self,
        id: &str,
        user_id: Option<&str>,
        now: TimestampMs,
    ) -> Result<BookingRecord, BookingError> {
        let b = self.get(id, user_id).await?;
        let Some(done) = self
            .store
            .transition_booking(
                &b.id,
                BookingState::Reserved.as_str(),
                BookingState::Cancelled.as_str(),
                now,
            )
            .await?
        else {
            let current = self.get(id, user_id).await?;
            return Err(BookingError::WrongState(current.state));
        };
        self.release(&done, true, now).await?;
        metrics::counter!("bookings_total", "outcome" => "cancelled").increment(1);
        Ok(done)
    }

    async fn release(
        &self,
        b: &BookingRecord,
        by_rider: bool,
        now: TimestampMs,
    ) -> Result<(), StoreError> {
        let t = self
            .fleet
            .vehicle(&b.vehicle_id)
            .map_or(VehicleType::Scooter, |(_, v)| v.vehicle_type);
        self.change_vehicle(
            &b.vehicle_id,
            &b.id,
            &release_events(t, by_rider),
            VehicleState::Available,
            now,
        )
        .await?;
        Ok(())
    }

    /// Lets lapsed holds go; returns how many.
    pub async fn expire(&self, now: TimestampMs) -> Result<usize, StoreError> {
        let expired = self.store.expire_holds(now).await?;
        for b in &expired {
            // The rider is told by the notify-bookings consumer (the expiry is an event).
            self.release(b, false, now).await?;
            metrics::counter!("bookings_total", "outcome" => "expired").increment(1);
        }
        Ok(expired.len())
    }
}
