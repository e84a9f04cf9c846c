use serde::Serialize;

use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Store, StoreError};

/// An app's subscription to one API's plan.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Subscription {
    /// Id.
    pub id: i64,
    /// Subscribing app.
    pub app_id: i64,
    /// API.
    pub api_id: i64,
    /// Current plan.
    pub plan_id: i64,
    /// `active`, `past_due` or `canceled`.
    pub status: String,
    /// Periods start on this instant's day and time each month (unix seconds).
    pub billing_anchor: i64,
}

/// What the gateway enforces for one app on one API: the subscription joined with its plan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entitlement {
    /// Subscription id (the quota counter's identity).
    pub subscription_id: i64,
    /// API id.
    pub api_id: i64,
    /// Subscription status.
    pub status: String,
    /// Billing anchor (unix seconds).
    pub billing_anchor: i64,
    /// Plan id.
    pub plan_id: i64,
    /// API slug (a metrics label).
    pub api_slug: String,
    /// Plan slug, sent upstream as `X-Turnpike-Plan`.
    pub plan_slug: String,
    /// Sustained rate.
    pub rate_per_second: i64,
    /// Burst.
    pub burst: i64,
    /// Quota per period.
    pub monthly_quota: Option<i64>,
    /// `closed` or `open`: the plan's policy when the shared counter store is unreachable.
    pub redis_failure_policy: String,
    /// How long an `open` plan runs on local limits, seconds from the start of the outage.
    pub fail_open_seconds: i64,
}

const SUB_COLUMNS: &str = "id, app_id, api_id, plan_id, status, billing_anchor";

impl Store {
    /// Subscribe `app_id` to every public API's default plan (used when an app is created).
    /// Billing anchors start on the hour, so periods line up with the hourly usage buckets.
    pub async fn subscribe_defaults(&self, app_id: i64, now: i64) -> Result<u64, StoreError> {
        let anchor = crate::clock::hour_start(now);
        Ok(in_tx!(self, tx => {
            let n = sqlx::query(
                "INSERT INTO subscriptions (app_id, api_id, plan_id, billing_anchor, created_at)
                 SELECT $1, p.api_id, MIN(p.id), $2, $2 FROM plans p JOIN apis a ON a.id = p.api_id
                 WHERE p.is_default AND a.visibility = 'public' GROUP BY p.api_id
                 ON CONFLICT (app_id, api_id) DO NOTHING")
                .bind(app_id).bind(anchor).execute(&mut *tx).await?.rows_affected();
            record_change!(tx, ChangeKind::App, app_id.to_string(), now);
            n
        }))
    }

    /// Put `app_id` on `plan_id` for the plan's API, effective immediately. The billing anchor of
    /// an existing subscription is kept.
    pub async fn subscribe(&self, app_id: i64, plan_id: i64, now: i64) -> Result<Subscription, StoreError> {
        let anchor = crate::clock::hour_start(now);
        Ok(in_tx!(self, tx => {
            let row: Subscription = sqlx::query_as(&format!(
                "INSERT INTO subscriptions (app_id, api_id, plan_id, billing_anchor, created_at)
                 SELECT $1, api_id, id, $3, $3 FROM plans WHERE id = $2
                 ON CONFLICT (app_id, api_id) DO UPDATE SET plan_id = excluded.plan_id, status = 'active'
                 RETURNING {SUB_COLUMNS}"))
                .bind(app_id).bind(plan_id).bind(anchor).fetch_optional(&mut *tx).await?
                .ok_or(StoreError::NotFound)?;
            record_change!(tx, ChangeKind::App, app_id.to_string(), now);
            row
        }))
    }

    /// Set a subscription's status (`active`, `past_due`, `canceled`); gateways see it at once.
    pub async fn set_subscription_status(&self, subscription_id: i64, status: &str, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let app: Option<(i64,)> = sqlx::query_as("UPDATE subscriptions SET status = $2 WHERE id = $1 RETURNING app_id")
                .bind(subscription_id).bind(status).fetch_optional(&mut *tx).await?;
            let Some((app_id,)) = app else { return Err(StoreError::NotFound) };
            record_change!(tx, ChangeKind::App, app_id.to_string(), now);
        });
        Ok(())
    }

    /// The app's subscriptions.
    pub async fn list_subscriptions(&self, app_id: i64) -> Result<Vec<Subscription>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {SUB_COLUMNS} FROM subscriptions WHERE app_id = $1 ORDER BY api_id"))
            .bind(app_id).fetch_all(p).await?))
    }

    /// Everything the gateway enforces for `app_id`, one entry per subscribed API.
    pub async fn entitlements(&self, app_id: i64) -> Result<Vec<Entitlement>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT s.id AS subscription_id, s.api_id, s.status, s.billing_anchor, p.id AS plan_id, p.slug AS plan_slug, ap.slug AS api_slug,
                    p.rate_per_second, p.burst, p.monthly_quota, p.redis_failure_policy, p.fail_open_seconds
             FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN apis ap ON ap.id = s.api_id WHERE s.app_id = $1")
            .bind(app_id).fetch_all(p).await?))
    }
}
