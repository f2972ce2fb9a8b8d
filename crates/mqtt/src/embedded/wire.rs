//! MQTT 3.1.1 and 5 packets as the vehicle broker sees them. Encoding and decoding are
//! rumqttc's codecs (`mqttbytes::v4` and `v5::mqttbytes::v5`); this module only maps the two
//! protocol versions onto the few packets a vehicle session uses.

use bytes::{Bytes, BytesMut};
use rumqttc::{
    mqttbytes::{self as m4, v4},
    v5::mqttbytes::{self as m5, v5},
};

/// Protocol version of a connection, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.
    V5,
}

/// Most topic aliases a v5 client may set (announced in CONNACK).
pub const TOPIC_ALIASES_MAX: u16 = 16;

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes yet.
    More,
    /// A CONNECT of a version we speak.
    Connect(Proto),
    /// A CONNECT of another version (3.1, or unknown): refused.
    Unsupported,
    /// Not a CONNECT at all.
    NotConnect,
}

/// Reads the protocol level of the CONNECT at the start of `buf` without consuming it.
#[must_use]
pub fn hello(buf: &[u8]) -> Hello {
    let Some(&first) = buf.first() else {
        return Hello::More;
    };
    if first != 0x10 {
        return Hello::NotConnect;
    }
    // Remaining length: 1 to 4 bytes of 7 bits.
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Hello::More;
        };
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Hello::NotConnect;
        }
    }
    let (Some(&hi), Some(&lo)) = (buf.get(at), buf.get(at + 1)) else {
        return Hello::More;
    };
    let name_len = usize::from(u16::from_be_bytes([hi, lo]));
    let Some(name) = buf.get(at + 2..at + 2 + name_len) else {
        return Hello::More;
    };
    let Some(&level) = buf.get(at + 2 + name_len) else {
        return Hello::More;
    };
    match (name, level) {
        (b"MQTT", 4) => Hello::Connect(Proto::V4),
        (b"MQTT", 5) => Hello::Connect(Proto::V5),
        _ => Hello::Unsupported,
    }
}

/// A CONNECT, either version.
#[derive(Debug)]
pub struct Connect {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_s: u16,
    /// The will's topic and payload, if any.
    pub will: Option<(String, Bytes)>,
}

/// A packet from a vehicle, either version.
#[derive(Debug)]
pub enum In {
    Connect(Connect),
    /// `topic` is empty for a v5 publish that names its topic by alias only.
    Publish {
        topic: String,
        alias: Option<u16>,
        qos: u8,
        pkid: u16,
        payload: Bytes,
    },
    PubAck(u16),
    PubRel(u16),
    /// PUBREC or PUBCOMP: answers to QoS 2, which the broker never sends (nothing to do).
    QoS2Answer,
    Subscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// Something a client never sends to a broker (CONNACK, SUBACK, PINGRESP…).
    Unexpected,
}

/// Why a connection is dropped while reading.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("packet larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed packet: {0}")]
    Malformed(String),
}

/// Takes the next whole packet off `buf`; `Ok(None)` when more bytes are needed.
pub fn read(proto: Proto, buf: &mut BytesMut, max_bytes: usize) -> Result<Option<In>, WireError> {
    match proto {
        Proto::V4 => read_v4(buf, max_bytes),
        Proto::V5 => read_v5(buf, max_bytes),
    }
}

fn read_v4(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<In>, WireError> {
    let packet = match v4::Packet::read(buf, max_bytes) {
        Ok(p) => p,
        Err(m4::Error::InsufficientBytes(_)) => return Ok(None),
        Err(m4::Error::PayloadSizeLimitExceeded(n)) => return Err(WireError::TooLarge(n)),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    Ok(Some(match packet {
        v4::Packet::Connect(c) => {
            let (username, password) = c
                .login
                .map_or((None, None), |l| (Some(l.username), Some(l.password)));
            In::Connect(Connect {
                client_id: c.client_id,
                username,
                password,
                keep_alive_s: c.keep_alive,
                will: c.last_will.map(|w| (w.topic, w.message)),
            })
        }
        v4::Packet::Publish(p) => In::Publish {
            topic: p.topic,
            alias: None,
            qos: p.qos as u8,
            pkid: p.pkid,
            payload: p.payload,
        },
        v4::Packet::PubAck(a) => In::PubAck(a.pkid),
        v4::Packet::PubRec(_) | v4::Packet::PubComp(_) => In::QoS2Answer,
        v4::Packet::PubRel(a) => In::PubRel(a.pkid),
        v4::Packet::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| f.path).collect(),
        },
        v4::Packet::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => In::PingReq,
        v4::Packet::Disconnect => In::Disconnect,
        _ => In::Unexpected,
    }))
}

