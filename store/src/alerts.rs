//! Usage alerts (quota thresholds, key expiry) and outgoing webhooks.
//!
//! **Exactly once.** An alert is a row of `alerts_sent` keyed by (kind, subject, period,
//! threshold); the email it sends (outbox) and the webhook event it raises are inserted in the
//! same transaction, only when that row is new. So any number of workers, sweeping as often as
//! they like and restarting at any point, send each alert once.
//!
//! **Webhook events** come from facts already recorded: audit rows (keys created or revoked,
//! subscriptions changed), finalized invoices, and alerts. Each fact has a `source_key`
//! (`audit:42`, `invoice:7:finalized`, `alert:quota:3:…`) that is unique in `webhook_events`, so
//! sweeps may read overlapping windows without raising an event twice; the event's deliveries
//! (one per matching endpoint) are inserted with it. Deliveries are at least once: a receiver
//! dedupes by the event id it is sent.

use serde::Serialize;

use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

/// A subscription whose quota the alert sweep checks.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuotaWatch {
    /// Subscription.
    pub subscription_id: i64,
    /// Its developer.
    pub account_id: i64,
    /// Where alerts go.
    pub email: String,
    /// App name.
    pub app_name: String,
    /// API name.
    pub api_name: String,
    /// Plan name.
    pub plan_name: String,
    /// The plan's monthly quota (> 0).
    pub monthly_quota: i64,
    /// The subscription's billing anchor (periods are calendar months from it).
    pub billing_anchor: i64,
    /// Comma-separated percentages, e.g. `80,100`.
    pub quota_alert_percents: String,
}

/// An active key that expires soon.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpiringKey {
    /// Key id.
    pub key_id: i64,
    /// Key name.
    pub name: String,
    /// The key's public prefix (never the key).
    pub display_prefix: String,
    /// When it stops working.
    pub expires_at: i64,
    /// App name.
    pub app_name: String,
    /// Developer.
    pub account_id: i64,
    /// Where the alert goes.
    pub email: String,
}

/// One alert to send once.
#[derive(Debug, Clone)]
pub struct Alert {
    /// `quota` or `key_expiry`.
    pub kind: &'static str,
    /// Subscription or key id.
    pub subject_id: i64,
    /// Billing period start, or the key's expiry.
    pub period_start: i64,
    /// Percent, or days before expiry.
    pub threshold: i64,
    /// Lower thresholds crossed at the same time: recorded as sent, not mailed separately.
    pub also_covers: Vec<i64>,
    /// The email: recipient, subject, body.
    pub email: (String, String, String),
    /// The webhook event: type and JSON payload (its source key is derived from the alert).
    pub event: (&'static str, serde_json::Value),
}

/// An endpoint registered for events.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Webhook {
    /// Id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// Comma-separated event types, or `*`.
    pub events: String,
    /// Paused endpoints get no new deliveries.
    pub active: bool,
    /// When added.
    pub created_at: i64,
}

/// A delivery due now, claimed by one worker for a while.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Endpoint URL.
    pub url: String,
    /// Signing secret of the endpoint.
    pub secret: String,
    /// Event id (receivers dedupe on it).
    pub event_id: i64,
    /// Event type.
    pub event_type: String,
    /// JSON body.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// A row of an endpoint's delivery log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: i64,
    /// Event id.
    pub event_id: i64,
    /// Event type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Last HTTP status, if any answer came.
    pub last_status: Option<i64>,
    /// Last error (connection, timeout), if any.
    pub last_error: Option<String>,
    /// Next attempt (pending only).
    pub next_attempt_at: i64,
    /// When delivered.
    pub delivered_at: Option<i64>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    /// 2xx.
    Delivered { status: i64 },
    /// Another try at `next_attempt_at`.
    Retry { status: Option<i64>, error: String, next_attempt_at: i64 },
    /// No more tries.
    Failed { status: Option<i64>, error: String },
}

/// Audit actions that are webhook events, and their event types.
pub const AUDIT_EVENTS: &[(&str, &str)] = &[
    ("key.create", "key.created"),
    ("key.revoke", "key.revoked"),
    ("key.rotate", "key.rotated"),
    ("key.suspend", "key.suspended"),
    ("key.reactivate", "key.reactivated"),
    ("subscription.subscribe", "subscription.changed"),
    ("subscription.plan", "subscription.changed"),
    ("subscription.cancel", "subscription.changed"),
];

/// Every event type an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "key.created",
    "key.revoked",
    "key.rotated",
    "key.suspended",
    "key.reactivated",
    "subscription.changed",
    "invoice.finalized",
    "quota.threshold_reached",
    "key.expiring",
];

/// Insert event `$key` (type `$ty`, JSON text `$payload`) and one delivery per active endpoint
/// that wants it, inside the caller's transaction; nothing when the source key exists.
macro_rules! record_event {
    ($tx:expr, $key:expr, $ty:expr, $payload:expr, $now:expr) => {{
        let id: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO webhook_events (source_key, event_type, payload, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source_key) DO NOTHING RETURNING id",
        )
        .bind($key)
        .bind($ty)
        .bind($payload)
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        if let Some((event_id,)) = id {
            sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at)
                 SELECT id, $1, $2 FROM webhooks
                 WHERE active AND (events = '*' OR (',' || events || ',') LIKE ('%,' || $3 || ',%'))",
            )
            .bind(event_id)
            .bind($now)
            .bind($ty)
            .execute(&mut *$tx)
            .await?;
        }
        id.is_some()
    }};
}

