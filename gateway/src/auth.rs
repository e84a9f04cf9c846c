//! Authentication: credential extraction, format/checksum check without I/O, then a cached
//! lookup by SHA-256 that change events invalidate.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use http::{HeaderMap, HeaderValue};
use turnpike_store::domain::KeyHash;
use turnpike_store::period::{monthly_period, Period};
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
    /// Seconds this plan runs on local limits when the shared counter store is unreachable;
    /// `None`: fail closed.
    pub(crate) fail_open: Option<i64>,
    /// `turnpike_gateway_requests_total` for this API and plan, by status class.
    pub(crate) requests: Arc<[metrics::Counter; 4]>,
    /// Usage in the period starting at `seed_period_start`, from the database at load time.
    pub(crate) seed_used: i64,
    pub(crate) seed_period_start: i64,
    /// The current period and its `RateLimit-Policy` value, recomputed when the period ends.
    pub(crate) period: Mutex<Option<(Period, HeaderValue)>>,
}

impl Grant {
    /// The billing period containing `now` and the policy header for it.
    pub(crate) fn period_at(&self, now: i64, policy: impl FnOnce(Period) -> HeaderValue) -> (Period, HeaderValue) {
        let mut cached = self.period.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((p, h)) = cached.as_ref() {
            if p.start <= now && now < p.end {
                return (*p, h.clone());
            }
        }
        let p = monthly_period(self.anchor, now);
        let h = policy(p);
        *cached = Some((p, h.clone()));
        (p, h)
    }
}

/// Everything the gateway enforces for one app; shared by all of the app's keys.
#[derive(Debug)]
pub struct AppGrants {
    pub(crate) consumer_header: HeaderValue,
    pub(crate) grants: Vec<Grant>,
}

/// A resolved key.
#[derive(Debug)]
pub struct Identity {
    pub(crate) key_id: i64,
    pub(crate) app_id: i64,
    pub(crate) account_id: i64,
    pub(crate) prefix: Box<str>,
    pub(crate) enabled: bool,
    pub(crate) expires_at: Option<i64>,
    pub(crate) app: Arc<AppGrants>,
    /// Last time this key's use was queued for `last_used_at` (unix seconds).
    pub(crate) last_touch: AtomicI64,
}

