use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{AccountStatus, ChangeKind, KeyStatus, Role, StoreError, Visibility};
use turnpike_testkit::TestDb;

use crate::{seed_api, NOW};

crate::on_each_backend!(keys_resolve_by_hash_and_revocation_is_visible);
async fn keys_resolve_by_hash_and_revocation_is_visible(db: TestDb) {
    let s = &db.store;
    let acc = s.create_account(&Email::parse("dev@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let app = s.create_app(acc.id, "my app", NOW).await.unwrap();
    assert!(matches!(s.create_app(acc.id, "my app", NOW).await, Err(StoreError::Conflict)));
    let key = ApiKey::generate();
    let rec = s.create_key(app.id, "default", &key, NOW).await.unwrap();
    assert_eq!(rec.display_prefix, key.display_prefix());

    let auth = s.key_auth(&key.hash()).await.unwrap().unwrap();
    assert_eq!((auth.key_id, auth.app_id, auth.account_id), (rec.id, app.id, acc.id));
    assert_eq!(auth.status, KeyStatus::Active);
    assert_eq!(auth.account_status, AccountStatus::Active);
    assert!(s.key_auth(&ApiKey::generate().hash()).await.unwrap().is_none());

    let v = s.latest_change().await.unwrap();
    s.revoke_key(app.id, rec.id, NOW).await.unwrap();
    assert_eq!(s.key_auth(&key.hash()).await.unwrap().unwrap().status, KeyStatus::Revoked);
    let ch = s.changes_since(v, 10).await.unwrap();
    assert_eq!((ch[0].kind, ch[0].ref_id.clone()), (ChangeKind::Key, key.hash().to_hex()));

    s.touch_keys(&[(rec.id, NOW + 5), (rec.id, NOW + 3)]).await.unwrap();
    assert_eq!(s.list_keys(app.id).await.unwrap()[0].last_used_at, Some(NOW + 5));
}

crate::on_each_backend!(apps_are_isolated_between_accounts);
async fn apps_are_isolated_between_accounts(db: TestDb) {
    let s = &db.store;
    let a = s.create_account(&Email::parse("a@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let b = s.create_account(&Email::parse("b@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let app = s.create_app(a.id, "a's app", NOW).await.unwrap();
    assert_eq!(s.get_app(a.id, app.id).await.unwrap().name, "a's app");
    assert!(matches!(s.get_app(b.id, app.id).await, Err(StoreError::NotFound)));
    assert!(s.list_apps(b.id).await.unwrap().is_empty());
    // Revoking through another app's id touches nothing.
    let key = ApiKey::generate();
    let rec = s.create_key(app.id, "k", &key, NOW).await.unwrap();
    let b_app = s.create_app(b.id, "b's app", NOW).await.unwrap();
    assert!(matches!(s.revoke_key(b_app.id, rec.id, NOW).await, Err(StoreError::NotFound)));
    assert_eq!(s.key_auth(&key.hash()).await.unwrap().unwrap().status, KeyStatus::Active);
}

crate::on_each_backend!(new_apps_get_public_default_plans_and_upgrades_keep_the_anchor);
async fn new_apps_get_public_default_plans_and_upgrades_keep_the_anchor(db: TestDb) {
    let s = &db.store;
    let (public_api, free) = seed_api(s, "echo", Visibility::Public).await;
    let (_draft_api, _) = seed_api(s, "secret", Visibility::Draft).await;
    let acc = s.create_account(&Email::parse("c@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let app = s.create_app(acc.id, "app", NOW).await.unwrap();
    assert_eq!(s.subscribe_defaults(app.id, NOW).await.unwrap(), 1);
    let ents = s.entitlements(app.id).await.unwrap();
    assert_eq!(ents.len(), 1);
    assert_eq!((ents[0].api_id, ents[0].plan_id, ents[0].monthly_quota), (public_api, free, Some(1000)));

    let pro = s
        .create_plan(
            public_api,
            &turnpike_store::NewPlan {
                slug: "pro".into(),
                name: "Pro".into(),
                rate_per_second: 100,
                burst: 100,
                monthly_quota: Some(100_000),
                currency: "usd".into(),
                flat_price_minor: 4900,
                unit_price_minor_per_1000: 0,
                is_default: false,
            },
            NOW,
        )
        .await
        .unwrap();
    let sub = s.subscribe(app.id, pro.id, NOW + 86_400).await.unwrap();
    assert_eq!((sub.plan_id, sub.billing_anchor), (pro.id, NOW - NOW % 3600));
    assert_eq!(s.entitlements(app.id).await.unwrap()[0].monthly_quota, Some(100_000));
    assert!(matches!(s.subscribe(app.id, 424_242, NOW).await, Err(StoreError::NotFound)));
}
