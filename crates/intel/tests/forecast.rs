//! The forecaster and the registry on a synthetic city: three zones with a daily cycle, rainy
//! hours that halve demand, Poisson-like noise from a fixed generator.

use mobility_intel::{ForecastConfig, Forecaster, Registry, Series, evaluate};

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A Poisson draw by inversion from a uniform made of `key`.
fn poisson(mu: f64, key: u64) -> f64 {
    let u = (splitmix(key) >> 11) as f64 / (1u64 << 53) as f64;
    let (mut k, mut p) = (0.0, (-mu).exp());
    let mut cdf = p;
    while u > cdf && k < 1_000.0 {
        k += 1.0;
        p *= mu / k;
        cdf += p;
    }
    k
}

fn synthetic(days: usize) -> Series {
    let step = 3_600_000;
    let slots = days * 24;
    let zones = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let mut s = Series::zeros(1_780_000_000_000 / step * step, step, slots, zones);
    let rain: Vec<f64> = (0..slots)
        .map(|k| f64::from(u8::from(splitmix(k as u64 / 5).is_multiple_of(4))))
        .collect();
    for z in 0..3 {
        for (k, wet) in rain.iter().enumerate() {
            let hour = (k % 24) as f64;
            let cycle = 1.0
                + (std::f64::consts::TAU * (hour - 6.0) / 24.0)
                    .sin()
                    .max(-0.8);
            let mu = (z as f64 + 1.0) * 6.0 * cycle * if *wet > 0.0 { 0.4 } else { 1.0 };
            s.counts[z][k] = poisson(mu, (z as u64) << 40 | k as u64);
        }
    }
    s.add_covariate("rain", vec![rain; 3]);
    s
}

#[test]
fn the_model_beats_seasonal_naive_when_weather_moves_demand() {
    let s = synthetic(28);
    let test_start = s.slots - s.slots / 5;
    let cfg = ForecastConfig {
        horizons: 2,
        iterations: 80,
        ..ForecastConfig::default()
    };
    let model = Forecaster::train(&s, test_start, &cfg).expect("trains");
    let ev = evaluate(&model, &s, test_start);
    assert_eq!(ev.horizons.len(), 2);
    let h1 = &ev.horizons[0];
    assert!(h1.model_wape.is_finite() && h1.naive_wape.is_finite());
    assert!(
        h1.model_wape < 0.8 * h1.naive_wape,
        "model {:.1} % vs naive {:.1} %",
        h1.model_wape,
        h1.naive_wape
    );
    assert!(ev.city_hourly_wape < ev.city_hourly_naive_wape, "{ev:?}");
    // Forecasts are expectations, never negative, for every zone and horizon.
    let f = model.forecast(&s, test_start).expect("forecast");
    assert_eq!(f.len(), 3);
    assert!(f.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
    // A model survives the trip to JSON and back with the same forecasts.
    let back = Forecaster::from_json(&model.to_json().expect("json")).expect("parse");
    assert_eq!(back.forecast(&s, test_start).expect("forecast"), f);
}

#[test]
fn too_little_history_is_refused_and_mismatched_series_too() {
    let s = synthetic(1);
    let err = Forecaster::train(&s, s.slots, &ForecastConfig::default()).expect_err("too short");
    assert!(err.to_string().contains("two days"), "{err}");
    let long = synthetic(10);
    let model = Forecaster::train(
        &long,
        long.slots,
        &ForecastConfig {
            iterations: 5,
            ..ForecastConfig::default()
        },
    )
    .expect("trains");
    let mut other = long.clone();
    other.covariate_names = vec!["temp".into()];
    assert!(model.forecast(&other, 24).is_err());
}

#[test]
fn the_registry_promotes_only_a_better_model_and_round_trips_through_files() {
    let s = synthetic(21);
    let test_start = s.slots - 4 * 24;
    let weak = Forecaster::train(
        &s,
        test_start,
        &ForecastConfig {
            iterations: 2,
            horizons: 2,
            ..ForecastConfig::default()
        },
    )
    .expect("trains");
    let strong = Forecaster::train(
        &s,
        test_start,
        &ForecastConfig {
            iterations: 80,
            horizons: 2,
            ..ForecastConfig::default()
        },
    )
    .expect("trains");
    let again = Forecaster::train(
        &s,
        test_start,
        &ForecastConfig {
            iterations: 2,
            horizons: 2,
            ..ForecastConfig::default()
        },
    )
    .expect("trains");
    let mut reg = Registry::new();
    assert!(reg.submit(weak, &s, test_start, 1).promoted);
    let card = reg.submit(strong, &s, test_start, 2).clone();
    assert!(card.promoted, "{}", card.reason);
    assert_eq!(card.incumbent.as_ref().map(|(v, _)| *v), Some(1));
    let card = reg.submit(again, &s, test_start, 3).clone();
    assert!(!card.promoted, "{}", card.reason);
    assert!(card.reason.contains("does not beat v2"), "{}", card.reason);
    assert_eq!(reg.current().map(|(c, _)| c.version), Some(2));

    let dir = tempfile::tempdir().expect("tempdir");
    reg.save(dir.path()).expect("save");
    let loaded = Registry::load(dir.path()).expect("load");
    assert_eq!(loaded.cards().len(), 3);
    assert_eq!(loaded.current().map(|(c, _)| c.version), Some(2));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("current")).expect("current"),
        "v0002\n"
    );
}
