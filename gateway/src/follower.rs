//! Following the change log: every gateway polls it (a single indexed query) and invalidates
//! exactly what changed, so a revoked key is refused everywhere within one poll interval.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use turnpike_store::domain::KeyHash;
use turnpike_store::{ChangeKind, StoreError};

use crate::{Gateway, RouteTable};

/// Changes are re-read for this long after they were written: on PostgreSQL a transaction can
/// commit a lower log version after a higher one was already seen.
pub(crate) const REREAD_SECONDS: i64 = 10;

impl Gateway {
    /// Apply the changes logged since the last call. Returns how many were applied.
    pub async fn follow(&self) -> Result<usize, StoreError> {
        let i = &self.inner;
        // The background poll and an explicit `follow()` (tests, admin actions) must not
        // interleave: the first could mark an API change seen and still be reading the APIs when
        // the second returns without applying it (seen in CI: a route published and followed
        // answered `no_route`).
        let _one_at_a_time = i.follow_lock.lock().await;
        let now = i.clock.now();
        let since = i.change_version.load(Ordering::Relaxed);
        // This poll is also the gateway's probe of the database for key lookups.
        let changes = i.store.changes_after(since, now - REREAD_SECONDS, 10_000).await;
        i.keys.database_failing.store(changes.is_err(), Ordering::Relaxed);
        let changes = changes?;
        let mut applied = 0;
        let mut reload_routes = false;
        {
            let mut seen = i.seen_changes.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|_, at| *at >= now - 2 * REREAD_SECONDS);
            for c in &changes {
                if seen.insert(c.version, now).is_some() {
                    continue;
                }
                applied += 1;
                match c.kind {
                    ChangeKind::Key => {
                        if let Some(h) = KeyHash::from_hex(&c.ref_id) {
                            i.keys.invalidate_key(&h);
                        }
                    }
                    ChangeKind::App => {
                        if let Ok(id) = c.ref_id.parse::<i64>() {
                            i.keys.invalidate_app(id);
                        }
                    }
                    ChangeKind::Account => {
                        if let Ok(id) = c.ref_id.parse::<i64>() {
                            i.keys.invalidate_where(move |k| k.account_id == id);
                        }
                    }
                    ChangeKind::Api => reload_routes = true,
                }
                i.change_version.fetch_max(c.version, Ordering::Relaxed);
            }
        }
        if reload_routes {
            let apis = i.store.list_apis().await?;
            let operations = i.analytics.operations(&i.store, &apis).await;
            i.routes.store(Arc::new(RouteTable::build_with(&apis, &operations)));
            // Plans may have changed: every cached entitlement is suspect.
            i.keys.invalidate_all();
        }
        Ok(applied)
    }
}
