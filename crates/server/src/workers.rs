//! The workers: the platform's reactions, each a named durable consumer of one stream, and the
//! loops that feed the bus from the store.
//!
//! - `geofence-actions` (stream `fleet`): counts crossings and alerts, keeps the dashboard's
//!   recent-events feed, and sends slow-zone speed limits to vehicles.
//! - [`outbox_relay`]: the store's transactional outbox (booking, payment, KYC, lifecycle and
//!   admin events, each written in the transaction of its change) published in order, then
//!   deleted. Several processes may relay the same rows: the bus deduplicates by id.
//! - `notify-bookings` (stream `booking`) and `notify-accounts` (stream `account`): riders'
//!   notifications (reservation expired, the trip's receipt once its payment is settled, KYC
//!   results) written to the notification outbox.
//! - `intel-demand` adds riders' searches (counted by `mobility_live::relay::DemandRelay`) to
//!   the fleet's search log (what intel stores and forecasts from), and `intel-returns` counts
//!   trips' ends from the lifecycle stream.
//! - Lag: every consumer's unacked events are the gauge `bus_consumer_lag{consumer}`.
//!
//! What ingest accepted reaches the bus through `mobility_live::relay::Relay`.

use std::{sync::Arc, time::Duration};

use mobility_bus::{ConsumerSpec, EventBus};
use mobility_core::{Domain, DomainEvent, NewEvent, TimestampMs};

use mobility_live::fleet::{Fleet, FleetEvent, FleetEvents};

/// The geofence-actions consumer's spec.
#[must_use]
pub fn geofence_actions_spec() -> ConsumerSpec {
    ConsumerSpec::new("geofence-actions", Domain::Fleet)
}

