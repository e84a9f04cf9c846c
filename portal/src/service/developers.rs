//! An administrator's actions on developers: suspend or reactivate an account or one key.

use turnpike_store::{Account, AccountId, AccountStatus, Audit, KeyId, Role, Store, StoreError};

use super::{ServiceError, ServiceResult};

/// The developer account `id`. Admins' accounts are not managed as developers: like an id that
/// does not exist, [`ServiceError::NotFound`] (for the console's pages and the admin API alike).
pub async fn developer_account(store: &Store, id: AccountId) -> ServiceResult<Account> {
    match store.get_account(id.get()).await {
        Ok(a) if a.role == Role::Developer => Ok(a),
        Ok(_) | Err(StoreError::NotFound) => Err(ServiceError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Suspend `account`: no login, every key refused by the gateways.
pub async fn suspend(store: &Store, admin_id: AccountId, account: &Account, now: i64) -> ServiceResult<()> {
    set_status(store, admin_id, account, AccountStatus::Suspended, now).await
}

/// Reactivate a suspended `account`.
pub async fn reactivate(store: &Store, admin_id: AccountId, account: &Account, now: i64) -> ServiceResult<()> {
    set_status(store, admin_id, account, AccountStatus::Active, now).await
}

async fn set_status(store: &Store, admin_id: AccountId, account: &Account, status: AccountStatus, now: i64) -> ServiceResult<()> {
    let action = match status {
        AccountStatus::Suspended => "account.suspend",
        AccountStatus::Active => "account.reactivate",
    };
    let audit = Audit::new(Some(admin_id.get()), action, format!("account:{}", account.id), account.email.clone());
    Ok(store.set_account_status_audited(account.id, status, Some(&audit), now).await?)
}

/// What [`set_key_suspended`] did, and whose key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChange {
    /// The key's app.
    pub app_id: i64,
    /// The app's owner.
    pub account_id: i64,
    /// False when the key is revoked or already in the asked state (nothing written).
    pub changed: bool,
}

/// Suspend (`suspended`) or reactivate key `key_id`; gateways apply it within a second.
pub async fn set_key_suspended(store: &Store, admin_id: AccountId, key_id: KeyId, suspended: bool, now: i64) -> ServiceResult<KeyChange> {
    let (admin_id, key_id) = (admin_id.get(), key_id.get());
    let (app_id, account_id) = store.key_owner(key_id).await?;
    let action = if suspended { "key.suspend" } else { "key.reactivate" };
    let audit = Audit::new(Some(admin_id), action, format!("key:{key_id}"), format!("app:{app_id} account:{account_id}"));
    let changed = match store.set_key_suspended(key_id, suspended, &audit, now).await {
        Ok(()) => true,
        // A revoked key stays revoked; a key already in the asked state needs nothing.
        Err(StoreError::NotFound) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(KeyChange { app_id, account_id, changed })
}