impl Identity {
    /// Index in `app.grants` of the grant on `api_id`, if the app is subscribed to it.
    pub(crate) fn grant_index(&self, api_id: i64) -> Option<usize> {
        self.app.grants.iter().position(|g| g.api_id == api_id)
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
    if let Some(v) = headers.get(&crate::proxy::X_API_KEY).and_then(|v| v.to_str().ok()) {
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

type Slot = (Option<Arc<Identity>>, i64);

/// Two generations of a concurrent map: inserts go to `young`; when it holds half the capacity
/// it becomes `old` and the previous `old` is dropped. Hits in `old` are promoted. That bounds
/// memory at `capacity` entries with LRU-like behaviour and no per-entry bookkeeping, which
/// keeps a hit at one shard read lock.
struct Generations {
    young: Arc<DashMap<KeyHash, Slot>>,
    old: Arc<DashMap<KeyHash, Slot>>,
}

impl Generations {
    fn empty() -> Generations {
        Generations { young: Arc::new(DashMap::new()), old: Arc::new(DashMap::new()) }
    }
}

/// The key cache. `None` entries remember unknown keys so that guessing costs no database load.
pub struct KeyCache {
    gens: ArcSwap<Generations>,
    apps: DashMap<i64, Arc<AppGrants>>,
    /// Key id → hash, for JWTs naming a key; a key's hash never changes.
    ids: DashMap<i64, KeyHash>,
    /// Request counters per (API, plan), shared by every app's grants on that plan.
    plan_metrics: PlanMetrics,
    store: Store,
    capacity: usize,
    ttl: i64,
    lookup_timeout: Duration,
    /// The change follower's last poll of the database failed. Lookups then give up after
    /// `lookup_timeout` instead of waiting out the pool (its acquire timeout, per query); while
    /// the database answers they are not cut short, so a burst of cold lookups queued behind
    /// each other is not turned into 503s.
    pub(crate) database_failing: AtomicBool,
    pub(crate) lookups: AtomicU64,
    pub(crate) hits: AtomicU64,
    /// Keys being looked up now, each with the gate later requests for it wait on.
    inflight: DashMap<KeyHash, Arc<tokio::sync::Mutex<()>>>,
}

/// What the cache holds for a key at some instant.
enum Cached {
    /// Within its TTL.
    Fresh(Option<Arc<Identity>>),
    /// Past its TTL: served only when a new lookup fails.
    Stale(Option<Arc<Identity>>),
    Missing,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.gens.load();
        write!(f, "KeyCache({} entries)", g.young.len() + g.old.len())
    }
}

impl KeyCache {
    pub(crate) fn new(store: Store, capacity: u64, ttl: Duration, lookup_timeout: Duration) -> KeyCache {
        KeyCache {
            gens: ArcSwap::from_pointee(Generations::empty()),
            apps: DashMap::new(),
            ids: DashMap::new(),
            plan_metrics: DashMap::new(),
            store,
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(2),
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1),
            lookup_timeout,
            database_failing: AtomicBool::new(false),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            inflight: DashMap::new(),
        }
    }

    /// Resolve a verified key hash; loads from the database on a miss or after the TTL. When the
    /// lookup fails (or, with the database failing, does not answer within the lookup timeout),
    /// an entry that merely outlived its TTL is served for another TTL: it is what the change log
    /// last confirmed, and a database outage must not become an outage of every key whose safety
    /// net ran out.
    pub(crate) async fn resolve(&self, hash: KeyHash, now: i64) -> Result<Option<Arc<Identity>>, StoreError> {
        let stale = match self.cached(hash, now) {
            Cached::Fresh(v) => return Ok(v),
            Cached::Stale(v) => Some(v),
            Cached::Missing => None,
        };
        // One lookup per key at a time: a burst of requests with a key that is not (or no
        // longer) cached waits for the first one's query instead of each sending its own and
        // queueing for the pool (a cold start under load, or a hot key's TTL running out).
        let gate = self.inflight.entry(hash).or_default().clone();
        let guard = gate.lock().await;
        let result = match self.cached(hash, now) {
            Cached::Fresh(v) => Ok(v),
            _ => self.load_into_cache(hash, now, stale).await,
        };
        drop(guard);
        // The map's handle and ours: nobody else is waiting on this gate.
        self.inflight.remove_if(&hash, |_, g| Arc::strong_count(g) <= 2);
        result
    }

    /// The cached entry for `hash` at `now` (a hit is counted).
    fn cached(&self, hash: KeyHash, now: i64) -> Cached {
        let gens = self.gens.load();
        if let Some(slot) = gens.young.get(&hash) {
            if now - slot.1 < self.ttl {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Cached::Fresh(slot.0.clone());
            }
            return Cached::Stale(slot.0.clone());
        }
        if let Some((_, slot)) = gens.old.remove(&hash) {
            if now - slot.1 < self.ttl {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let v = slot.0.clone();
                self.insert(hash, slot);
                return Cached::Fresh(v);
            }
            return Cached::Stale(slot.0);
        }
        Cached::Missing
    }

    async fn load_into_cache(
        &self,
        hash: KeyHash,
        now: i64,
        stale: Option<Option<Arc<Identity>>>,
    ) -> Result<Option<Arc<Identity>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let loaded = match self.bounded(self.load(&hash, now)).await {
            Ok(loaded) => loaded,
            Err(e) => match stale {
                Some(s) => {
                    tracing::warn!(error = %e, "key lookup failed; serving the cached entry past its TTL");
                    s
                }
                None => return Err(e),
            },
        };
        self.insert(hash, (loaded.clone(), now));
        Ok(loaded)
    }

    /// `f`, within the lookup timeout while the database is failing.
    async fn bounded<T>(&self, f: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        if !self.database_failing.load(Ordering::Relaxed) {
            return f.await;
        }
        tokio::time::timeout(self.lookup_timeout, f).await.unwrap_or(Err(StoreError::Timeout))
    }

