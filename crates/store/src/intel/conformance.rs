//! The conformance cases of [`crate::intel`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Demand slots add up when two reporters count the same slot; incentive spending never passes
/// the day's budget, even when many processes spend at once; days are separate.
pub async fn demand_adds_up_and_incentives_stay_within_the_budget(store: Arc<dyn Store>) {
    let city = barcelona();
    store.put_city(&city, TimestampMs(1)).await.unwrap();
    let slot = |t: i64, zone: &str, searches: u32, unmet: u32| DemandSlot {
        slot: TimestampMs(t),
        zone: zone.to_owned(),
        searches,
        unmet,
        returns: searches / 2,
    };
    store
        .add_demand(&city.id, &[slot(900_000, "a", 3, 1), slot(0, "b", 2, 0)])
        .await
        .unwrap();
    store
        .add_demand(&city.id, &[slot(900_000, "a", 4, 2)])
        .await
        .unwrap();
    assert_eq!(
        store.demand_since(&city.id, TimestampMs(0)).await.unwrap(),
        vec![
            slot(0, "b", 2, 0),
            DemandSlot {
                returns: 3,
                ..slot(900_000, "a", 7, 3)
            }
        ]
    );
    assert_eq!(
        store.demand_since(&city.id, TimestampMs(1)).await.unwrap(),
        vec![DemandSlot {
            returns: 3,
            ..slot(900_000, "a", 7, 3)
        }]
    );
    let unknown = CityId::parse("atlantis").unwrap();
    assert!(matches!(
        store.add_demand(&unknown, &[slot(0, "a", 1, 0)]).await,
        Err(StoreError::MissingReference(_))
    ));

    // Weather: replaced per hour, unknowns stay unknown, read by range.
    let hour = |h: i64, rain: Option<bool>, temp_c: Option<f64>| WeatherHour {
        hour: TimestampMs(h * 3_600_000),
        rain,
        temp_c,
    };
    store
        .put_weather(
            &city.id,
            &[hour(1, Some(true), Some(12.5)), hour(2, None, None)],
        )
        .await
        .unwrap();
    store
        .put_weather(
            &city.id,
            &[hour(1, Some(false), Some(14.0)), hour(3, Some(true), None)],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .weather_between(&city.id, TimestampMs(3_600_000), TimestampMs(3 * 3_600_000))
            .await
            .unwrap(),
        vec![hour(1, Some(false), Some(14.0)), hour(2, None, None)]
    );

    // Events: replaced by id, listed by end from a time on, deleted once.
    let event = |id: &str, ends: i64| CityEventRecord {
        id: id.to_owned(),
        city: city.id.clone(),
        name: format!("event {id}"),
        venue: LatLon::new(41.38, 2.12).unwrap(),
        ends_at: TimestampMs(ends),
        egress_ms: 1_800_000,
        riders: 250.5,
        updated_at: TimestampMs(1),
    };
    store
        .put_calendar_event(&event("match", 5_000))
        .await
        .unwrap();
    store
        .put_calendar_event(&event("concert", 9_000))
        .await
        .unwrap();
    store
        .put_calendar_event(&event("match", 7_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .calendar_events(&city.id, TimestampMs(6_000))
            .await
            .unwrap(),
        vec![event("match", 7_000), event("concert", 9_000)]
    );
    assert_eq!(
        store.delete_calendar_event("match").await.unwrap(),
        Some(city.id.clone())
    );
    assert_eq!(store.delete_calendar_event("match").await.unwrap(), None);
    assert!(matches!(
        store
            .put_calendar_event(&CityEventRecord {
                city: CityId::parse("atlantis").unwrap(),
                ..event("x", 1)
            })
            .await,
        Err(StoreError::MissingReference(_))
    ));

    // 40 spenders of 100 against a budget of 1,000: exactly ten win.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        let id = city.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .spend_incentive(&id, 20_000, 100, 1_000)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += i32::from(t.await.unwrap());
    }
    assert_eq!(won, 10);
    assert_eq!(
        store.incentive_spent(&city.id, 20_000).await.unwrap(),
        1_000
    );
    assert!(
        !store
            .spend_incentive(&city.id, 20_000, 1, 1_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .spend_incentive(&city.id, 20_001, 1_000, 1_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .spend_incentive(&city.id, 20_002, 1_001, 1_000)
            .await
            .unwrap()
    );
    assert_eq!(store.incentive_spent(&city.id, 20_002).await.unwrap(), 0);
}