/// id, number, subscription, period start, period end, currency, total, finalized at.
type FinalizedInvoice = (i64, Option<String>, i64, i64, i64, String, i64, Option<i64>);

fn envelope(ty: &str, now: i64, data: serde_json::Value) -> String {
    serde_json::json!({ "type": ty, "created_at": now, "data": data }).to_string()
}

impl Store {
    /// Subscriptions with a monthly quota (not canceled, account not deleted) whose usage rows
    /// were written at or after `since`: the only ones whose alert state can have changed.
    pub async fn quota_watch(&self, since: i64) -> Result<Vec<QuotaWatch>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT s.id AS subscription_id, ac.id AS account_id, ac.email, ap.name AS app_name, api.name AS api_name,
                    pl.name AS plan_name, pl.monthly_quota, s.billing_anchor, pl.quota_alert_percents
             FROM subscriptions s
             JOIN plans pl ON pl.id = s.plan_id
             JOIN apps ap ON ap.id = s.app_id
             JOIN accounts ac ON ac.id = ap.account_id
             JOIN apis api ON api.id = s.api_id
             WHERE s.status <> 'canceled' AND pl.monthly_quota > 0 AND ac.deleted_at IS NULL
               AND s.id IN (SELECT DISTINCT subscription_id FROM usage_hourly WHERE updated_at >= $1)
             ORDER BY s.id")
            .bind(since).fetch_all(p).await?))
    }

    /// Active keys expiring in `(now, until]`.
    pub async fn expiring_keys(&self, now: i64, until: i64) -> Result<Vec<ExpiringKey>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT k.id AS key_id, k.name, k.display_prefix, k.expires_at, ap.name AS app_name, ac.id AS account_id, ac.email
             FROM api_keys k JOIN apps ap ON ap.id = k.app_id JOIN accounts ac ON ac.id = ap.account_id
             WHERE k.status = 'active' AND k.expires_at > $1 AND k.expires_at <= $2 AND ac.deleted_at IS NULL
             ORDER BY k.id")
            .bind(now).bind(until).fetch_all(p).await?))
    }

    /// Send `alert` unless it was sent before: its row, the rows of the lower thresholds it
    /// covers, its email and its webhook event, in one transaction. True when it was new.
    pub async fn send_alert_once(&self, alert: &Alert, now: i64) -> Result<bool, StoreError> {
        let key = format!("alert:{}:{}:{}:{}", alert.kind, alert.subject_id, alert.period_start, alert.threshold);
        let payload = envelope(alert.event.0, now, alert.event.1.clone());
        let new = in_tx!(self, tx => {
            let insert = "INSERT INTO alerts_sent (kind, subject_id, period_start, threshold, sent_at) VALUES ($1, $2, $3, $4, $5)
                          ON CONFLICT DO NOTHING";
            let n = sqlx::query(insert).bind(alert.kind).bind(alert.subject_id).bind(alert.period_start).bind(alert.threshold).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                for lower in &alert.also_covers {
                    sqlx::query(insert).bind(alert.kind).bind(alert.subject_id).bind(alert.period_start).bind(lower).bind(now)
                        .execute(&mut *tx).await?;
                }
                let (to, subject, body) = &alert.email;
                crate::outbox::queue_email!(&mut *tx, format!("alert_{}", alert.kind), to, subject, body, now);
                let _ = record_event!(tx, &key, alert.event.0, &payload, now);
            }
            n == 1
        });
        Ok(new)
    }

    /// Thresholds of `kind` already sent for (subject, period).
    pub async fn alerts_sent(&self, kind: &str, subject_id: i64, period_start: i64) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> = on_pool!(self, p => sqlx::query_as(
            "SELECT threshold FROM alerts_sent WHERE kind = $1 AND subject_id = $2 AND period_start = $3 ORDER BY threshold")
            .bind(kind).bind(subject_id).bind(period_start).fetch_all(p).await?);
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Raise the events of audit rows written at or after `since` (keys, subscriptions) and of
    /// invoices finalized at or after `since`. Returns how many events were new.
    pub async fn emit_recorded_events(&self, since: i64, now: i64) -> Result<usize, StoreError> {
        let audit: Vec<(i64, i64, Option<i64>, String, String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, at, actor_id, action, target, detail FROM audit_log WHERE at >= $1 ORDER BY id")
            .bind(since).fetch_all(p).await?);
        let invoices: Vec<FinalizedInvoice> = on_pool!(self, p => sqlx::query_as(
            "SELECT i.id, i.number, i.subscription_id, i.period_start, i.period_end, i.currency, i.total_minor, i.finalized_at
             FROM invoices i WHERE i.finalized_at >= $1 ORDER BY i.id")
            .bind(since).fetch_all(p).await?);
        let mut new = 0;
        in_tx!(self, tx => {
            for (id, at, actor, action, target, detail) in &audit {
                let Some((_, ty)) = AUDIT_EVENTS.iter().find(|(a, _)| a == action) else { continue };
                let payload = envelope(ty, *at, serde_json::json!({ "actor_id": actor, "target": target, "detail": detail }));
                if record_event!(tx, &format!("audit:{id}"), *ty, &payload, now) {
                    new += 1;
                }
            }
            for (id, number, sub, start, end, currency, total, finalized) in &invoices {
                let payload = envelope("invoice.finalized", finalized.unwrap_or(now), serde_json::json!({
                    "invoice_id": id, "number": number, "subscription_id": sub, "period_start": start, "period_end": end,
                    "currency": currency, "total_minor": total,
                }));
                if record_event!(tx, &format!("invoice:{id}:finalized"), "invoice.finalized", &payload, now) {
                    new += 1;
                }
            }
        });
        Ok(new)
    }

    /// A sweep's saved position (`None` before its first run).
    pub async fn sweep_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> =
            on_pool!(self, p => sqlx::query_as("SELECT last_id FROM webhook_cursors WHERE name = $1").bind(name).fetch_optional(p).await?);
        Ok(row.map(|r| r.0))
    }

    /// Move a sweep's position forward (never back).
    pub async fn advance_sweep_cursor(&self, name: &str, to: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO webhook_cursors (name, last_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_id = CASE WHEN excluded.last_id > webhook_cursors.last_id
                                                        THEN excluded.last_id ELSE webhook_cursors.last_id END")
            .bind(name).bind(to).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Register an endpoint (audited in the same transaction).
    pub async fn create_webhook(&self, url: &str, secret: &str, events: &str, audit: &Audit, now: i64) -> Result<i64, StoreError> {
        let id = in_tx!(self, tx => {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO webhooks (url, secret, events, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                .bind(url).bind(secret).bind(events).bind(audit.actor_id).bind(now).fetch_one(&mut *tx).await?;
            let audit = Audit { target: format!("webhook:{id}"), ..audit.clone() };
            crate::audit::record_audit!(tx, audit, now);
            id
        });
        Ok(id)
    }

    /// Remove an endpoint and its delivery log (audited in the same transaction).
    pub async fn delete_webhook(&self, id: i64, audit: &Audit, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let n = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            crate::audit::record_audit!(tx, audit, now);
        });
        Ok(())
    }

    /// Every endpoint, newest first.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as("SELECT id, url, events, active, created_at FROM webhooks ORDER BY id DESC")
            .fetch_all(p).await?))
    }

    /// Deliveries due at `now`, each claimed for `lease` seconds (a second worker skips it; if
    /// this one dies, it is due again when the lease ends).
    pub async fn claim_due_deliveries(&self, now: i64, lease: i64, limit: i64) -> Result<Vec<DueDelivery>, StoreError> {
        let due: Vec<(i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, next_attempt_at FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2")
            .bind(now).bind(limit).fetch_all(p).await?);
        let mut claimed = Vec::new();
        for (id, at) in due {
            let n = on_pool!(self, p => sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE id = $1 AND next_attempt_at = $2 AND status = 'pending'")
                .bind(id).bind(at).bind(now + lease).execute(p).await?.rows_affected());
            if n == 1 {
                claimed.push(id);
            }
        }
        let mut out = Vec::with_capacity(claimed.len());
        for id in claimed {
            let d: DueDelivery = on_pool!(self, p => sqlx::query_as(
                "SELECT d.id, w.url, w.secret, e.id AS event_id, e.event_type, e.payload, d.attempts
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN webhook_events e ON e.id = d.event_id
                 WHERE d.id = $1")
                .bind(id).fetch_one(p).await?);
            out.push(d);
        }
        Ok(out)
    }

    /// Record an attempt's outcome.
    pub async fn finish_delivery(&self, id: i64, outcome: &DeliveryOutcome, now: i64) -> Result<(), StoreError> {
        let (status, code, error, next, delivered) = match outcome {
            DeliveryOutcome::Delivered { status } => ("delivered", Some(*status), None, now, Some(now)),
            DeliveryOutcome::Retry { status, error, next_attempt_at } => ("pending", *status, Some(error.as_str()), *next_attempt_at, None),
            DeliveryOutcome::Failed { status, error } => ("failed", *status, Some(error.as_str()), now, None),
        };
        on_pool!(self, p => sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_status = $3, last_error = $4,
                    next_attempt_at = $5, delivered_at = $6 WHERE id = $1")
            .bind(id).bind(status).bind(code).bind(error).bind(next).bind(delivered).execute(p).await?.rows_affected());
        Ok(())
    }

    /// An endpoint's delivery log, newest first.
    pub async fn webhook_deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT d.id, e.id AS event_id, e.event_type, d.status, d.attempts, d.last_status, d.last_error, d.next_attempt_at, d.delivered_at
             FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
             WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2")
            .bind(webhook_id).bind(limit).fetch_all(p).await?))
    }
}
