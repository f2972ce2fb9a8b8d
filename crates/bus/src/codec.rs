//! The wire format of an event, the same on both backends: one JSON object per event,
//! `{"id","subject","type","city","region","at","event":{…}}`. JSON so that `nats sub`, a
//! log dump and a later version of the platform can all read it (new fields are optional).
//! The sequence and the stored time are the stream's, not part of the bytes.
//!
//! One exception, for volume: a `telemetry_accepted` event is a binary frame, `0x01 | header
//! length u32 | the JSON envelope (its event `{"type": "telemetry_accepted", "format":
//! "bin1"}`) | the reports as binary records`, about a quarter of their JSON size and without
//! float formatting, which cost more than ingest itself. Record, little-endian: vehicle uuid 16 | at i64 | lat f64 | lon f64 | flags u8 (battery,
//! speed, heading, odometer, locked present, locked) | battery u8 | speed f32 | heading f32 |
//! odometer u32 | n u8 | n × fault code u16.

use mobility_core::{
    BatteryPct, CityId, DomainEvent, LatLon, NewEvent, Telemetry, TimestampMs, VehicleId,
};
use serde::{Deserialize, Serialize};

use crate::{BusError, EVENT_BYTES_MAX, Envelope, subject_of};

#[derive(Serialize)]
struct Out<'a, E: Serialize> {
    id: uuid::Uuid,
    subject: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'a CityId>,
    region: &'a str,
    at: TimestampMs,
    event: E,
}

/// A telemetry batch's header on the wire (the reports follow it in the frame).
#[derive(Serialize, Deserialize)]
struct TelemetryWire {
    #[serde(rename = "type")]
    kind: String,
    format: String,
}

/// First byte of a binary frame (a JSON envelope starts with `{`).
const FRAME: u8 = 0x01;

const TELEMETRY_KIND: &str = "telemetry_accepted";
const TELEMETRY_FORMAT: &str = "bin1";

#[derive(Deserialize)]
#[serde(untagged)]
enum WireEvent {
    Telemetry(TelemetryWire),
    Domain(DomainEvent),
}

#[derive(Deserialize)]
struct In {
    id: uuid::Uuid,
    subject: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    city: Option<CityId>,
    region: String,
    at: TimestampMs,
    event: WireEvent,
}

fn encode_reports(reports: &[Telemetry], b: &mut Vec<u8>) {
    b.reserve(reports.len() * 56);
    for t in reports {
        b.extend_from_slice(t.vehicle_id.as_uuid().as_bytes());
        b.extend_from_slice(&t.at.0.to_le_bytes());
        b.extend_from_slice(&t.position.lat().to_le_bytes());
        b.extend_from_slice(&t.position.lon().to_le_bytes());
        let flags = u8::from(t.battery.is_some())
            | u8::from(t.speed_m_s.is_some()) << 1
            | u8::from(t.heading_deg.is_some()) << 2
            | u8::from(t.odometer_m.is_some()) << 3
            | u8::from(t.locked.is_some()) << 4
            | u8::from(t.locked == Some(true)) << 5;
        b.push(flags);
        b.push(t.battery.map_or(0, BatteryPct::get));
        b.extend_from_slice(&t.speed_m_s.unwrap_or(0.0).to_le_bytes());
        b.extend_from_slice(&t.heading_deg.unwrap_or(0.0).to_le_bytes());
        b.extend_from_slice(&t.odometer_m.unwrap_or(0).to_le_bytes());
        let n = t.error_codes.len().min(usize::from(u8::MAX));
        b.push(u8::try_from(n).unwrap_or(u8::MAX));
        for c in &t.error_codes[..n] {
            b.extend_from_slice(&c.to_le_bytes());
        }
    }
}

