//! Authentication and least privilege for the HTTP API.
//!
//! Callers present `Authorization: Bearer <token>`. A token is either the bootstrap admin token
//! (from `admin_token` in the configuration, or generated into `DATA_DIR/admin-token` on first
//! start) or an API token issued by an admin with one role (admin, staff, gateway). Only
//! SHA-256 digests of tokens are stored; secrets are 256-bit random values.
//!
//! Handlers take an extractor naming the role they need ([`AdminCaller`], [`StaffCaller`],
//! [`GatewayCaller`]): a missing or unknown token is 401, a valid token of another role is 403.

use std::{
    collections::HashMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use mobility_core::Role;
use mobility_store::Store;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::{AppState, Problem};

/// How long a token lookup is cached; revocation takes effect within this in other processes.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
/// Most cached token lookups (bounds memory under a flood of random tokens).
const TOKEN_CACHE_MAX: usize = 10_000;
/// The file the bootstrap admin token is kept in when not configured.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A new random secret: 32 bytes as 64 lowercase hex characters.
///
/// # Panics
/// If the operating system has no random source, which is not a state we can run in.
#[must_use]
#[allow(clippy::expect_used)]
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("operating system random source");
    hex(&bytes)
}

/// Lowercase hex of SHA-256 of `secret`.
#[must_use]
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    // Every authenticated request hashes its token and compares the hex digest: a table, not
    // `format!` per byte (which cost 4 % of a nearby request).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Resolves bearer tokens to roles.
#[derive(Debug)]
pub struct Auth {
    bootstrap_sha256: String,
    store: Arc<dyn Store>,
    accounts: Arc<crate::accounts::Accounts>,
    cache: RwLock<HashMap<String, (Option<Role>, Instant)>>,
    oidc: Option<Arc<crate::oidc::Oidc>>,
}

/// Reading or creating a bootstrap secret file (admin token, JWT secret) failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the secret file {path}: {reason}")]
pub struct AdminTokenError {
    action: &'static str,
    path: String,
    reason: String,
}

impl AdminTokenError {
    /// Any other failure to set up a secret.
    #[must_use]
    pub fn other(reason: String) -> Self {
        Self {
            action: "set up",
            path: String::from("(in memory)"),
            reason,
        }
    }
}

/// The bootstrap admin token: the configured one, else the one in `data_dir/admin-token`, else a
/// new one written there (mode 0600). Returns the token and whether it was just created.
pub fn bootstrap_admin_token(
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<(String, bool), AdminTokenError> {
    bootstrap_secret(configured, &data_dir.join(ADMIN_TOKEN_FILE))
}

/// A secret: the configured one, else the one in `path`, else a new one written there (mode
/// 0600). Returns it and whether it was just created.
pub fn bootstrap_secret(
    configured: Option<&str>,
    path: &Path,
) -> Result<(String, bool), AdminTokenError> {
    if let Some(t) = configured.filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_owned(), false));
    }
    let path = path.to_path_buf();
    let err = |action, e: std::io::Error| AdminTokenError {
        action,
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok((t.trim().to_owned(), false)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err("read", e)),
        // Missing or empty: create one.
        _ => {
            let token = new_secret();
            write_private(&path, &token).map_err(|e| err("write", e))?;
            Ok((token, true))
        }
    }
}

/// Writes a file only its owner can read (mode 0600 on Unix), synced to disk.
#[cfg(unix)]
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{contents}\n"))
}

impl Auth {
    /// An authenticator with the given bootstrap admin token.
    #[must_use]
    pub fn new(
        admin_token: &str,
        store: Arc<dyn Store>,
        accounts: Arc<crate::accounts::Accounts>,
    ) -> Self {
        Self {
            bootstrap_sha256: sha256_hex(admin_token),
            store,
            accounts,
            cache: RwLock::new(HashMap::new()),
            oidc: None,
        }
    }

    /// Also accepts the tokens of an external OpenID Connect provider.
    #[must_use]
    pub fn with_oidc(mut self, oidc: Arc<crate::oidc::Oidc>) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// The account a JWT stands for: one of ours, or one from the OIDC provider.
    pub async fn user_of(&self, token: &str) -> Option<(String, Role)> {
        if let Some(found) = self.accounts.verify(token) {
            return Some(found);
        }
        match &self.oidc {
            Some(oidc) => oidc.verify(self.store.as_ref(), token).await,
            None => None,
        }
    }

