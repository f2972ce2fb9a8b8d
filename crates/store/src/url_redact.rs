//! Keeping secrets out of logs: database and broker URLs lose their passwords before printing.

/// Replaces the password in `scheme://user:password@host/...` with `***`. Query parameters named
/// like secrets (`password`, `sslpassword`, `token`, `secret`) are redacted too. Anything that does
/// not parse is returned unchanged if it has no `@`, and as `<redacted>` otherwise.
#[must_use]
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return if raw.contains('@') {
            "<redacted>".to_owned()
        } else {
            raw.to_owned()
        };
    };
    if url.password().is_some() {
        // Setting a password only fails for URLs that cannot have one, which this one has.
        let _ = url.set_password(Some("***"));
    }
    let secret_keys = ["password", "sslpassword", "token", "secret", "pass"];
    if url
        .query_pairs()
        .any(|(k, _)| secret_keys.contains(&k.as_ref()))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_keys.contains(&k.as_ref()) {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example:5432/mobility"),
            "postgres://app:***@db.example:5432/mobility"
        );
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=s3cret&sslmode=require"),
            "postgres://db/x?user=a&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite://./data/mobility.db"),
            "sqlite://./data/mobility.db"
        );
        assert_eq!(redact_url("not a url with user:pw@host"), "<redacted>");
        assert!(!redact_url("mqtt://dev:pw@broker:1883").contains("pw"));
    }
}