fn read_v5(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<In>, WireError> {
    // rumqttc's v5 reader refuses a DISCONNECT without a reason code, which MQTT 5 allows
    // (it means a normal disconnection).
    if buf.len() >= 2 && buf[0] == 0xE0 && buf[1] == 0 {
        let _ = buf.split_to(2);
        return Ok(Some(In::Disconnect));
    }
    let max = u32::try_from(max_bytes).unwrap_or(u32::MAX);
    let packet = match v5::Packet::read(buf, Some(max)) {
        Ok(p) => p,
        Err(m5::Error::InsufficientBytes(_)) => return Ok(None),
        Err(m5::Error::PayloadSizeLimitExceeded { pkt_size, .. }) => {
            return Err(WireError::TooLarge(pkt_size));
        }
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    Ok(Some(match packet {
        v5::Packet::Connect(c, will, login) => {
            let (username, password) =
                login.map_or((None, None), |l| (Some(l.username), Some(l.password)));
            In::Connect(Connect {
                client_id: c.client_id,
                username,
                password,
                keep_alive_s: c.keep_alive,
                will: will.map(|w| (String::from_utf8_lossy(&w.topic).into_owned(), w.message)),
            })
        }
        v5::Packet::Publish(p) => In::Publish {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            alias: p.properties.as_ref().and_then(|pr| pr.topic_alias),
            qos: p.qos as u8,
            pkid: p.pkid,
            payload: p.payload,
        },
        v5::Packet::PubAck(a) => In::PubAck(a.pkid),
        v5::Packet::PubRec(_) | v5::Packet::PubComp(_) => In::QoS2Answer,
        v5::Packet::PubRel(a) => In::PubRel(a.pkid),
        v5::Packet::Subscribe(s) => In::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| f.path).collect(),
        },
        v5::Packet::Unsubscribe(u) => In::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => In::PingReq,
        v5::Packet::Disconnect(_) => In::Disconnect,
        _ => In::Unexpected,
    }))
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Accepted,
    BadCredentials,
    NotAuthorized,
}

