//! API key actions: create, rename, rotate, revoke. Every key belongs to an app the actor owns
//! (callers get it from [`super::apps::owned_app`]).

use turnpike_store::domain::ApiKey;
use turnpike_store::{Account, App, Audit, KeyId, KeyRecord, Store, StoreError};

use super::{parse_name, ServiceError, ServiceResult};

/// A key just made: its record and its secret, which is shown this once.
#[derive(Debug)]
pub struct NewKey {
    /// The stored key (never the secret).
    pub record: KeyRecord,
    /// The secret.
    pub secret: ApiKey,
}

/// Create a key for `app`. Refused ([`ServiceError::EmailUnverified`]) while `actor`'s email
/// address is unverified: the store's one credential rule, the one personal access tokens follow.
pub async fn create_key(store: &Store, actor: &Account, app: &App, raw_name: &str, now: i64) -> ServiceResult<NewKey> {
    let name = parse_name(raw_name).map_err(ServiceError::InvalidName)?;
    let secret = ApiKey::generate();
    let audit = Audit::new(Some(actor.id), "key.create", "", format!("{name} ({}…)", secret.display_prefix()));
    let record = store.create_key_as(actor.id, app.id, &name, &secret, audit, now).await.map_err(|e| match e {
        StoreError::Unverified => ServiceError::EmailUnverified,
        e => e.into(),
    })?;
    Ok(NewKey { record, secret })
}

/// Rename key `key_id` of `app`. Someone else's key is [`ServiceError::NotFound`], checked before
/// the name so that a bad name never confirms that a key exists.
pub async fn rename_key(store: &Store, actor: &Account, app: &App, key_id: KeyId, raw_name: &str, now: i64) -> ServiceResult<()> {
    let key_id = key_id.get();
    store.get_key(app.id, key_id).await?;
    let name = parse_name(raw_name).map_err(ServiceError::InvalidName)?;
    let audit = Audit::new(Some(actor.id), "key.rename", format!("key:{key_id}"), name.clone());
    Ok(store.rename_key(app.id, key_id, &name, &audit, now).await?)
}

/// A rotation: the old key (expiring after the grace period) and the new one.
#[derive(Debug)]
pub struct Rotated {
    /// The key being replaced.
    pub old: KeyRecord,
    /// Its replacement, with the secret.
    pub new: NewKey,
}

/// Replace key `key_id` of `app` by a new key under the same name; the old one keeps working for
/// `grace_secs`.
pub async fn rotate_key(store: &Store, actor: &Account, app: &App, key_id: KeyId, grace_secs: i64, now: i64) -> ServiceResult<Rotated> {
    let key_id = key_id.get();
    let old = store.get_key(app.id, key_id).await?;
    let secret = ApiKey::generate();
    let detail = format!("{} ({}… replaces {}…, grace {grace_secs} s)", old.name, secret.display_prefix(), old.display_prefix);
    let audit = Audit::new(Some(actor.id), "key.rotate", format!("key:{key_id}"), detail);
    let record = store.rotate_key(app.id, key_id, &secret, grace_secs, &audit, now).await.map_err(|e| match e {
        StoreError::NotFound => ServiceError::NotRotatable,
        e => e.into(),
    })?;
    Ok(Rotated { old, new: NewKey { record, secret } })
}

/// Revoke key `key_id` of `app`; gateways refuse it within a second. Returns the revoked key.
pub async fn revoke_key(store: &Store, actor: &Account, app: &App, key_id: KeyId, now: i64) -> ServiceResult<KeyRecord> {
    let key_id = key_id.get();
    let audit = Audit::new(Some(actor.id), "key.revoke", format!("key:{key_id}"), "");
    store.revoke_key_audited(app.id, key_id, now, Some(audit)).await?;
    Ok(store.get_key(app.id, key_id).await?)
}
