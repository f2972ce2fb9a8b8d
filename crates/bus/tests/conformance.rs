//! The bus conformance suite on both backends (NATS when `MOBILITY_TEST_NATS_URL` is set).

mobility_bus::conformance_tests!(embedded);
mobility_bus::conformance_tests!(nats);
