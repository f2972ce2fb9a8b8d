//! The store conformance suite on both backends. PostgreSQL runs when
//! `MOBILITY_TEST_POSTGRES_URL` is set and says SKIPPED otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod sqlite {
    mobility_store::conformance_tests!(mobility_store::testsuite::sqlite);

    /// Committed data survives closing and reopening the file (a restart).
    #[tokio::test]
    async fn data_survives_reopen() {
        use mobility_core::{City, CityId, Currency, TimestampMs};
        let dir = tempfile::tempdir().unwrap();
        let url = mobility_store::default_sqlite_url(dir.path());
        let opts = mobility_store::OpenOptions::default();
        let city = City::new(
            CityId::parse("oslo").unwrap(),
            "Oslo",
            "Europe/Oslo",
            Currency::parse("NOK").unwrap(),
            None,
        )
        .unwrap();
        {
            let store = mobility_store::open(&url, &opts).await.unwrap();
            store.migrate().await.unwrap();
            store.put_city(&city, TimestampMs(1)).await.unwrap();
            store.close().await;
        }
        let store = mobility_store::open(&url, &opts).await.unwrap();
        assert_eq!(store.readiness().await.unwrap().pending_migrations, 0);
        assert_eq!(store.city(&city.id).await.unwrap(), Some(city));
        store.close().await;
    }

    /// A fresh database reports its migrations as pending until migrated.
    #[tokio::test]
    async fn fresh_database_is_not_ready_until_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = mobility_store::default_sqlite_url(&dir.path().join("nested/dir"));
        let store = mobility_store::open(&url, &mobility_store::OpenOptions::default())
            .await
            .unwrap();
        let r = store.readiness().await.unwrap();
        assert_eq!((r.pending_migrations, r.schema_version), (16, None));
        assert_eq!(store.migrate().await.unwrap(), 16);
        assert_eq!(store.readiness().await.unwrap().pending_migrations, 0);
        store.close().await;
    }

    #[tokio::test]
    async fn unsupported_and_unreachable_urls_are_clear_errors() {
        let opts = mobility_store::OpenOptions {
            connect_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        };
        let err = mobility_store::open("mysql://root:pw@localhost/x", &opts)
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("unsupported database URL"),
            "{err}"
        );
        assert!(!err.to_string().contains("pw"), "password leaked: {err}");
        let err = mobility_store::open("postgres://u:topsecret@127.0.0.1:1/x", &opts)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot connect to postgres database postgres://u:***@127.0.0.1:1/x"),
            "{msg}"
        );
        assert!(!msg.contains("topsecret"));
    }
}

mod postgres {
    mobility_store::conformance_tests!(mobility_store::testsuite::postgres);
}