/// Writes the CONNACK for `login`.
pub fn connack(proto: Proto, login: Login, max_packet_bytes: u32, out: &mut BytesMut) {
    // Encoding into a BytesMut cannot fail for packets this small; an error is ignored and
    // the connection closes after a refusal anyway.
    match proto {
        Proto::V4 => v4::ConnAck::new(
            match login {
                Login::Accepted => v4::ConnectReturnCode::Success,
                Login::BadCredentials => v4::ConnectReturnCode::BadUserNamePassword,
                Login::NotAuthorized => v4::ConnectReturnCode::NotAuthorized,
            },
            false,
        )
        .write(out)
        .map(drop)
        .ok(),
        Proto::V5 => v5::ConnAck {
            session_present: false,
            code: match login {
                Login::Accepted => v5::ConnectReturnCode::Success,
                Login::BadCredentials => v5::ConnectReturnCode::BadUserNamePassword,
                Login::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
            },
            properties: (login == Login::Accepted).then(|| v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: None,
                max_qos: Some(1),
                retain_available: Some(0),
                max_packet_size: Some(max_packet_bytes),
                assigned_client_identifier: None,
                topic_alias_max: Some(TOPIC_ALIASES_MAX),
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(0),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }
        .write(out)
        .map(drop)
        .ok(),
    };
}

/// Writes a PUBACK.
pub fn puback(proto: Proto, pkid: u16, out: &mut BytesMut) {
    match proto {
        Proto::V4 => v4::PubAck::new(pkid).write(out).map(drop).ok(),
        Proto::V5 => v5::PubAck {
            pkid,
            reason: v5::PubAckReason::Success,
            properties: None,
        }
        .write(out)
        .map(drop)
        .ok(),
    };
}

/// Writes a PUBREC (the first answer to a QoS 2 publish).
pub fn pubrec(proto: Proto, pkid: u16, out: &mut BytesMut) {
    match proto {
        Proto::V4 => v4::PubRec::new(pkid).write(out).map(drop).ok(),
        Proto::V5 => v5::PubRec {
            pkid,
            reason: v5::PubRecReason::Success,
            properties: None,
        }
        .write(out)
        .map(drop)
        .ok(),
    };
}

/// Writes a PUBCOMP (the answer to PUBREL).
pub fn pubcomp(proto: Proto, pkid: u16, out: &mut BytesMut) {
    match proto {
        Proto::V4 => v4::PubComp::new(pkid).write(out).map(drop).ok(),
        Proto::V5 => v5::PubComp {
            pkid,
            reason: v5::PubCompReason::Success,
            properties: None,
        }
        .write(out)
        .map(drop)
        .ok(),
    };
}

/// Writes a SUBACK: `granted[i]` is whether filter i was allowed (granted at QoS 1).
pub fn suback(proto: Proto, pkid: u16, granted: &[bool], out: &mut BytesMut) {
    match proto {
        Proto::V4 => v4::SubAck::new(
            pkid,
            granted
                .iter()
                .map(|&ok| {
                    if ok {
                        v4::SubscribeReasonCode::Success(m4::QoS::AtLeastOnce)
                    } else {
                        v4::SubscribeReasonCode::Failure
                    }
                })
                .collect(),
        )
        .write(out)
        .map(drop)
        .ok(),
        Proto::V5 => v5::SubAck {
            pkid,
            return_codes: granted
                .iter()
                .map(|&ok| {
                    if ok {
                        v5::SubscribeReasonCode::Success(m5::QoS::AtLeastOnce)
                    } else {
                        v5::SubscribeReasonCode::NotAuthorized
                    }
                })
                .collect(),
            properties: None,
        }
        .write(out)
        .map(drop)
        .ok(),
    };
}

/// Writes an UNSUBACK for `n` filters.
pub fn unsuback(proto: Proto, pkid: u16, n: usize, out: &mut BytesMut) {
    match proto {
        Proto::V4 => v4::UnsubAck::new(pkid).write(out).map(drop).ok(),
        Proto::V5 => v5::UnsubAck {
            pkid,
            reasons: vec![v5::UnsubAckReason::Success; n.max(1)],
            properties: None,
        }
        .write(out)
        .map(drop)
        .ok(),
    };
}

/// Writes a PINGRESP.
pub fn pingresp(proto: Proto, out: &mut BytesMut) {
    match proto {
        Proto::V4 => v4::PingResp.write(out).map(drop).ok(),
        Proto::V5 => v5::PingResp::write(out).map(drop).ok(),
    };
}

/// Writes a QoS 1 PUBLISH (a command to the vehicle).
pub fn publish(
    proto: Proto,
    topic: &str,
    pkid: u16,
    dup: bool,
    payload: Bytes,
    out: &mut BytesMut,
) {
    match proto {
        Proto::V4 => {
            let mut p = v4::Publish::from_bytes(topic, m4::QoS::AtLeastOnce, payload);
            p.pkid = pkid;
            p.dup = dup;
            p.write(out).map(drop).ok()
        }
        Proto::V5 => {
            let mut p = v5::Publish::new(topic, m5::QoS::AtLeastOnce, payload, None);
            p.pkid = pkid;
            p.dup = dup;
            p.write(out).map(drop).ok()
        }
    };
}

/// Writes a DISCONNECT before the broker closes a v5 connection (v4 has none from the server).
pub fn disconnect(proto: Proto, not_authorized: bool, out: &mut BytesMut) {
    if proto == Proto::V5 {
        let _ = v5::Disconnect::new(if not_authorized {
            v5::DisconnectReasonCode::NotAuthorized
        } else {
            v5::DisconnectReasonCode::ServerShuttingDown
        })
        .write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_level_is_read_from_a_partial_connect() {
        let mut full = BytesMut::new();
        v4::Connect::new("abc").write(&mut full).unwrap();
        assert_eq!(hello(&full), Hello::Connect(Proto::V4));
        for cut in 0..9 {
            assert_eq!(hello(&full[..cut]), Hello::More, "cut at {cut}");
        }
        let mut five = BytesMut::new();
        v5::Connect {
            keep_alive: 10,
            client_id: "abc".into(),
            clean_start: true,
            properties: None,
        }
        .write(&None, &None, &mut five)
        .unwrap();
        assert_eq!(hello(&five), Hello::Connect(Proto::V5));
        assert_eq!(hello(&[0x30, 0x00]), Hello::NotConnect);
        // MQTT 3.1 ("MQIsdp", level 3) is not spoken.
        let old = [
            0x10, 12, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60,
        ];
        assert_eq!(hello(&old), Hello::Unsupported);
        // A remaining length that never ends is not a CONNECT.
        assert_eq!(
            hello(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Hello::NotConnect
        );
    }

    #[test]
    fn garbage_never_panics_and_partial_packets_wait_for_more() {
        let mut p = BytesMut::new();
        let mut publish = v4::Publish::new(
            "v1/vehicles/x/telemetry",
            m4::QoS::AtLeastOnce,
            vec![1, 2, 3],
        );
        publish.pkid = 1;
        publish.write(&mut p).unwrap();
        let whole = p.clone();
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert!(
                matches!(read(Proto::V4, &mut part, 1024), Ok(None)),
                "cut at {cut}"
            );
        }
        // Deterministic pseudo-random bytes through both readers.
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..20_000 {
            let n = (x % 40) as usize;
            let mut bytes = BytesMut::new();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.extend_from_slice(&[(x & 0xff) as u8]);
            }
            let mut b4 = bytes.clone();
            let _ = read(Proto::V4, &mut b4, 64);
            let _ = read(Proto::V5, &mut bytes, 64);
            let _ = hello(&b4);
        }
        let mut big = BytesMut::from(&[0x30u8, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(
            read(Proto::V4, &mut big, 1024),
            Err(WireError::TooLarge(_))
        ));
    }
}
