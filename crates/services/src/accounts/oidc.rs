//! Accounts from an external OpenID Connect provider: its access or ID tokens (RS/ES/PS-signed
//! JWTs) are accepted wherever an account's token is, verified against the provider's JWKS
//! (fetched at start, again when an unknown key id appears, at most every 30 s). The first
//! token of a person creates their account (matched by e-mail afterwards); the role comes from
//! a claim (`roles` by default: `admin`, `staff`, else rider) and follows the provider.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use mobility_core::Role;
use mobility_store::{Store, UserRecord};
use parking_lot::RwLock;
use serde_json::Value;

/// Least time between two fetches of the key set.
const REFRESH_MIN: Duration = Duration::from_secs(30);

/// An external identity provider.
pub struct Oidc {
    issuer: String,
    audience: Option<String>,
    jwks_url: String,
    role_claim: String,
    http: reqwest::Client,
    keys: RwLock<(JwkSet, Option<Instant>)>,
    clock: Arc<dyn mobility_core::Clock>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// A provider issuing tokens as `issuer`, its keys at `jwks_url`.
    #[must_use]
    pub fn new(
        issuer: &str,
        jwks_url: &str,
        audience: Option<&str>,
        role_claim: &str,
        clock: Arc<dyn mobility_core::Clock>,
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.map(str::to_owned),
            jwks_url: jwks_url.to_owned(),
            role_claim: role_claim.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new((JwkSet { keys: Vec::new() }, None)),
            clock,
        }
    }

    async fn refresh(&self) {
        if self
            .keys
            .read()
            .1
            .is_some_and(|at| at.elapsed() < REFRESH_MIN)
        {
            return;
        }
        self.keys.write().1 = Some(Instant::now());
        match self.http.get(&self.jwks_url).send().await {
            Ok(r) if r.status().is_success() => match r.json::<JwkSet>().await {
                Ok(set) => self.keys.write().0 = set,
                Err(e) => tracing::warn!(error = %e, "the OIDC key set does not parse"),
            },
            Ok(r) => tracing::warn!(status = %r.status(), "the OIDC key set could not be fetched"),
            Err(e) => tracing::warn!(error = %e, "the OIDC key set could not be fetched"),
        }
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read();
        keys.0
            .find(kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
    }

    /// The account a valid token of this provider stands for (created on first sight), and its
    /// role; `None` for anything else.
    pub async fn verify(&self, store: &dyn Store, token: &str) -> Option<(String, Role)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        // Only asymmetric signatures: an HS* token would be checked against public key bytes.
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
        ) {
            return None;
        }
        let kid = header.kid?;
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refresh().await;
                self.key(&kid)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        match &self.audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .ok()?
            .claims;
        let sub = claims.get("sub")?.as_str()?;
        let role = role_of(claims.get(&self.role_claim));
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .and_then(|e| crate::accounts::parse_email(e).ok())
            .unwrap_or_else(|| {
                let host = url::Url::parse(&self.issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "oidc.invalid".into());
                format!(
                    "{}@{host}",
                    sub.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect::<String>()
                )
            });
        match store.user_by_email(&email).await.ok()? {
            Some(u) => {
                if u.role != role {
                    store.set_user_role(&u.id, role).await.ok()?;
                }
                Some((u.id, role))
            }
            None => {
                let user = UserRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    email,
                    // Not an argon2 hash: no password ever matches it.
                    password_hash: "!oidc".into(),
                    role,
                    created_at: self.clock.now(),
                };
                match store.insert_user(&user).await {
                    Ok(()) => Some((user.id, role)),
                    // Created by a concurrent request: use it.
                    Err(_) => store
                        .user_by_email(&user.email)
                        .await
                        .ok()
                        .flatten()
                        .map(|u| (u.id, role)),
                }
            }
        }
    }

    /// Fetches the key set now (at start; later fetches happen on unknown key ids).
    pub async fn prefetch(&self) {
        self.refresh().await;
    }
}

/// The role a claim grants: `admin`, else `staff`, else rider (a string or a list of strings).
fn role_of(claim: Option<&Value>) -> Role {
    let names: Vec<&str> = match claim {
        Some(Value::String(s)) => s.split([' ', ',']).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if names.contains(&"admin") {
        Role::Admin
    } else if names.contains(&"staff") {
        Role::Staff
    } else {
        Role::Rider
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_a_string_or_a_list() {
        assert_eq!(
            role_of(Some(&serde_json::json!(["staff", "x"]))),
            Role::Staff
        );
        assert_eq!(
            role_of(Some(&serde_json::json!("admin staff"))),
            Role::Admin
        );
        assert_eq!(role_of(Some(&serde_json::json!(7))), Role::Rider);
        assert_eq!(role_of(None), Role::Rider);
    }
}
