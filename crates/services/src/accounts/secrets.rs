//! Secrets kept on disk: the bootstrap admin token, the JWT key, the operators' generated
//! passwords. Only SHA-256 digests of tokens are stored in the database; secrets are 256-bit
//! random values.

use std::path::Path;

pub use mobility_core::digest::sha256_hex;

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
    mobility_core::digest::hex(&bytes)
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
