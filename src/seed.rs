//! First start on an empty database: the demo API, its free plan, and the first admin.

use rand::Rng;
use turnpike_store::domain::{hash_password, Email, Password};
use turnpike_store::{NewApi, NewPlan, Role, Store, StoreError, Upstream, Visibility};

/// What seeding created, for the console.
#[derive(Debug)]
pub struct Seeded {
    /// The admin's email.
    pub admin_email: String,
    /// The admin's one-time password (printed once, never stored in clear).
    pub admin_password: String,
}

/// A random password of `len` characters from an unambiguous alphabet.
pub fn random_password(len: usize) -> String {
    const A: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..len).map(|_| A[rng.gen_range(0..A.len())] as char).collect()
}

/// Seed an empty database; does nothing (returns `None`) if any account or API exists.
pub async fn seed_if_empty(store: &Store, echo_url: Option<&str>, now: i64) -> Result<Option<Seeded>, StoreError> {
    if store.count_accounts().await? > 0 || !store.list_apis().await?.is_empty() {
        return Ok(None);
    }
    if let Some(url) = echo_url {
        let api = store
            .create_api(
                &NewApi {
                    slug: "echo".into(),
                    name: "Echo".into(),
                    description: "A demo API served by Turnpike itself: it answers with what it received.".into(),
                    route_prefix: "/echo".into(),
                    host: None,
                    upstreams: vec![Upstream { url: url.to_owned(), weight: 1 }],
                    openapi: Some(crate::echo::OPENAPI.to_owned()),
                    visibility: Visibility::Public,
                },
                now,
            )
            .await?;
        store
            .create_plan(
                api.id,
                &NewPlan {
                    slug: "free".into(),
                    name: "Free".into(),
                    rate_per_second: 10,
                    burst: 20,
                    monthly_quota: Some(1_000),
                    currency: "usd".into(),
                    flat_price_minor: 0,
                    unit_price_minor_per_1000: 0,
                    is_default: true,
                },
                now,
            )
            .await?;
    }
    let seeded = create_admin(store, "admin@turnpike.local", None, now).await?;
    Ok(Some(seeded))
}

/// Create an admin account; a password is generated when none is given.
pub async fn create_admin(store: &Store, email: &str, password: Option<&str>, now: i64) -> Result<Seeded, StoreError> {
    let email = Email::parse(email).map_err(|e| StoreError::Corrupt(format!("email: {e}")))?;
    let clear = password.map(str::to_owned).unwrap_or_else(|| random_password(20));
    let pw = Password::parse(&clear).map_err(|e| StoreError::Corrupt(format!("password: {e}")))?;
    let hash = hash_password(&pw).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let acc = store.create_account(&email, &hash, Role::Admin, now).await?;
    store.mark_email_verified(acc.id, now).await?;
    store.audit(None, "admin.create", &format!("account:{}", acc.id), "", now).await?;
    Ok(Seeded { admin_email: acc.email, admin_password: clear })
}
