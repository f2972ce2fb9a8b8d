//! Accounts: argon2id password hashes, short-lived HS256 access tokens (JWT) and rotating
//! refresh tokens (opaque, stored as SHA-256 digests, one family per login, reuse revokes the
//! family). Riders sign themselves up; admins create staff and admin accounts.
//!
//! Beside them: [`auth`] (who a bearer token stands for), [`oidc`] (an external OpenID Connect
//! provider's tokens) and [`secrets`] (secrets kept on disk).

use std::sync::Arc;

use argon2::{
    Argon2, PasswordHasher, PasswordVerifier,
    password_hash::{PasswordHash, SaltString, rand_core::OsRng},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mobility_core::{Role, TimestampMs};
use mobility_store::{RefreshToken, Rotation, Store, StoreError, UserRecord};
use serde::{Deserialize, Serialize};

pub mod auth;
pub mod oidc;
pub mod secrets;

pub use auth::Auth;
pub use secrets::{new_secret, sha256_hex};

/// Lifetime of an access token, seconds.
pub const ACCESS_TTL_S: i64 = 15 * 60;
/// Lifetime of a refresh token, milliseconds (30 days).
pub const REFRESH_TTL_MS: i64 = 30 * 86_400_000;
/// File under the data directory holding the generated signing secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";
const ISSUER: &str = "mobility";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iss: String,
    iat: i64,
    exp: i64,
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The JWT to send as `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; exchange it at `/v1/auth/refresh` for a new session (once).
    pub refresh_token: String,
}

/// Why a session could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired or revoked.
    #[error("the refresh token is unknown, expired or revoked; sign in again")]
    Invalid,
    /// Used before: the family was revoked.
    #[error("the refresh token was already used; every session of that login is now revoked")]
    Reused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Account services.
pub struct Accounts {
    store: Arc<dyn Store>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// A hash to verify against when the e-mail is unknown, so both failures take as long.
    dummy_hash: String,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

/// Hashes a password with argon2id (on a blocking thread: it takes tens of milliseconds).
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Checks a password against an argon2 PHC string.
pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Normalises and checks an e-mail address (lower case, one `@`, at most 254 characters).
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split('@').count() == 2
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err("email must be an address like name@example.com".into())
    }
}

/// Checks a new password: 10 to 128 characters.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if (10..=128).contains(&n) {
        Ok(())
    } else {
        Err("password must be 10 to 128 characters".into())
    }
}

impl Accounts {
    /// Account services signing with `secret`.
    pub async fn new(secret: &str, store: Arc<dyn Store>) -> Result<Self, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            store,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            dummy_hash: hash_password(new_secret()).await?,
        })
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn access_token(&self, user: &UserRecord, now: TimestampMs) -> Result<String, String> {
        let iat = now.0 / 1_000;
        let claims = Claims {
            sub: user.id.clone(),
            role: user.role.as_str().to_owned(),
            iss: ISSUER.to_owned(),
            iat,
            exp: iat + ACCESS_TTL_S,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// The user id and role an access token proves, if it is valid and unexpired.
    #[must_use]
    pub fn verify(&self, token: &str) -> Option<(String, Role)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let role = Role::parse(&data.claims.role).ok()?;
        Some((data.claims.sub, role))
    }

    /// Starts a session (a new refresh-token family) for a user.
    pub async fn start_session(
        &self,
        user: &UserRecord,
        now: TimestampMs,
    ) -> Result<Session, StoreError> {
        let refresh = new_secret();
        self.store
            .insert_refresh_token(&RefreshToken {
                token_sha256: sha256_hex(&refresh),
                user_id: user.id.clone(),
                family_id: uuid::Uuid::now_v7().to_string(),
                created_at: now,
                expires_at: now.plus_ms(REFRESH_TTL_MS),
            })
            .await?;
        self.session(user, refresh, now)
    }

    fn session(
        &self,
        user: &UserRecord,
        refresh: String,
        now: TimestampMs,
    ) -> Result<Session, StoreError> {
        let access_token = self
            .access_token(user, now)
            .map_err(|e| StoreError::Corrupt(format!("cannot sign an access token: {e}")))?;
        Ok(Session {
            access_token,
            token_type: "Bearer",
            expires_in: ACCESS_TTL_S,
            refresh_token: refresh,
        })
    }

    /// The user with this e-mail and password, or `None` (same time either way).
    pub async fn authenticate(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let user = self.store.user_by_email(email).await?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = verify_password(hash, password.to_owned()).await;
        Ok(user.filter(|_| ok))
    }

    /// Exchanges a refresh token for a new session (the token is used up).
    pub async fn refresh(&self, token: &str, now: TimestampMs) -> Result<Session, RefreshError> {
        let next = new_secret();
        match self
            .store
            .rotate_refresh_token(
                &sha256_hex(token),
                &sha256_hex(&next),
                now.plus_ms(REFRESH_TTL_MS),
                now,
            )
            .await?
        {
            Rotation::Rotated { user_id } => {
                let user = self
                    .store
                    .user(&user_id)
                    .await?
                    .ok_or(RefreshError::Invalid)?;
                Ok(self.session(&user, next, now)?)
            }
            Rotation::ReuseDetected => {
                tracing::warn!("a refresh token was used twice; its login was revoked");
                Err(RefreshError::Reused)
            }
            Rotation::Invalid => Err(RefreshError::Invalid),
        }
    }

    /// Ends the login a refresh token belongs to.
    pub async fn logout(&self, token: &str, now: TimestampMs) -> Result<bool, StoreError> {
        self.store
            .revoke_refresh_family(&sha256_hex(token), now)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_passwords_are_checked() {
        assert_eq!(parse_email(" Ana@Example.COM ").unwrap(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(h.clone(), "correct horse".into()).await);
        assert!(!verify_password(h, "wrong horse".into()).await);
        assert!(!verify_password("not a hash".into(), "x".into()).await);
    }
}
