use std::collections::HashMap;

use tower_sessions::session::{Id, Record};
use tower_sessions::SessionStore;
use turnpike_testkit::TestDb;

crate::on_each_backend!(sessions_roundtrip_expire_and_delete);
async fn sessions_roundtrip_expire_and_delete(db: TestDb) {
    let s = &db.store;
    let mut data = HashMap::new();
    data.insert("account_id".to_string(), serde_json::json!(42));
    let mut rec = Record { id: Id::default(), data, expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1) };
    s.create(&mut rec).await.unwrap();
    let loaded = s.load(&rec.id).await.unwrap().unwrap();
    assert_eq!(loaded.data["account_id"], serde_json::json!(42));

    let expired =
        Record { id: Id::default(), data: HashMap::new(), expiry_date: time::OffsetDateTime::now_utc() - time::Duration::seconds(1) };
    s.save(&expired).await.unwrap();
    assert!(s.load(&expired.id).await.unwrap().is_none());

    // Account 4 and account 420 are different accounts.
    let mut other = HashMap::new();
    other.insert("account_id".to_string(), serde_json::json!(420));
    let mut other = Record { id: Id::default(), data: other, expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1) };
    s.create(&mut other).await.unwrap();
    assert_eq!(s.delete_account_sessions(4, None).await.unwrap(), 0);
    assert_eq!(s.delete_account_sessions(42, None).await.unwrap(), 1);
    assert!(s.load(&other.id).await.unwrap().is_some());
    assert!(s.load(&rec.id).await.unwrap().is_none());

    // The account column follows the data on every save: logged out, the session is no longer
    // the account's; `keep` spares the current one.
    let mut logged_out = other.clone();
    logged_out.data.remove("account_id");
    s.save(&logged_out).await.unwrap();
    assert_eq!(s.delete_account_sessions(420, None).await.unwrap(), 0);
    let mut two = Vec::new();
    for _ in 0..2 {
        let mut data = HashMap::new();
        data.insert("account_id".to_string(), serde_json::json!(7));
        let mut r = Record { id: Id::default(), data, expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1) };
        s.create(&mut r).await.unwrap();
        two.push(r);
    }
    assert_eq!(s.delete_account_sessions(7, Some(&two[0].id.to_string())).await.unwrap(), 1);
    assert!(s.load(&two[0].id).await.unwrap().is_some());
}