fn decode_reports(b: &[u8]) -> Result<Vec<Telemetry>, BusError> {
    let bad = |what: &str| BusError::Codec(format!("telemetry record: {what}"));
    let mut out = Vec::with_capacity(b.len() / 56);
    let mut i = 0;
    let take = |i: &mut usize, n: usize| -> Result<&[u8], BusError> {
        let s = b.get(*i..*i + n).ok_or_else(|| bad("truncated"))?;
        *i += n;
        Ok(s)
    };
    while i < b.len() {
        let id = uuid::Uuid::from_slice(take(&mut i, 16)?).map_err(|_| bad("vehicle"))?;
        let at = i64::from_le_bytes(take(&mut i, 8)?.try_into().map_err(|_| bad("at"))?);
        let lat = f64::from_le_bytes(take(&mut i, 8)?.try_into().map_err(|_| bad("lat"))?);
        let lon = f64::from_le_bytes(take(&mut i, 8)?.try_into().map_err(|_| bad("lon"))?);
        let flags = take(&mut i, 1)?[0];
        let battery = take(&mut i, 1)?[0];
        let speed = f32::from_le_bytes(take(&mut i, 4)?.try_into().map_err(|_| bad("speed"))?);
        let heading = f32::from_le_bytes(take(&mut i, 4)?.try_into().map_err(|_| bad("heading"))?);
        let odometer =
            u32::from_le_bytes(take(&mut i, 4)?.try_into().map_err(|_| bad("odometer"))?);
        let n = usize::from(take(&mut i, 1)?[0]);
        let codes = take(&mut i, 2 * n)?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let on = |bit: u8| flags & (1 << bit) != 0;
        out.push(Telemetry {
            vehicle_id: VehicleId::from_uuid(id),
            at: TimestampMs(at),
            position: LatLon::new(lat, lon).map_err(|e| BusError::Codec(e.to_string()))?,
            battery: if on(0) {
                Some(
                    BatteryPct::new(i64::from(battery))
                        .map_err(|e| BusError::Codec(e.to_string()))?,
                )
            } else {
                None
            },
            speed_m_s: on(1).then_some(speed),
            heading_deg: on(2).then_some(heading),
            odometer_m: on(3).then_some(odometer),
            locked: on(4).then_some(on(5)),
            error_codes: codes,
        });
    }
    Ok(out)
}

/// The subject an event is published on.
#[must_use]
pub fn subject_for(e: &NewEvent) -> String {
    match &e.event {
        DomainEvent::DeadLettered { consumer, .. } => format!("dead_letter.{consumer}"),
        ev => subject_of(ev.domain(), e.city.as_ref()),
    }
}

/// Encodes an event about to be published.
pub fn encode(e: &NewEvent, subject: &str, region: &str) -> Result<Vec<u8>, BusError> {
    let mut out = Vec::with_capacity(256);
    encode_subject_into(e, subject, region, &mut out)?;
    Ok(out)
}

/// Encodes an event at the end of `out` (on its own subject).
pub fn encode_into(e: &NewEvent, region: &str, out: &mut Vec<u8>) -> Result<(), BusError> {
    encode_subject_into(e, &subject_for(e), region, out)
}

fn encode_subject_into(
    e: &NewEvent,
    subject: &str,
    region: &str,
    out: &mut Vec<u8>,
) -> Result<(), BusError> {
    let start = out.len();
    let written = match &e.event {
        DomainEvent::TelemetryAccepted { reports } => {
            out.push(FRAME);
            out.extend_from_slice(&[0; 4]);
            let header = serde_json::to_writer(
                &mut *out,
                &Out {
                    id: e.id,
                    subject,
                    event_type: e.event.type_name(),
                    city: e.city.as_ref(),
                    region,
                    at: e.at,
                    event: TelemetryWire {
                        kind: TELEMETRY_KIND.to_owned(),
                        format: TELEMETRY_FORMAT.to_owned(),
                    },
                },
            );
            let header_len = u32::try_from(out.len() - start - 5).unwrap_or(u32::MAX);
            out[start + 1..start + 5].copy_from_slice(&header_len.to_le_bytes());
            encode_reports(reports, out);
            header
        }
        event => serde_json::to_writer(
            &mut *out,
            &Out {
                id: e.id,
                subject,
                event_type: e.event.type_name(),
                city: e.city.as_ref(),
                region,
                at: e.at,
                event,
            },
        ),
    };
    written.map_err(|err| BusError::Codec(err.to_string()))?;
    let len = out.len() - start;
    if len > EVENT_BYTES_MAX {
        out.truncate(start);
        return Err(BusError::Codec(format!(
            "a {} event of {len} bytes is over the {EVENT_BYTES_MAX}-byte limit",
            e.event.type_name()
        )));
    }
    Ok(())
}

/// Encodes a delivered envelope again as text (for the dead letters): plain JSON, telemetry
/// reports included, so a dead letter can be read and replayed by hand.
pub fn encode_envelope(e: &Envelope) -> Result<String, BusError> {
    serde_json::to_string(&Out {
        id: e.id,
        subject: &e.subject,
        event_type: &e.event_type,
        city: e.city.as_ref(),
        region: &e.region,
        at: e.at,
        event: &e.event,
    })
    .map_err(|err| BusError::Codec(err.to_string()))
}

