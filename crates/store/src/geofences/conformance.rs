//! The conformance cases of [`crate::geofences`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Geofences are stored per city, replaced by id, and deleted with their city returned.
pub async fn geofences_put_list_replace_delete(store: Arc<dyn Store>) {
    let city = CityId::parse("barcelona").unwrap();
    let fence = |id: &str, kind: &str, kmh: Option<i64>| GeofenceRecord {
        id: id.to_owned(),
        city: city.clone(),
        name: format!("{id} zone"),
        kind: kind.to_owned(),
        speed_limit_kmh: kmh,
        ring: vec![[2.1, 41.3], [2.2, 41.3], [2.2, 41.4]],
        updated_at: TimestampMs(1),
    };
    let err = store
        .put_geofence(&fence("g1", "no_parking", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingReference(_)), "{err}");
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    store
        .put_geofence(&fence("g2", "slow_zone", Some(10)))
        .await
        .unwrap();
    store
        .put_geofence(&fence("g1", "no_parking", None))
        .await
        .unwrap();
    assert_eq!(
        store.geofences(&city).await.unwrap(),
        vec![
            fence("g1", "no_parking", None),
            fence("g2", "slow_zone", Some(10))
        ]
    );
    store
        .put_geofence(&fence("g2", "slow_zone", Some(6)))
        .await
        .unwrap();
    assert_eq!(
        store.geofences(&city).await.unwrap()[1].speed_limit_kmh,
        Some(6)
    );
    assert_eq!(
        store.delete_geofence("g1").await.unwrap(),
        Some(city.clone())
    );
    assert_eq!(store.delete_geofence("g1").await.unwrap(), None);
    assert_eq!(store.geofences(&city).await.unwrap().len(), 1);
}
