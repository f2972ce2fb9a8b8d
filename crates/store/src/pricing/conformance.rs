//! The conformance cases of [`crate::pricing`], run on every backend by
//! [`conformance_tests!`](crate::conformance_tests).

#[allow(clippy::wildcard_imports)]
use super::*;

/// One plan per city and vehicle type; putting again replaces it.
pub async fn pricing_plans_are_one_per_city_and_type(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let eur = |m| mobility_core::Money::new(m, Currency::parse("EUR").unwrap());
    let plan = |t: VehicleType, per_minute: i64| crate::PricingPlan {
        city: barcelona().id,
        vehicle_type: t,
        name: format!("{} standard", t.as_str()),
        tariff: mobility_core::Tariff {
            unlock_fee: eur(100),
            per_minute: eur(per_minute),
            per_km: eur(0),
            daily_cap: (t == VehicleType::Scooter).then(|| eur(3_000)),
        },
        updated_at: TimestampMs(5),
    };
    store
        .put_pricing_plan(&plan(VehicleType::Scooter, 25))
        .await
        .unwrap();
    store
        .put_pricing_plan(&plan(VehicleType::Ebike, 22))
        .await
        .unwrap();
    store
        .put_pricing_plan(&plan(VehicleType::Scooter, 29))
        .await
        .unwrap();
    let plans = store.pricing_plans(&barcelona().id).await.unwrap();
    assert_eq!(plans.len(), 2);
    let scooter = plans
        .iter()
        .find(|p| p.vehicle_type == VehicleType::Scooter)
        .unwrap();
    assert_eq!(*scooter, plan(VehicleType::Scooter, 29));
    let mut nowhere = plan(VehicleType::Car, 30);
    nowhere.city = CityId::parse("atlantis").unwrap();
    assert!(matches!(
        store.put_pricing_plan(&nowhere).await,
        Err(StoreError::MissingReference(_))
    ));
}

/// Pass plans are upserted per city (never moved to another); a bought pass is recorded once
/// per payment key.
pub async fn passes_are_sold_per_city_and_bought_once_per_key(store: Arc<dyn Store>) {
    store.put_city(&barcelona(), TimestampMs(1)).await.unwrap();
    let mut plan = crate::PassPlan {
        id: "commuter-30".into(),
        city: barcelona().id,
        name: "Commuter 30 days".into(),
        price: mobility_core::Money::new(2_500, Currency::EUR),
        valid_days: 30,
        vehicle_types: vec![VehicleType::Scooter, VehicleType::Ebike],
        benefit: mobility_core::PassBenefit {
            free_unlock: true,
            free_minutes: 30,
        },
        active: true,
        updated_at: TimestampMs(10),
    };
    store.put_pass_plan(&plan).await.unwrap();
    plan.price = mobility_core::Money::new(2_900, Currency::EUR);
    plan.active = false;
    store.put_pass_plan(&plan).await.unwrap();
    assert_eq!(
        store.pass_plans(&barcelona().id).await.unwrap(),
        vec![plan.clone()]
    );
    assert_eq!(
        store.pass_plan("commuter-30").await.unwrap(),
        Some(plan.clone())
    );
    assert_eq!(store.pass_plan("nope").await.unwrap(), None);
    let mut elsewhere = plan.clone();
    elsewhere.id = "x".into();
    elsewhere.city = CityId::parse("nowhere").unwrap();
    assert!(matches!(
        store.put_pass_plan(&elsewhere).await,
        Err(StoreError::MissingReference(_))
    ));

    let rider = user(9_100, "pass@example.com");
    store.insert_user(&rider).await.unwrap();
    let pass = crate::RiderPass {
        id: "p1".into(),
        user_id: rider.id.clone(),
        plan_id: plan.id.clone(),
        starts_at: TimestampMs(100),
        ends_at: TimestampMs(100 + 30 * 86_400_000),
        payment_key: "pass:k1".into(),
        created_at: TimestampMs(100),
    };
    store.insert_rider_pass(&pass).await.unwrap();
    let mut again = pass.clone();
    again.id = "p2".into();
    assert!(matches!(
        store.insert_rider_pass(&again).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.rider_pass_by_key("pass:k1").await.unwrap(),
        Some(pass.clone())
    );
    assert_eq!(store.rider_passes(&rider.id).await.unwrap(), vec![pass]);
    assert!(store.rider_passes("nobody").await.unwrap().is_empty());
}
