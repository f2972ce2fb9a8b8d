//! Who a bearer token stands for: the bootstrap admin token, an API token issued by an admin
//! with one role (admin, staff, gateway), an account's access token (a JWT of ours) or one of
//! the configured OpenID Connect provider. The API's extractors ask this; it knows no HTTP.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use mobility_core::{Role, digest::sha256_hex};
use mobility_store::Store;
use parking_lot::RwLock;
use subtle::ConstantTimeEq;

use super::{Accounts, oidc::Oidc};

/// How long a token lookup is cached; revocation takes effect within this in other processes.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
/// Most cached token lookups (bounds memory under a flood of random tokens).
const TOKEN_CACHE_MAX: usize = 10_000;

/// Resolves bearer tokens to roles.
#[derive(Debug)]
pub struct Auth {
    bootstrap_sha256: String,
    store: Arc<dyn Store>,
    accounts: Arc<Accounts>,
    cache: RwLock<HashMap<String, (Option<Role>, Instant)>>,
    oidc: Option<Arc<Oidc>>,
}

impl Auth {
    /// An authenticator with the given bootstrap admin token.
    #[must_use]
    pub fn new(admin_token: &str, store: Arc<dyn Store>, accounts: Arc<Accounts>) -> Self {
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
    pub fn with_oidc(mut self, oidc: Arc<Oidc>) -> Self {
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
    pub fn accounts(&self) -> &Arc<Accounts> {
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
