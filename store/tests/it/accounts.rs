use turnpike_store::domain::Email;
use turnpike_store::{AccountStatus, Role, StoreError};
use turnpike_testkit::TestDb;

use crate::NOW;

crate::on_each_backend!(duplicate_email_is_a_conflict_and_stores_nothing);
async fn duplicate_email_is_a_conflict_and_stores_nothing(db: TestDb) {
    let s = &db.store;
    let e = Email::parse("Ada@Example.com").unwrap();
    let a = s.create_account(&e, "hash", Role::Developer, NOW).await.unwrap();
    assert_eq!(a.email, "ada@example.com");
    let again = s.create_account(&Email::parse("ADA@example.com").unwrap(), "other", Role::Admin, NOW).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(s.count_accounts().await.unwrap(), 1);
    assert_eq!(s.count_admins().await.unwrap(), 0);
    let (found, hash) = s.find_account_by_email(&e).await.unwrap().unwrap();
    assert_eq!((found.id, hash.as_str()), (a.id, "hash"));
}

crate::on_each_backend!(suspension_is_logged_for_gateways);
async fn suspension_is_logged_for_gateways(db: TestDb) {
    let s = &db.store;
    let a = s.create_account(&Email::parse("b@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let before = s.latest_change().await.unwrap();
    s.set_account_status(a.id, AccountStatus::Suspended, NOW).await.unwrap();
    assert_eq!(s.get_account(a.id).await.unwrap().status, AccountStatus::Suspended);
    let changes = s.changes_since(before, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].ref_id, a.id.to_string());
    assert!(matches!(s.set_account_status(999_999, AccountStatus::Active, NOW).await, Err(StoreError::NotFound)));
}
