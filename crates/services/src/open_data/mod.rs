//! What the open-data feeds (GBFS for trip planners, MDS for cities) need beyond the store and
//! the live fleet: the operator's identity, the base URL links are built on, the key public
//! vehicle ids are derived from, and the agency tokens of the MDS Provider API.
//!
//! **Rider privacy (GBFS):** a public `vehicle_id` is `HMAC(key, device id ‖ version)`, where the
//! version is bumped by every state change the store records. So a vehicle keeps one public id
//! while it stands still and gets a new, unlinkable one after each rental (reservation, trip,
//! end: three changes). The key is derived from the JWT secret, so processes that share it agree.

use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mobility_core::{CityId, TimestampMs, VehicleId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

/// File under the data directory holding the generated MDS provider id.
pub const PROVIDER_ID_FILE: &str = "provider-id";
/// The audience of agency tokens: an account token is never an agency token and back.
const MDS_AUDIENCE: &str = "mds";
const ISSUER: &str = "mobility";

/// Claims of an MDS agency token (a JWT, HS256, signed with the platform's JWT secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgencyClaims {
    /// Issuer, `mobility`.
    pub iss: String,
    /// The agency's name.
    pub sub: String,
    /// Always `mds`.
    pub aud: String,
    /// Token id (revocation).
    pub jti: String,
    /// The provider whose data it reads (MDS requires the claim).
    pub provider_id: String,
    /// The one city it reads.
    pub city: String,
    /// Issued at, seconds.
    pub iat: i64,
    /// Expires at, seconds.
    pub exp: i64,
}

/// What the feeds are configured with.
#[derive(Debug, Clone, Default)]
pub struct FeedSettings {
    /// The operator's public name.
    pub operator_name: String,
    /// GBFS `feed_contact_email`.
    pub feed_contact_email: String,
    /// Base URL of links in the feeds (else `http://{Host}`).
    pub public_url: Option<String>,
    /// Where the live log and its history are kept.
    pub data_dir: PathBuf,
    /// Days of telemetry history kept (0: none).
    pub history_retention_days: u32,
}

/// Identity, links and keys of the open-data feeds.
pub struct OpenData {
    /// This operator's MDS provider id.
    pub provider_id: Uuid,
    /// The operator's public name.
    pub operator_name: String,
    /// GBFS `feed_contact_email`.
    pub feed_contact_email: String,
    /// Configured base URL, without a trailing slash.
    public_url: Option<String>,
    /// When this process started: `last_updated` of feeds drawn from configuration.
    pub started_at: TimestampMs,
    id_key: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    live_dir: PathBuf,
    history_dir: Option<PathBuf>,
}

impl std::fmt::Debug for OpenData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenData")
            .field("provider_id", &self.provider_id)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Reads the provider id: the configured one, else the one in `DATA_DIR/provider-id`, else a
/// new random one written there.
pub fn bootstrap_provider_id(
    configured: Option<Uuid>,
    data_dir: &Path,
) -> Result<Uuid, crate::accounts::secrets::AdminTokenError> {
    if let Some(id) = configured {
        return Ok(id);
    }
    let path = data_dir.join(PROVIDER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(raw) if !raw.trim().is_empty() => Uuid::parse_str(raw.trim()).map_err(|e| {
            crate::accounts::secrets::AdminTokenError::other(format!(
                "{} does not hold a UUID: {e}",
                path.display()
            ))
        }),
        _ => {
            let mut bytes = [0_u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| {
                crate::accounts::secrets::AdminTokenError::other(format!(
                    "no randomness for a provider id: {e}"
                ))
            })?;
            let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
            crate::accounts::secrets::write_private(&path, &id.to_string()).map_err(|e| {
                crate::accounts::secrets::AdminTokenError::other(format!(
                    "cannot write {}: {e}",
                    path.display()
                ))
            })?;
            Ok(id)
        }
    }
}

