//! The dashboard in a real browser: `ui-tests/dashboard.mjs` (playwright-core driving Debian's
//! chromium, headless) against the real binary running `mobility demo`. It signs in, sees
//! vehicles move, opens one and rings it, draws a zone and sees it in the API and GBFS, approves
//! a KYC request, and checks that staff see no admin controls and riders are turned away.
//!
//! Needs node, /usr/bin/chromium and `npm ci` in `ui-tests/` (`.ci/run` provides all three);
//! without them it says so and is skipped. Screenshots go to `$SCREENSHOTS` when set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{path::PathBuf, process::Command};

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn dashboard_works_in_a_browser() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tests = root.join("ui-tests");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!node).then_some("node"),
        (!std::path::Path::new(CHROMIUM).exists()).then_some(CHROMIUM),
        (!tests.join("node_modules/playwright-core").exists())
            .then_some("ui-tests/node_modules (run `npm ci` in ui-tests)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED dashboard_works_in_a_browser: missing {} (.ci/run installs them)",
            missing.join(", ")
        );
        return;
    }
    let out = Command::new("node")
        .current_dir(&tests)
        .arg("dashboard.mjs")
        .arg(env!("CARGO_BIN_EXE_mobility"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The checks it passed (and the screenshots it wrote) belong in the log either way.
    for line in stdout.lines().filter(|l| !l.contains(" INFO ")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "the browser test failed:\n{}",
        stderr
            .lines()
            .filter(|l| !l.contains(" INFO ") && !l.contains(" WARN "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