/// Decodes stored bytes with their sequence and stored time.
pub fn decode(bytes: &[u8], seq: u64, stored: TimestampMs) -> Result<Envelope, BusError> {
    let (json, body) = match bytes.first() {
        Some(&FRAME) => {
            let len = bytes
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| BusError::Codec("truncated frame".into()))?;
            let end = 5usize.saturating_add(len as usize);
            let json = bytes
                .get(5..end)
                .ok_or_else(|| BusError::Codec("truncated frame header".into()))?;
            (json, Some(&bytes[end..]))
        }
        _ => (bytes, None),
    };
    let i: In = serde_json::from_slice(json).map_err(|e| BusError::Codec(e.to_string()))?;
    let event = match (i.event, body) {
        (WireEvent::Domain(e), None) => e,
        (WireEvent::Telemetry(t), Some(body))
            if t.kind == TELEMETRY_KIND && t.format == TELEMETRY_FORMAT =>
        {
            DomainEvent::TelemetryAccepted {
                reports: decode_reports(body)?,
            }
        }
        (WireEvent::Domain(_), Some(_)) => {
            return Err(BusError::Codec(
                "a frame must carry a telemetry batch".into(),
            ));
        }
        (WireEvent::Telemetry(t), _) => {
            return Err(BusError::Codec(format!(
                "unknown event {:?} in format {:?}",
                t.kind, t.format
            )));
        }
    };
    Ok(Envelope {
        id: i.id,
        subject: i.subject,
        event_type: i.event_type,
        city: i.city,
        region: i.region,
        at: i.at,
        seq,
        stored,
        event,
    })
}

/// An envelope for bytes that do not decode (written by a newer version, or damaged), so that
/// they can be dead-lettered whole instead of lost or stuck.
#[must_use]
pub fn undecodable(bytes: &[u8], seq: u64, stored: TimestampMs, subject: &str) -> Envelope {
    Envelope {
        id: uuid::Uuid::nil(),
        subject: subject.to_owned(),
        event_type: "undecodable".to_owned(),
        city: None,
        region: String::new(),
        at: stored,
        seq,
        stored,
        event: DomainEvent::DeadLettered {
            consumer: String::new(),
            attempts: 0,
            subject: subject.to_owned(),
            seq,
            original: String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_wire() {
        let e = NewEvent::new(
            uuid::Uuid::from_u128(7),
            Some(CityId::parse("bcn").expect("city")),
            TimestampMs(42),
            DomainEvent::KycDecided {
                user: "u1".into(),
                submission: "s1".into(),
                kind: "identity".into(),
                decision: "verified".into(),
                at: TimestampMs(42),
            },
        );
        let subject = subject_for(&e);
        assert_eq!(subject, "account.bcn");
        let bytes = encode(&e, &subject, "eu").expect("encode");
        let back = decode(&bytes, 9, TimestampMs(43)).expect("decode");
        assert_eq!(back.id, e.id);
        assert_eq!(back.event, e.event);
        assert_eq!(back.region, "eu");
        assert_eq!((back.seq, back.stored), (9, TimestampMs(43)));
        assert_eq!(back.event_type, "account.kyc_decided");
    }

    #[test]
    fn telemetry_batches_travel_as_binary_records_and_come_back_equal() {
        let t = |n: u128, full: bool| Telemetry {
            vehicle_id: VehicleId::from_uuid(uuid::Uuid::from_u128(n)),
            at: TimestampMs(1_700_000_000_000 + i64::try_from(n).unwrap_or(0)),
            position: LatLon::new(41.3851, 2.1734).expect("position"),
            battery: full.then(|| BatteryPct::new(37).expect("battery")),
            speed_m_s: full.then_some(4.25),
            heading_deg: full.then_some(270.5),
            odometer_m: full.then_some(123_456),
            locked: full.then_some(false),
            error_codes: if full { vec![3, 65_535] } else { vec![] },
        };
        let e = NewEvent::new(
            uuid::Uuid::from_u128(1),
            Some(CityId::parse("bcn").expect("city")),
            TimestampMs(5),
            DomainEvent::TelemetryAccepted {
                reports: vec![t(1, true), t(2, false)],
            },
        );
        let bytes = encode(&e, "telemetry.bcn", "eu").expect("encode");
        assert_eq!(bytes[0], FRAME);
        let back = decode(&bytes, 1, TimestampMs(6)).expect("decode");
        assert_eq!(back.event, e.event);
        assert_eq!(back.subject, "telemetry.bcn");
        // Truncated or damaged frames are errors, never panics.
        for cut in 0..bytes.len() - 1 {
            let _ = decode(&bytes[..cut], 1, TimestampMs(6));
        }
        assert!(decode(&bytes[..bytes.len() - 3], 1, TimestampMs(6)).is_err());
        let mut bad = bytes.clone();
        bad[1] = 0xff;
        assert!(decode(&bad, 1, TimestampMs(6)).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"{", b"null", b"{\"id\":1}", &[0xff, 0xfe]] {
            assert!(decode(bytes, 1, TimestampMs(0)).is_err());
        }
    }
}
