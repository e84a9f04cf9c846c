//! Authentication: credential extraction, format/checksum check without I/O, then a cached
//! lookup by SHA-256 that change events invalidate.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use moka::future::Cache;
use turnpike_store::domain::{ApiKey, KeyHash};
use turnpike_store::period::monthly_period;
use turnpike_store::{AccountStatus, KeyStatus, Store, StoreError};

/// What an app may do on one API.
#[derive(Debug)]
pub struct Grant {
    pub(crate) api_id: i64,
    pub(crate) sub_id: i64,
    pub(crate) status_ok: bool,
    pub(crate) plan_header: HeaderValue,
    pub(crate) rate: i64,
    pub(crate) burst: i64,
    pub(crate) quota: Option<i64>,
    pub(crate) anchor: i64,
    /// Usage in the period containing `seed_at`, from the database at load time.
    pub(crate) seed_used: i64,
    pub(crate) seed_period_start: i64,
}

/// A resolved key.
#[derive(Debug)]
pub struct Identity {
    pub(crate) key_id: i64,
    pub(crate) app_id: i64,
    pub(crate) account_id: i64,
    pub(crate) prefix: String,
    pub(crate) enabled: bool,
    pub(crate) expires_at: Option<i64>,
    pub(crate) consumer_header: HeaderValue,
    pub(crate) grants: Vec<Grant>,
    /// Last time this key's use was queued for `last_used_at` (unix seconds).
    pub(crate) last_touch: AtomicI64,
}

impl Identity {
    pub(crate) fn grant(&self, api_id: i64) -> Option<&Grant> {
        self.grants.iter().find(|g| g.api_id == api_id)
    }
}

/// Where the credential came from, so it can be stripped before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer`.
    Authorization,
    /// `X-API-Key`.
    Header,
    /// `?api_key=` (only where the API allows it).
    Query,
}

/// Find the presented key.
pub fn extract<'a>(headers: &'a HeaderMap, query: Option<&'a str>, allow_query: bool) -> Option<(&'a str, CredentialSource)> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some((v[7..].trim(), CredentialSource::Authorization));
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some((v.trim(), CredentialSource::Header));
    }
    if allow_query {
        for pair in query?.split('&') {
            if let Some(v) = pair.strip_prefix("api_key=") {
                return Some((v, CredentialSource::Query));
            }
        }
    }
    None
}

/// The key cache. `None` entries remember unknown keys so that guessing costs no database load.
pub struct KeyCache {
    cache: Cache<KeyHash, Option<Arc<Identity>>>,
    store: Store,
    pub(crate) lookups: AtomicU64,
    pub(crate) hits: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCache({} entries)", self.cache.entry_count())
    }
}

impl KeyCache {
    pub(crate) fn new(store: Store, capacity: u64, ttl: Duration) -> KeyCache {
        KeyCache {
            cache: Cache::builder().max_capacity(capacity).time_to_live(ttl).support_invalidation_closures().build(),
            store,
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// Resolve a verified key hash; loads from the database on a miss.
    pub(crate) async fn resolve(&self, hash: KeyHash, now: i64) -> Result<Option<Arc<Identity>>, Arc<StoreError>> {
        if let Some(hit) = self.cache.get(&hash).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.cache
            .try_get_with(hash, async {
                self.lookups.fetch_add(1, Ordering::Relaxed);
                load(&self.store, &hash, now).await
            })
            .await
    }

    pub(crate) async fn invalidate_key(&self, hash: &KeyHash) {
        self.cache.invalidate(hash).await;
    }

    pub(crate) fn invalidate_where(&self, f: impl Fn(&Identity) -> bool + Send + Sync + 'static) {
        let _ = self.cache.invalidate_entries_if(move |_, v| v.as_ref().is_some_and(|i| f(i)));
    }

    pub(crate) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

async fn load(store: &Store, hash: &KeyHash, now: i64) -> Result<Option<Arc<Identity>>, StoreError> {
    let Some(k) = store.key_auth(hash).await? else { return Ok(None) };
    let mut grants = Vec::new();
    for e in store.entitlements(k.app_id).await? {
        let period = monthly_period(e.billing_anchor, now);
        let seed_used =
            if e.monthly_quota.is_some() { store.subscription_usage(e.subscription_id, period.start, period.end).await? } else { 0 };
        grants.push(Grant {
            api_id: e.api_id,
            sub_id: e.subscription_id,
            status_ok: e.status == "active",
            plan_header: HeaderValue::from_str(&e.plan_slug).unwrap_or(HeaderValue::from_static("unknown")),
            rate: e.rate_per_second.max(1),
            burst: e.burst.max(1),
            quota: e.monthly_quota,
            anchor: e.billing_anchor,
            seed_used,
            seed_period_start: period.start,
        });
    }
    Ok(Some(Arc::new(Identity {
        key_id: k.key_id,
        app_id: k.app_id,
        account_id: k.account_id,
        consumer_header: HeaderValue::from_str(&format!("app-{}", k.app_id)).unwrap_or(HeaderValue::from_static("unknown")),
        prefix: k.display_prefix,
        enabled: k.status == KeyStatus::Active && k.account_status == AccountStatus::Active,
        expires_at: k.expires_at,
        grants,
        last_touch: AtomicI64::new(0),
    })))
}

/// Verify format and checksum; `None` means refuse without a lookup.
pub fn verify(presented: &str) -> Option<KeyHash> {
    ApiKey::verify(presented).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_priority_order() {
        let mut h = HeaderMap::new();
        assert_eq!(extract(&h, Some("api_key=q"), true), Some(("q", CredentialSource::Query)));
        assert_eq!(extract(&h, Some("api_key=q"), false), None);
        h.insert("x-api-key", HeaderValue::from_static("x"));
        assert_eq!(extract(&h, None, false), Some(("x", CredentialSource::Header)));
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer  tok "));
        assert_eq!(extract(&h, None, false), Some(("tok", CredentialSource::Authorization)));
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(extract(&h, None, false), Some(("x", CredentialSource::Header)));
    }
}
