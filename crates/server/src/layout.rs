//! The workspace's layering, checked: which crate may depend on which, and who may read the wall
//! clock (ARCHITECTURE.md, "Invariants"). A new dependency that breaks a rule fails here, with
//! the rule it breaks.

use std::{collections::BTreeSet, path::PathBuf};

fn crates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// The normal (not dev) dependencies of `crates/<dir>`.
fn deps(dir: &str) -> BTreeSet<String> {
    let path = crates_dir().join(dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

const CRATES: [&str; 12] = [
    "core", "store", "bus", "fleet", "mqtt", "sim", "intel", "live", "services", "api", "server",
    "mobility",
];

fn who_depends_on(dep: &str) -> BTreeSet<&'static str> {
    CRATES
        .iter()
        .copied()
        .filter(|c| deps(c).contains(dep))
        .collect()
}

#[test]
fn each_engine_is_known_to_its_seam_alone() {
    assert_eq!(
        who_depends_on("sqlx"),
        BTreeSet::from(["store"]),
        "only the store knows SQL"
    );
    assert_eq!(
        who_depends_on("async-nats"),
        BTreeSet::from(["bus"]),
        "only the bus knows NATS"
    );
    assert_eq!(
        who_depends_on("axum"),
        BTreeSet::from(["api"]),
        "only the API serves HTTP"
    );
}

#[test]
fn the_pure_crates_do_no_io() {
    for pure in ["core", "fleet", "sim", "intel"] {
        for io in ["tokio", "sqlx", "async-nats", "axum", "reqwest", "rumqttc"] {
            assert!(
                !deps(pure).contains(io),
                "{pure} is pure but depends on {io}"
            );
        }
    }
}

#[test]
fn dependencies_point_down() {
    // Each layer, and what it must never import (the layers above it).
    let rules: [(&str, &[&str]); 6] = [
        (
            "live",
            &["mobility-services", "mobility-api", "mobility-server"],
        ),
        ("services", &["mobility-api", "mobility-server"]),
        ("api", &["mobility-server"]),
        (
            "store",
            &["mobility-bus", "mobility-live", "mobility-services"],
        ),
        (
            "bus",
            &["mobility-store", "mobility-live", "mobility-services"],
        ),
        // The server wires; the demo and load drivers live in the binary crate.
        ("server", &["mobility-sim", "rumqttc", "reqwest"]),
    ];
    for (krate, forbidden) in rules {
        let d = deps(krate);
        for f in forbidden {
            assert!(!d.contains(*f), "{krate} must not depend on {f}");
        }
    }
}

#[test]
fn only_the_server_reads_the_wall_clock() {
    for krate in ["services", "api", "live"] {
        let dir = crates_dir().join(krate).join("src");
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    // Tests may make files and stamp them; product code asks its Clock.
                    let product = text.split("#[cfg(test)]").next().unwrap_or("");
                    for needle in ["SystemTime::now", "Utc::now", "OffsetDateTime::now"] {
                        assert!(
                            !product.contains(needle),
                            "{} reads the wall clock ({needle}); take a mobility_core::Clock",
                            p.display()
                        );
                    }
                }
            }
        }
    }
}

/// Every metric the alert rules and the Grafana dashboard name is one the code exports (a
/// renamed metric would otherwise leave an alert that never fires).
#[test]
fn the_deploy_files_name_only_metrics_the_binary_exports() {
    let root = crates_dir()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut source = String::new();
    let mut stack = vec![crates_dir()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() && !p.ends_with("tests") && !p.ends_with("target") {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                source.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let files = [
        root.join("deploy/prometheus/alerts.yml"),
        root.join("deploy/grafana/mobility.json"),
    ];
    let mut checked = 0;
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Metric names: snake_case words that a selector, a range or a grouping follows.
        let bytes = text.as_bytes();
        let mut names = BTreeSet::new();
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit() || bytes[i] == b'_')
            {
                i += 1;
            }
            let word = &text[start..i];
            let next = bytes.get(i).copied();
            let before = start.checked_sub(1).and_then(|j| bytes.get(j)).copied();
            let is_metric = word.contains('_')
                && matches!(next, Some(b'{' | b'[' | b')' | b' ' | b'\n'))
                && !matches!(before, Some(b'$' | b'.' | b'{' | b'"' | b'_'))
                && !["histogram_quantile", "by", "le"].contains(&word)
                && (word.ends_with("_total")
                    || word.ends_with("_bucket")
                    || word.ends_with("_ready")
                    || word.ends_with("_lag")
                    || word.ends_with("_connections")
                    || word.ends_with("_connected")
                    || word.ends_with("_max")
                    || word.ends_with("_seconds"));
            if is_metric {
                names.insert(word.to_owned());
            }
            i += 1;
        }
        for name in names {
            let base = name.strip_suffix("_bucket").unwrap_or(&name);
            assert!(
                source.contains(&format!("\"{base}\"")),
                "{} names {name}, which no crate exports",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} metric names found in the deploy files"
    );
}

/// Every `MOBILITY_*` variable the deploy files set is a setting (one README documents, which
/// `config::tests::defaults_match_the_readme` holds to `Settings`): a misspelt one would be
/// ignored by a process that then runs on its defaults.
#[test]
fn the_deploy_files_set_only_real_settings() {
    let root = crates_dir()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let mut checked = 0;
    let mut stack = vec![root.join("deploy")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for (i, _) in text.match_indices("MOBILITY_") {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                assert!(
                    readme.contains(&format!("| `{name}` |")),
                    "{} sets {name}, which is not a setting",
                    p.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} settings found in deploy/");
}
