//! The live views' feed: the vehicle stream (and anything else that subscribes to
//! [`LiveState::changes`]) follows the bus's telemetry stream, not ingest directly. What a
//! map shows is then what was published: in one process the same reports a moment later (the
//! relay's linger and the bus's write), and, once several processes share a bus, the reports
//! any of them accepted.
//!
//! The feed reads only while someone watches: with no subscriber it drops its subscription
//! (decoding every report for nobody would cost ingest) and only notes where the stream ends,
//! every [`IDLE_POLL`]. A new viewer starts it again from the last such mark, which is before
//! the viewer's snapshot: nothing applied after the snapshot is missed (a few reports from
//! before it are sent again, harmlessly: a change is the vehicle as it is now).

use std::{sync::Arc, time::Duration};

use mobility_bus::{EventBus, StartAt};
use mobility_core::{Domain, DomainEvent};

use crate::{fleet::Change, state::LiveState};

/// Most events taken per read.
const READ_MAX: usize = 64;
/// How often an idle feed looks for viewers.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Runs the feed until `stop`.
pub async fn run(
    bus: Arc<dyn EventBus>,
    live: Arc<LiveState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut mark = StartAt::New;
    loop {
        // Wait for a viewer, noting where the stream ends meanwhile.
        while live.changes.receiver_count() == 0 {
            if let Ok(info) = bus.stream_info(Domain::Telemetry).await
                // A viewer who came while we asked may have taken its snapshot before this
                // end: keep the older mark then.
                && live.changes.receiver_count() == 0
            {
                mark = StartAt::Seq(info.last_seq + 1);
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
        let Some(mut sub) = crate::replica::subscribe_retrying(
            bus.as_ref(),
            Domain::Telemetry,
            mark,
            &mut stop,
            "live_feed_errors_total",
            "the live feed",
        )
        .await
        else {
            return;
        };
        while live.changes.receiver_count() > 0 {
            let got = tokio::select! {
                _ = stop.changed() => return,
                got = sub.next(READ_MAX, Duration::from_millis(500)) => got,
            };
            match got {
                Ok(events) => {
                    if let Some(last) = events.last() {
                        mark = StartAt::Seq(last.seq + 1);
                    }
                    for e in events {
                        if let DomainEvent::TelemetryAccepted { reports } = &e.event {
                            let batch: Vec<Change> = reports
                                .iter()
                                .filter_map(|t| live.change_of(&t.vehicle_id))
                                .collect();
                            if !batch.is_empty() {
                                let _ = live.changes.send(Arc::new(batch));
                            }
                        }
                    }
                }
                Err(e) => {
                    metrics::counter!("live_feed_errors_total").increment(1);
                    tracing::warn!(error = %e, "the telemetry stream's subscription failed; following it again");
                    break;
                }
            }
        }
    }
}
