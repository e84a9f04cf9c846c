use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Role, UsageRow, Visibility};
use turnpike_testkit::TestDb;

use crate::{seed_api, NOW};

crate::on_each_backend!(usage_upserts_are_idempotent_absolute_values_summed_over_sources);
async fn usage_upserts_are_idempotent_absolute_values_summed_over_sources(db: TestDb) {
    let s = &db.store;
    let (api, _) = seed_api(s, "echo", Visibility::Public).await;
    let acc = s.create_account(&Email::parse("u@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let app = s.create_app(acc.id, "app", NOW).await.unwrap();
    s.subscribe_defaults(app.id, NOW).await.unwrap();
    let sub = s.list_subscriptions(app.id).await.unwrap()[0].id;
    let key = s.create_key(app.id, "k", &ApiKey::generate(), NOW).await.unwrap();
    let hour = NOW - NOW % 3600;
    let row = |admitted, e4| UsageRow {
        key_id: key.id,
        api_id: api,
        subscription_id: sub,
        hour,
        admitted,
        status_2xx: admitted - e4,
        status_4xx: e4,
        ..Default::default()
    };

    s.upsert_usage("redis", &[row(10, 1)], NOW).await.unwrap();
    s.upsert_usage("redis", &[row(10, 1)], NOW).await.unwrap(); // repeated flush
    assert_eq!(s.key_usage_total(key.id).await.unwrap().admitted, 10);
    s.upsert_usage("redis", &[row(15, 2)], NOW).await.unwrap();
    s.upsert_usage("redis", &[row(12, 1)], NOW).await.unwrap(); // stale snapshot after a newer one
    let t = s.key_usage_total(key.id).await.unwrap();
    assert_eq!((t.admitted, t.errors), (15, 2));

    // A second source (another in-process counter) adds to, never overwrites, the first.
    s.upsert_usage("proc-b", &[row(7, 0)], NOW).await.unwrap();
    assert_eq!(s.key_usage_total(key.id).await.unwrap().admitted, 22);
    assert_eq!(s.subscription_usage(sub, hour, hour + 3600).await.unwrap(), 22);
    assert_eq!(s.subscription_usage(sub, hour + 3600, hour + 7200).await.unwrap(), 0);
    assert_eq!(s.account_usage(acc.id, hour).await.unwrap().admitted, 22);
    assert_eq!(s.app_usage_by_key(app.id, hour).await.unwrap(), vec![(key.id, 22, 2)]);
}