    /// Account services.
    #[must_use]
    pub fn accounts(&self) -> &Arc<crate::accounts::Accounts> {
        &self.accounts
    }

    /// The role a bearer token grants, if any: an account's access token (a JWT) or an API token.
    pub async fn role_of(&self, token: &str) -> Option<Role> {
        if token.bytes().filter(|b| *b == b'.').count() == 2 {
            return self.user_of(token).await.map(|(_, role)| role);
        }
        let digest = sha256_hex(token);
        if digest
            .as_bytes()
            .ct_eq(self.bootstrap_sha256.as_bytes())
            .into()
        {
            return Some(Role::Admin);
        }
        if let Some((role, at)) = self.cache.read().get(&digest)
            && at.elapsed() < TOKEN_CACHE_TTL
        {
            return *role;
        }
        let role = match self.store.api_token_by_secret(&digest).await {
            Ok(Some(t)) if t.revoked_at.is_none() => Some(t.role),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "token lookup failed; treating the token as invalid");
                return None;
            }
        };
        let mut cache = self.cache.write();
        if cache.len() >= TOKEN_CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest, (role, Instant::now()));
        role
    }

    /// Forgets cached lookups (after a revocation in this process).
    pub fn forget_cached(&self) {
        self.cache.write().clear();
    }
}

/// The token of an `Authorization: Bearer <token>` header (trimmed, non-empty, at most 4 KiB).
#[must_use]
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4_096)
}

fn unauthorized(detail: &str) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "unauthorized").increment(1);
    let mut r = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        .with_detail(detail)
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

fn forbidden(role: Role, needed: Role) -> Response {
    metrics::counter!("http_rejections_total", "reason" => "forbidden").increment(1);
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
        .with_detail(format!(
            "a {role} token cannot do this; it needs the {needed} role"
        ))
        .into_response()
}

async fn authorize(parts: &Parts, state: &AppState, needed: Role) -> Result<Role, Response> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 2_048)
        .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <token>"))?;
    let role = state
        .auth
        .role_of(token)
        .await
        .ok_or_else(|| unauthorized("the token is unknown or revoked"))?;
    if role.includes(needed) {
        Ok(role)
    } else {
        Err(forbidden(role, needed))
    }
}

macro_rules! caller {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub Role);

        impl FromRequestParts<AppState> for $name {
            type Rejection = Response;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                authorize(parts, state, $role).await.map(Self)
            }
        }
    };
}

caller!(
    /// A caller with the admin role.
    AdminCaller, Role::Admin
);
caller!(
    /// A caller with the staff role (or admin).
    StaffCaller, Role::Staff
);
caller!(
    /// A caller with the gateway role (or admin).
    GatewayCaller, Role::Gateway
);
caller!(
    /// A caller with the rider role (or staff, or admin).
    RiderCaller, Role::Rider
);

/// A signed-in account (an access token, not an API token): who it is and its role.
#[derive(Debug, Clone)]
pub struct UserCaller {
    /// The user id.
    pub user_id: String,
    /// The account's role.
    pub role: Role,
}

impl FromRequestParts<AppState> for UserCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <access token>"))?;
        let (user_id, role) = state.auth.user_of(token).await.ok_or_else(|| {
            unauthorized("sign in: this needs an account's access token, valid and unexpired")
        })?;
        Ok(Self { user_id, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_the_standard_digest() {
        // FIPS 180-2 test vectors.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }

    #[test]
    fn secrets_are_random_hex_and_hash_stably() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn bootstrap_token_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, created) = bootstrap_admin_token(None, dir.path()).unwrap();
        assert!(created);
        let (t2, created) = bootstrap_admin_token(None, dir.path()).unwrap();
        assert!(!created);
        assert_eq!(t1, t2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (t3, _) = bootstrap_admin_token(Some("configured"), dir.path()).unwrap();
        assert_eq!(t3, "configured");
    }
}