impl OpenData {
    /// The feeds' identity and keys. `jwt_secret` signs agency tokens and keys public ids.
    #[must_use]
    pub fn new(
        settings: &FeedSettings,
        provider_id: Uuid,
        jwt_secret: &str,
        now: TimestampMs,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[MDS_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.leeway = 5;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(jwt_secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"gbfs-public-vehicle-id");
        Self {
            provider_id,
            operator_name: settings.operator_name.trim().to_owned(),
            feed_contact_email: settings.feed_contact_email.trim().to_owned(),
            public_url: settings
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            started_at: now,
            id_key: mac.finalize().into_bytes().to_vec(),
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            validation,
            live_dir: settings.data_dir.join("live"),
            history_dir: (settings.history_retention_days > 0)
                .then(|| settings.data_dir.join("history")),
        }
    }

    /// The base URL links start with: the configured one, else `http://{Host}`.
    #[must_use]
    pub fn base_url(&self, host: Option<&str>) -> String {
        if let Some(u) = &self.public_url {
            return u.clone();
        }
        let host = host
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// The public (GBFS) id of a vehicle at a given stored version.
    #[must_use]
    pub fn public_vehicle_id(&self, id: &VehicleId, version: u64) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.id_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.to_string().as_bytes());
        mac.update(&version.to_le_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Signs an agency token.
    pub fn issue_agency_token(
        &self,
        id: &str,
        agency: &str,
        city: &CityId,
        now: TimestampMs,
        expires_at: TimestampMs,
    ) -> Result<String, String> {
        let claims = AgencyClaims {
            iss: ISSUER.to_owned(),
            sub: agency.to_owned(),
            aud: MDS_AUDIENCE.to_owned(),
            jti: id.to_owned(),
            provider_id: self.provider_id.to_string(),
            city: city.as_str().to_owned(),
            iat: now.0 / 1_000,
            exp: expires_at.0 / 1_000,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// The claims of a valid, unexpired agency token for this provider (revocation is checked by
    /// the caller against the store).
    #[must_use]
    pub fn verify_agency_token(&self, token: &str) -> Option<AgencyClaims> {
        let data =
            jsonwebtoken::decode::<AgencyClaims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.provider_id == self.provider_id.to_string()).then_some(data.claims)
    }

    /// Where raw telemetry lives: the live log and the archived history (if kept).
    #[must_use]
    pub fn telemetry_dirs(&self) -> (&Path, Option<&Path>) {
        (&self.live_dir, self.history_dir.as_deref())
    }
}

/// A UUID derived from a name (deterministic; for ids MDS requires that we do not store, such
/// as telemetry ids).
#[must_use]
pub fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_data(secret: &str) -> OpenData {
        OpenData::new(
            &FeedSettings::default(),
            Uuid::from_u128(7),
            secret,
            TimestampMs(0),
        )
    }

    #[test]
    fn public_ids_rotate_with_the_version_and_hide_the_device() {
        let d = open_data("secret");
        let v = VehicleId::from_uuid(Uuid::from_u128(42));
        let a = d.public_vehicle_id(&v, 3);
        assert_eq!(
            a,
            d.public_vehicle_id(&v, 3),
            "stable while nothing changes"
        );
        assert_ne!(a, d.public_vehicle_id(&v, 4), "new after a change");
        assert!(!a.contains(&v.to_string()[..8]));
        assert_ne!(a, open_data("other").public_vehicle_id(&v, 3), "keyed");
    }

    #[test]
    fn agency_tokens_verify_only_for_this_provider_and_audience() {
        let d = open_data("secret");
        let city = CityId::parse("barcelona").unwrap();
        let now = TimestampMs(1_800_000_000_000);
        let t = d
            .issue_agency_token("t1", "Ajuntament", &city, now, now.plus_ms(86_400_000))
            .unwrap();
        let c = d.verify_agency_token(&t).unwrap();
        assert_eq!((c.jti.as_str(), c.city.as_str()), ("t1", "barcelona"));
        assert!(
            open_data("other").verify_agency_token(&t).is_none(),
            "signature"
        );
        let mut elsewhere = open_data("secret");
        elsewhere.provider_id = Uuid::from_u128(8);
        assert!(elsewhere.verify_agency_token(&t).is_none(), "provider");
        let expired = d
            .issue_agency_token("t2", "A", &city, TimestampMs(1_000), TimestampMs(2_000))
            .unwrap();
        assert!(d.verify_agency_token(&expired).is_none());
    }
}
