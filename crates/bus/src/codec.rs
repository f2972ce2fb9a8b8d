//! The wire format of an event, the same on both backends: one JSON object per event,
//! `{"id","subject","type","city","region","at","event":{…}}`. JSON so that `nats sub`, a
//! log dump and a later version of the platform can all read it (new fields are optional).
//! The sequence and the stored time are the stream's, not part of the bytes.

use mobility_core::{CityId, DomainEvent, NewEvent, TimestampMs};
use serde::{Deserialize, Serialize};

use crate::{BusError, EVENT_BYTES_MAX, Envelope, subject_of};

#[derive(Serialize)]
struct Out<'a> {
    id: uuid::Uuid,
    subject: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'a CityId>,
    region: &'a str,
    at: TimestampMs,
    event: &'a DomainEvent,
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
    event: DomainEvent,
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
    serde_json::to_writer(
        &mut *out,
        &Out {
            id: e.id,
            subject,
            event_type: e.event.type_name(),
            city: e.city.as_ref(),
            region,
            at: e.at,
            event: &e.event,
        },
    )
    .map_err(|err| BusError::Codec(err.to_string()))?;
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

/// Encodes a delivered envelope again (for the dead letters), as text.
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
    let i: In = serde_json::from_slice(bytes).map_err(|e| BusError::Codec(e.to_string()))?;
    Ok(Envelope {
        id: i.id,
        subject: i.subject,
        event_type: i.event_type,
        city: i.city,
        region: i.region,
        at: i.at,
        seq,
        stored,
        event: i.event,
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
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"{", b"null", b"{\"id\":1}", &[0xff, 0xfe]] {
            assert!(decode(bytes, 1, TimestampMs(0)).is_err());
        }
    }
}