/// Runs a consumer until `stop` fires: each event goes to `handle`; `Ok` acks it, `Err` naks
/// it (redelivered after the consumer's back-off, dead-lettered after its attempts).
pub async fn run_consumer<F, Fut>(
    bus: Arc<dyn EventBus>,
    spec: ConsumerSpec,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(mobility_bus::Envelope) -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let name = spec.name.clone();
    let mut consumer = loop {
        match bus.consumer(spec.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot open a consumer; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    let handled = metrics::counter!("bus_consumed_total", "consumer" => name.clone());
    let failed = metrics::counter!("bus_consumer_errors_total", "consumer" => name.clone());
    loop {
        let batch = tokio::select! {
            b = consumer.fetch(256, Duration::from_secs(1)) => b,
            _ = stop.changed() => return,
        };
        let deliveries = match batch {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot fetch; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for d in deliveries {
            let outcome = handle(d.envelope.clone()).await;
            let acked = match outcome {
                Ok(()) => {
                    handled.increment(1);
                    d.ack().await
                }
                Err(e) => {
                    failed.increment(1);
                    tracing::warn!(consumer = %name, seq = d.envelope.seq, attempt = d.attempt, error = %e, "event not handled; it comes again");
                    d.nak().await
                }
            };
            if let Err(e) = acked {
                tracing::warn!(consumer = %name, error = %e, "cannot ack");
            }
        }
    }
}

/// Runs the geofence-actions consumer until `stop` fires.
pub async fn geofence_actions(
    bus: Arc<dyn EventBus>,
    feed: Arc<FleetEvents>,
    commands: Arc<mobility_live::commands::Commands>,
    clock: Arc<dyn mobility_core::Clock>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    run_consumer(bus, geofence_actions_spec(), stop, move |e| {
        let (feed, commands, now) = (feed.clone(), commands.clone(), clock.now());
        async move {
            on_fleet_event(&e, &feed, &commands, now);
            Ok(())
        }
    })
    .await;
}

fn on_fleet_event(
    e: &mobility_bus::Envelope,
    feed: &FleetEvents,
    commands: &Arc<mobility_live::commands::Commands>,
    now: TimestampMs,
) {
    let city = e
        .city
        .as_ref()
        .map_or_else(String::new, ToString::to_string);
    match &e.event {
        DomainEvent::GeofenceCrossed {
            vehicle,
            at,
            fence_id,
            zone,
            direction,
            speed_limit_kmh,
        } => {
            metrics::counter!("geofence_crossings_total", "zone" => zone.clone(), "direction" => direction.clone()).increment(1);
            feed.record(FleetEvent {
                seq: 0,
                at_ms: at.0,
                city,
                vehicle_id: vehicle.to_string(),
                kind: "geofence",
                name: direction.clone(),
                fence_id: fence_id.clone(),
                zone: zone.clone(),
                detail: None,
            });
            if let Some(kmh) = *speed_limit_kmh {
                send_speed_limit(commands.clone(), *vehicle, kmh, now);
            }
        }
        DomainEvent::FleetAlert {
            vehicle,
            at,
            alert,
            fence_id,
            zone,
        } => {
            metrics::counter!("fleet_alerts_total", "alert" => alert.clone()).increment(1);
            tracing::info!(vehicle = %vehicle, alert = %alert, fence = %fence_id, "fleet alert");
            feed.record(FleetEvent {
                seq: 0,
                at_ms: at.0,
                city,
                vehicle_id: vehicle.to_string(),
                kind: "alert",
                name: alert.clone(),
                fence_id: fence_id.clone(),
                zone: zone.clone(),
                detail: None,
            });
        }
        _ => {}
    }
}

/// The notification consumers' specs: riders hear about their bookings and KYC decisions.
#[must_use]
pub fn notify_specs() -> [ConsumerSpec; 2] {
    [
        ConsumerSpec::new("notify-bookings", Domain::Booking),
        ConsumerSpec::new("notify-accounts", Domain::Account),
    ]
}

/// Runs the notification consumers until `stop` fires: each turns events into the riders'
/// notification outbox (whose event keys make a redelivered event announce nothing twice).
pub async fn notifications(
    bus: Arc<dyn EventBus>,
    store: Arc<dyn mobility_store::Store>,
    notifier: Arc<mobility_services::notifications::Notifier>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let [bookings, accounts] = notify_specs();
    let on_booking = {
        let (store, notifier) = (store.clone(), notifier.clone());
        run_consumer(bus.clone(), bookings, stop.clone(), move |e| {
            let (store, notifier) = (store.clone(), notifier.clone());
            async move { notify_booking(&e, store.as_ref(), &notifier).await }
        })
    };
    let on_account = run_consumer(bus, accounts, stop, move |e| {
        let (store, notifier) = (store.clone(), notifier.clone());
        async move { notify_account(&e, store.as_ref(), &notifier).await }
    });
    tokio::join!(on_booking, on_account);
}

async fn notify_booking(
    e: &mobility_bus::Envelope,
    store: &dyn mobility_store::Store,
    notifier: &mobility_services::notifications::Notifier,
) -> Result<(), String> {
    let DomainEvent::BookingChanged {
        booking,
        user,
        vehicle,
        to,
        at,
        ..
    } = &e.event
    else {
        return Ok(());
    };
    match to.as_str() {
        "expired" => notifier
            .announce(
                user,
                &format!("reservation_expired:{booking}"),
                "reservation_expired",
                &serde_json::json!({"booking_id": booking, "vehicle_id": vehicle.to_string()}),
                *at,
            )
            .await
            .map_err(|e| e.to_string()),
        // The receipt goes out once the trip's payment is settled: the booking's last update
        // records how it was paid.
        "ended" => {
            let Some(b) = store.booking(booking).await.map_err(|e| e.to_string())? else {
                return Ok(());
            };
            let (Some(note), Some(receipt)) = (&b.trip.detail, &b.trip.receipt) else {
                return Ok(());
            };
            let receipt: serde_json::Value =
                serde_json::from_str(receipt).unwrap_or(serde_json::Value::Null);
            let (started, ended) = (
                b.trip.started_at.unwrap_or(*at),
                b.trip.ended_at.unwrap_or(*at),
            );
            #[allow(clippy::cast_precision_loss)]
            let km = (b.trip.distance_m.unwrap_or(0) as f64 / 100.0).round() / 10.0;
            notifier
                .announce(
                    &b.user_id,
                    &format!("receipt:{}", b.id),
                    "receipt",
                    &serde_json::json!({
                        "booking_id": b.id,
                        "total": receipt["total_display"],
                        "minutes": ended.since(started).max(0) / 60_000,
                        "km": km,
                        "payment": note,
                        "receipt": receipt,
                    }),
                    ended,
                )
                .await
                .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

async fn notify_account(
    e: &mobility_bus::Envelope,
    store: &dyn mobility_store::Store,
    notifier: &mobility_services::notifications::Notifier,
) -> Result<(), String> {
    let DomainEvent::KycDecided {
        user,
        submission,
        at,
        ..
    } = &e.event
    else {
        return Ok(());
    };
    let kyc = store.user_kyc(user).await.map_err(|e| e.to_string())?;
    let Some(k) = kyc.iter().find(|k| k.id == *submission) else {
        return Ok(());
    };
    notifier
        .announce(
            &k.user_id,
            &format!("kyc:{}", k.id),
            "kyc_result",
            &serde_json::json!({"kind": k.kind, "state": k.state, "reason": k.reason}),
            *at,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Sends a slow-zone speed limit without waiting for the vehicle (the command is tracked).
fn send_speed_limit(
    commands: Arc<mobility_live::commands::Commands>,
    vehicle: mobility_core::VehicleId,
    kmh: u8,
    now: TimestampMs,
) {
    tokio::spawn(async move {
        let kind = mobility_core::CommandKind::SetSpeedLimit {
            speed_limit_kmh: kmh,
        };
        if let Err(e) = commands.send(vehicle, kind, 10_000, now).await {
            tracing::warn!(%vehicle, error = %e, "cannot send a slow-zone speed limit");
        }
    });
}

/// Every consumer the platform runs (for the lag gauge and `mobility events consumers`).
#[must_use]
pub fn consumers() -> Vec<ConsumerSpec> {
    let mut all = vec![geofence_actions_spec()];
    all.extend(notify_specs());
    all.extend(intel_specs());
    all
}

/// Sets `bus_consumer_lag{consumer}` for every consumer every few seconds, until `stop`.
pub async fn lag_metrics(bus: Arc<dyn EventBus>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut handles = Vec::new();
    for spec in consumers() {
        if let Ok(c) = bus.consumer(spec).await {
            handles.push(c);
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for c in &handles {
            if let Ok(lag) = c.lag().await {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!("bus_consumer_lag", "consumer" => c.spec().name.clone())
                    .set(lag as f64);
            }
        }
    }
}

/// Outbox events relayed per round.
const OUTBOX_BATCH_MAX: u32 = 1_000;
/// How often an empty outbox is looked at again.
const OUTBOX_POLL: Duration = Duration::from_millis(50);

/// Publishes the store's outbox to the bus until `stop` fires (then relays what is left once).
pub async fn outbox_relay(
    store: Arc<dyn mobility_store::Store>,
    bus: Arc<dyn EventBus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let relayed = metrics::counter!("bus_outbox_relayed_total");
    let mut backoff = OUTBOX_POLL;
    loop {
        let stopping = *stop.borrow();
        match relay_once(store.as_ref(), bus.as_ref()).await {
            Ok(0) => {
                if stopping {
                    return;
                }
                backoff = OUTBOX_POLL;
                tokio::select! {
                    () = tokio::time::sleep(OUTBOX_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(n) => {
                relayed.increment(n as u64);
                backoff = OUTBOX_POLL;
            }
            Err(e) => {
                metrics::counter!("bus_outbox_errors_total").increment(1);
                tracing::warn!(error = %e, "cannot relay the event outbox; retrying");
                if stopping {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One round: publish what the outbox holds (in order), then delete it. Returns how many.
pub async fn relay_once(
    store: &dyn mobility_store::Store,
    bus: &dyn EventBus,
) -> Result<usize, String> {
    let rows = store
        .outbox_events(0, OUTBOX_BATCH_MAX)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = rows.last().map(|r| r.seq) else {
        return Ok(0);
    };
    let events: Vec<NewEvent> = rows.into_iter().map(|r| r.event).collect();
    bus.publish(&events).await.map_err(|e| e.to_string())?;
    store
        .delete_outbox_events(last)
        .await
        .map_err(|e| e.to_string())?;
    Ok(events.len())
}

/// The intel consumers' specs.
#[must_use]
pub fn intel_specs() -> [ConsumerSpec; 2] {
    [
        ConsumerSpec::new("intel-demand", Domain::Demand),
        ConsumerSpec::new("intel-returns", Domain::Lifecycle),
    ]
}

/// Runs the intel consumers until `stop`: searches into the fleet's search log, trips' ends
/// as returns.
pub async fn intel(
    bus: Arc<dyn EventBus>,
    fleet: Arc<Fleet>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let [demand, returns] = intel_specs();
    let searches = {
        let fleet = fleet.clone();
        run_consumer(bus.clone(), demand, stop.clone(), move |e| {
            let fleet = fleet.clone();
            async move {
                if let (Some(city), DomainEvent::RidersSearched { minute, cells }) =
                    (&e.city, &e.event)
                {
                    fleet.add_searches(city, *minute, cells);
                }
                Ok(())
            }
        })
    };
    let ends = run_consumer(bus, returns, stop, move |e| {
        let fleet = fleet.clone();
        async move {
            if let (
                Some(city),
                DomainEvent::VehicleStateChanged {
                    from: mobility_core::VehicleState::OnTrip,
                    to,
                    location: Some(at),
                    ..
                },
            ) = (&e.city, &e.event)
                && *to != mobility_core::VehicleState::OnTrip
            {
                // Counted when the platform learned of it (the vehicle's clock may be off).
                fleet.note_return(city, *at, e.stored);
            }
            Ok(())
        }
    });
    tokio::join!(searches, ends);
}

/// Opens every consumer once, so each exists (at its start) before anything is published.
pub async fn ensure_consumers(bus: &dyn EventBus) -> Result<(), mobility_bus::BusError> {
    for spec in consumers() {
        bus.consumer(spec).await?;
    }
    Ok(())
}
