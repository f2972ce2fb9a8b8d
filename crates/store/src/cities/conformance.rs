//! The conformance cases of [`crate::cities`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Cities are stored whole, listed by id, and replaced by `put_city`.
pub async fn cities_round_trip_and_upsert(store: Arc<dyn Store>) {
    assert!(store.cities().await.unwrap().is_empty());
    let bcn = barcelona();
    store.put_city(&bcn, TimestampMs(1)).await.unwrap();
    assert_eq!(store.city(&bcn.id).await.unwrap().as_ref(), Some(&bcn));
    let mut renamed = bcn.clone();
    renamed.name = "Barcelona (Eixample)".into();
    renamed.operating_area = None;
    store.put_city(&renamed, TimestampMs(2)).await.unwrap();
    assert_eq!(store.city(&bcn.id).await.unwrap(), Some(renamed.clone()));
    let lis = City::new(
        CityId::parse("lisbon").unwrap(),
        "Lisboa",
        "Europe/Lisbon",
        Currency::EUR,
        None,
    )
    .unwrap();
    store.put_city(&lis, TimestampMs(3)).await.unwrap();
    let ids: Vec<String> = store
        .cities()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, ["barcelona", "lisbon"]);
    assert_eq!(
        store.city(&CityId::parse("paris").unwrap()).await.unwrap(),
        None
    );
}
