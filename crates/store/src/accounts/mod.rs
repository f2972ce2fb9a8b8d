//! Accounts, refresh-token families and API tokens.

#[allow(clippy::wildcard_imports)]
use crate::*;

/// Accounts, refresh-token families and API tokens.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates a user. Fails with `AlreadyExists` when the e-mail is taken.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;

    /// A user by e-mail (lower-case).
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError>;

    /// A user by id.
    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Stores a refresh token (the first of a family at login).
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;

    /// Presents the refresh token with digest `presented` at `now`. If it is valid and unused, it
    /// is marked used and its successor (digest `next_sha256`, same user and family, expiring at
    /// `next_expires_at`) is stored, in one transaction. A token presented twice revokes its
    /// family (a stolen token is useless to both holders).
    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_sha256: &str,
        next_expires_at: TimestampMs,
        now: TimestampMs,
    ) -> Result<Rotation, StoreError>;

    /// Revokes the family of the refresh token with this digest (logout). Returns whether the
    /// token was known.
    async fn revoke_refresh_family(
        &self,
        token_sha256: &str,
        now: TimestampMs,
    ) -> Result<bool, StoreError>;

    /// Stores a newly issued API token.
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError>;

    /// The token whose secret hashes to `secret_sha256`, revoked or not.
    async fn api_token_by_secret(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<ApiToken>, StoreError>;

    /// All tokens, newest first.
    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Revokes a token; returns false if there is no such token.
    async fn revoke_api_token(&self, id: &str, at: TimestampMs) -> Result<bool, StoreError>;

    /// Accounts in id order (ids are time-ordered), after `after`.
    async fn users(&self, after: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, StoreError>;

    /// Changes an account's role; false if there is no such account.
    async fn set_user_role(&self, id: &str, role: Role) -> Result<bool, StoreError>;
}
