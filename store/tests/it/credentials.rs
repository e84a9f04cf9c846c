//! One rule for new credentials: API keys (the portal's action) and personal access tokens are
//! refused alike until the account's email address is verified, and again once it is deleted.

use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{Audit, PersonalToken, Role, StoreError};
use turnpike_testkit::TestDb;

use crate::NOW;

crate::on_each_backend!(keys_and_tokens_need_a_verified_undeleted_account);
async fn keys_and_tokens_need_a_verified_undeleted_account(db: TestDb) {
    let s = &db.store;
    let acc = s.create_account(&Email::parse("dev@example.com").unwrap(), "h", Role::Developer, NOW).await.unwrap();
    let app = s.create_app(acc.id, "bot", NOW).await.unwrap();
    let audit = || Audit::new(Some(acc.id), "key.create", "", "");
    let key = |n: &'static str| async move { s.create_key_as(acc.id, app.id, n, &ApiKey::generate(), audit(), NOW).await };
    let token = |n: &'static str| async move {
        s.create_pat(acc.id, n, &PersonalToken::generate(), &turnpike_store::Scopes::developer(), None, Some(acc.id), NOW).await
    };

    assert!(matches!(key("a").await, Err(StoreError::Unverified)));
    assert!(matches!(token("a").await, Err(StoreError::Unverified)));
    assert!(s.list_keys(app.id).await.unwrap().is_empty() && s.list_pats(acc.id).await.unwrap().is_empty(), "nothing stored");

    s.mark_email_verified(acc.id, NOW).await.unwrap();
    key("b").await.unwrap();
    token("b").await.unwrap();

    s.delete_account(acc.id, &Audit::new(Some(acc.id), "account.delete", format!("account:{}", acc.id), ""), NOW).await.unwrap();
    assert!(matches!(key("c").await, Err(StoreError::Unverified)));
    assert!(matches!(token("c").await, Err(StoreError::Unverified)));
    assert_eq!((s.list_keys(app.id).await.unwrap().len(), s.list_pats(acc.id).await.unwrap().len()), (1, 1));
}
