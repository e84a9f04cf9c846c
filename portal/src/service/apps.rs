//! App actions: create, rename, delete, and the one ownership check.

use turnpike_store::{Account, AccountId, App, AppId, Audit, Store, StoreError};

use super::{parse_name, ServiceError, ServiceResult};

/// App `app_id` if `account_id` owns it; [`ServiceError::NotFound`] otherwise (never 403).
pub async fn owned_app(store: &Store, account_id: AccountId, app_id: AppId) -> ServiceResult<App> {
    Ok(store.get_app(account_id.get(), app_id.get()).await?)
}

fn name_taken(name: &str) -> impl FnOnce(StoreError) -> ServiceError {
    super::taken(ServiceError::AppNameTaken(name.to_owned()))
}

/// Create an app for `actor` (audited with it), then subscribe it to the default plan of every
/// public API.
pub async fn create_app(store: &Store, actor: &Account, raw_name: &str, now: i64) -> ServiceResult<App> {
    let name = parse_name(raw_name).map_err(ServiceError::InvalidName)?;
    let audit = Audit::new(Some(actor.id), "app.create", "", name.clone());
    let app = store.create_app_audited(actor.id, &name, now, Some(audit)).await.map_err(name_taken(&name))?;
    store.subscribe_defaults(app.id, now).await?;
    Ok(app)
}

/// Rename `app` (owned by `actor`).
pub async fn rename_app(store: &Store, actor: &Account, app: &App, raw_name: &str, now: i64) -> ServiceResult<App> {
    let name = parse_name(raw_name).map_err(ServiceError::InvalidName)?;
    let audit = Audit::new(Some(actor.id), "app.rename", format!("app:{}", app.id), format!("{} → {name}", app.name));
    store.rename_app(actor.id, app.id, &name, &audit, now).await.map_err(name_taken(&name))
}

/// Delete `app` (owned by `actor`) with its keys and subscriptions, unless it has billing history.
pub async fn delete_app(store: &Store, actor: &Account, app: &App, now: i64) -> ServiceResult<()> {
    let audit = Audit::new(Some(actor.id), "app.delete", format!("app:{}", app.id), app.name.clone());
    store.delete_app(actor.id, app.id, &audit, now).await.map_err(|e| match e {
        StoreError::Conflict => ServiceError::HasBillingHistory,
        e => e.into(),
    })
}
