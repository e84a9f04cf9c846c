//! The meter flusher: absolute counter values into the database, idempotently.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::Gateway;

impl Gateway {
    /// Write the absolute values of every bucket that changed since the last flush. Running it
    /// twice over the same counters changes nothing; a failed write is retried with the next
    /// flush; a crash between two flushes loses nothing that the counter store still holds.
    /// Flushes run one at a time: when one returns `Ok`, what was counted before the call is in
    /// the database, even if the background flusher had taken it first.
    /// Returns the number of rows written.
    pub async fn flush(&self) -> Result<usize, String> {
        let i = &self.inner;
        let _one_at_a_time = i.flush_lock.lock().await;
        let now = i.clock.now();
        // Fail-open admissions first: they are written even while the shared store is down.
        let mut fallback_rows = 0;
        if let Some((_, local)) = &i.fallback {
            let rows = local.snapshot(now).await.map_err(|e| e.to_string())?;
            if let Err(e) = i.store.upsert_usage(local.source(), &rows, now).await {
                local.remark(&rows);
                return Err(e.to_string());
            }
            local.prune(now);
            fallback_rows = rows.len();
        }
        let rows = i.counters.snapshot(now).await.map_err(|e| e.to_string())?;
        if let Err(e) = i.store.upsert_usage(i.counters.source(), &rows, now).await {
            // Nothing is lost: the counters still hold the values; write them next time.
            i.counters.remark(&rows);
            return Err(e.to_string());
        }
        let mut touches: Vec<(i64, i64)> = std::mem::take(&mut *i.touches.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
        // In key order, as every gateway does: concurrent transactions then cannot deadlock.
        touches.sort_unstable();
        if let Err(e) = i.store.touch_keys(&touches).await {
            tracing::warn!(error = %e, "could not record key last-use times");
        }
        i.counters.prune(now);
        // Analytics after the billable rows, under this gateway's own source; a failed write is
        // retried with the next flush and never holds the usage rows back.
        let analytics = i.analytics.snapshot();
        if let Err(e) = i.store.upsert_analytics(i.analytics.source(), &analytics, now).await {
            i.analytics.remark(&analytics);
            return Err(e.to_string());
        }
        i.analytics.prune(turnpike_store::clock::hour_start(now) - 2 * 3600);
        i.flushes.fetch_add(1, Ordering::Relaxed);
        i.last_flush.store(now, Ordering::Relaxed);
        metrics::gauge!("turnpike_meter_flush_rows").set((rows.len() + fallback_rows) as f64);
        Ok(rows.len() + fallback_rows)
    }

    /// After a crash of every gateway, buckets of earlier hours may never have been flushed:
    /// flush the last two days once at start (Redis mode; a no-op in process).
    pub async fn recover(&self) -> Result<usize, String> {
        let i = &self.inner;
        let now = i.clock.now();
        let rows = i.counters.snapshot_hours(now, 48).await.map_err(|e| e.to_string())?;
        i.store.upsert_usage(i.counters.source(), &rows, now).await.map_err(|e| e.to_string())?;
        Ok(rows.len())
    }

    /// Run the flusher and the change follower until `shutdown` turns true, then flush once
    /// more.
    pub fn spawn_workers(&self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let gw = self.clone();
        tokio::spawn(async move {
            if let Err(e) = gw.recover().await {
                tracing::warn!(error = %e, "meter recovery failed; will retry with the regular flush");
            }
            let mut flush = tokio::time::interval(gw.inner.cfg.flush_interval);
            let mut follow = tokio::time::interval(gw.inner.cfg.follow_interval);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = flush.tick() => {
                        if let Err(e) = gw.flush().await {
                            tracing::warn!(error = %e, "meter flush failed; counters are kept and retried");
                        }
                    }
                    _ = follow.tick() => {
                        if let Err(e) = gw.follow().await {
                            tracing::warn!(error = %e, "change follower failed");
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
            for attempt in 1..=5 {
                match gw.flush().await {
                    Ok(n) => {
                        tracing::info!(rows = n, "final meter flush done");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, attempt, "final meter flush failed");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                }
            }
        })
    }
}