    /// The hash of key `id` (then [`resolve`](Self::resolve) it like a presented key).
    pub(crate) async fn hash_for_key_id(&self, id: i64) -> Result<Option<KeyHash>, StoreError> {
        if let Some(h) = self.ids.get(&id) {
            return Ok(Some(*h));
        }
        let Some(h) = self.bounded(self.store.key_hash_by_id(id)).await? else { return Ok(None) };
        if self.ids.len() >= self.capacity {
            self.ids.clear();
        }
        self.ids.insert(id, h);
        Ok(Some(h))
    }

    fn insert(&self, hash: KeyHash, slot: Slot) {
        let gens = self.gens.load();
        gens.young.insert(hash, slot);
        if gens.young.len() >= self.capacity / 2 {
            let half = self.capacity / 2;
            // rcu: of several concurrent rotations only one takes effect.
            self.gens.rcu(|g| {
                if g.young.len() >= half {
                    Arc::new(Generations { young: Arc::new(DashMap::new()), old: g.young.clone() })
                } else {
                    g.clone()
                }
            });
        }
    }

    async fn load(&self, hash: &KeyHash, now: i64) -> Result<Option<Arc<Identity>>, StoreError> {
        let Some(k) = self.store.key_auth(hash).await? else { return Ok(None) };
        let app = match self.apps.get(&k.app_id).map(|a| a.clone()) {
            Some(a) => a,
            None => {
                let a = Arc::new(load_app(&self.store, &self.plan_metrics, k.app_id, now).await?);
                self.apps.insert(k.app_id, a.clone());
                a
            }
        };
        Ok(Some(Arc::new(Identity {
            key_id: k.key_id,
            app_id: k.app_id,
            account_id: k.account_id,
            prefix: k.display_prefix.into_boxed_str(),
            enabled: k.status == KeyStatus::Active && k.account_status == AccountStatus::Active,
            expires_at: k.expires_at,
            app,
            last_touch: AtomicI64::new(0),
        })))
    }

    pub(crate) fn invalidate_key(&self, hash: &KeyHash) {
        let g = self.gens.load();
        g.young.remove(hash);
        g.old.remove(hash);
    }

    /// Drop the app's shared grants and every cached key of the app.
    pub(crate) fn invalidate_app(&self, app_id: i64) {
        self.apps.remove(&app_id);
        self.invalidate_where(move |i| i.app_id == app_id);
    }

    pub(crate) fn invalidate_where(&self, f: impl Fn(&Identity) -> bool) {
        let g = self.gens.load();
        let keep = |_: &KeyHash, v: &mut Slot| !v.0.as_deref().is_some_and(&f);
        g.young.retain(keep);
        g.old.retain(keep);
    }

    pub(crate) fn invalidate_all(&self) {
        self.apps.clear();
        self.gens.store(Arc::new(Generations::empty()));
    }

    /// Number of cached keys (known and unknown).
    pub(crate) fn len(&self) -> usize {
        let g = self.gens.load();
        g.young.len() + g.old.len()
    }
}

type PlanMetrics = DashMap<(String, String), Arc<[metrics::Counter; 4]>>;

async fn load_app(store: &Store, plan_metrics: &PlanMetrics, app_id: i64, now: i64) -> Result<AppGrants, StoreError> {
    let mut grants = Vec::new();
    for e in store.entitlements(app_id).await? {
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
            fail_open: (e.redis_failure_policy == "open").then_some(e.fail_open_seconds),
            requests: plan_metrics
                .entry((e.api_slug.clone(), e.plan_slug.clone()))
                .or_insert_with(|| {
                    Arc::new(["2xx", "3xx", "4xx", "5xx"].map(|class| {
                        metrics::counter!("turnpike_gateway_requests_total", "api" => e.api_slug.clone(), "plan" => e.plan_slug.clone(), "status" => class)
                    }))
                })
                .clone(),
            seed_used,
            seed_period_start: period.start,
            period: Mutex::new(None),
        });
    }
    Ok(AppGrants {
        consumer_header: HeaderValue::from_str(&format!("app-{app_id}")).unwrap_or(HeaderValue::from_static("unknown")),
        grants,
    })
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
