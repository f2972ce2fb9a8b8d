//! The simulator's promises: determinism, a baseline like the seeds' problem statement, and a
//! platform view that converges to the truth under duplicated, reordered and delayed messages.
#![allow(clippy::unwrap_used)]

use mobility_core::TimestampMs;
use mobility_sim::{
    CityModel, Faults, LocalPlatform, Platform, Sim, SimConfig, days_from_civil, run_in_process,
};

fn monday() -> TimestampMs {
    // 2026-06-01 00:00 in Barcelona (UTC+1 in the model).
    TimestampMs(days_from_civil(2026, 6, 1) * 86_400_000 - 3_600_000)
}

fn small(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(seed, monday());
    cfg.vehicles = 800;
    cfg
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let run = |seed| {
        let mut cfg = small(seed);
        cfg.faults = Faults::realistic();
        let (report, truth) = run_in_process(cfg, CityModel::barcelona(), 6, |_| {});
        (
            serde_json::to_string(&report).unwrap(),
            serde_json::to_string(&truth).unwrap(),
            report,
        )
    };
    let (a, ta, report) = run(11);
    let (b, tb, _) = run(11);
    assert_eq!(a, b, "two runs with seed 11 differ");
    assert_eq!(ta, tb);
    assert!(report.demand > 50 && report.trips_served > 0, "{report:?}");
    assert!(
        report.duplicated > 0 && report.reordered > 0,
        "faults were not injected"
    );
    assert_eq!(
        report.platform.illegal_lifecycle, 0,
        "{:?}",
        report.platform
    );
    assert!(report.platform.lifecycle > 800);
    let (c, _, _) = run(12);
    assert_ne!(a, c, "seeds 11 and 12 gave the same run");
}

#[test]
fn a_day_without_rebalancing_loses_10_to_30_percent_of_demand() {
    let cfg = SimConfig::new(7, monday());
    assert_eq!(cfg.vehicles, 5_000);
    let (report, truth) = run_in_process(cfg, CityModel::barcelona(), 24, |_| {});
    assert!(
        (10.0..=30.0).contains(&report.lost_demand_pct),
        "lost demand {} %",
        report.lost_demand_pct
    );
    assert_eq!(report.hourly.len(), 24);
    // Evenings lose more than early mornings: vehicles have drifted away from demand.
    let lost = |range: std::ops::Range<usize>| -> u32 {
        report.hourly[range].iter().map(|h| h.lost).sum()
    };
    assert!(lost(19..23) > lost(5..9), "{:?}", report.hourly);
    assert_eq!(report.relocations, 0);
    assert!(report.avg_walk_m > 0.0 && report.avg_walk_m <= 450.0);
    assert!(!truth.degrading_batteries.is_empty());
    assert!(!truth.crashes.is_empty());
    let plots = [
        report.demand_svg(),
        report.lost_by_zone_svg(),
        report.battery_svg(),
    ];
    for svg in plots {
        let svg = svg.unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
    }
    assert!(report.hourly_csv().lines().count() == 25);
}

#[test]
fn platform_view_converges_to_the_truth_under_faults() {
    let mut cfg = small(3);
    cfg.faults = Faults {
        duplicate: 0.2,
        reorder: 0.2,
        offline_per_hour: 0.5,
        offline_mean_s: 900.0,
        gps_jitter_m: 5.0,
    };
    let mut sim = Sim::new(cfg, CityModel::barcelona());
    let mut platform = LocalPlatform::for_sim(&sim);
    let start = sim.now();
    for msg in sim.deployment() {
        platform.deliver(&msg, start);
    }
    sim.advance_to(start.plus_ms(3 * 3_600_000), &mut platform);
    assert!(
        sim.in_flight() > 0,
        "some messages should still be held back"
    );
    sim.flush(&mut platform);
    let r = &platform.received;
    assert!(r.duplicates > 0, "{r:?}");
    assert!(
        r.stale > 0,
        "reordering should have produced stale reports: {r:?}"
    );
    for v in sim.vehicles() {
        let truth = v.last_report.as_ref().unwrap();
        let seen = platform.index.get(&v.id).unwrap();
        assert_eq!(seen.at, Some(truth.at), "vehicle {}", v.id);
        let p = seen.position.unwrap();
        assert!(
            p.distance_m(&truth.position) < 0.05,
            "vehicle {} position",
            v.id
        );
        assert_eq!(seen.battery, truth.battery);
        assert_eq!(seen.locked, truth.locked);
    }
}
