//! Stripe as a mirror the worker converges (issue #16): what Stripe holds for each Stripe-backed
//! subscription (`stripe_subscriptions.stripe_*`, set by webhooks and by accepted pushes), the
//! subscriptions whose local state differs from it, and the catalogue of Stripe Prices (one per
//! paid plan price version, `stripe_prices`).
//!
//! Page handlers never call Stripe for a lifecycle change: they change the local subscription
//! (which bumps its `revision`), and the worker pushes the difference with an `Idempotency-Key`
//! derived from (subscription, revision), then records it here. A crash between the push and the
//! record repeats the same request with the same key, which Stripe answers without acting twice.

use serde::Serialize;

use crate::db::on_pool;
use crate::{Plan, Store, StoreError};

/// A Stripe-backed subscription whose local state Stripe does not hold yet.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StripeSyncDue {
    /// Local subscription.
    pub subscription_id: i64,
    /// Stripe subscription.
    pub stripe_subscription_id: String,
    /// Local revision (part of the idempotency key).
    pub revision: i64,
    /// Local status.
    pub status: String,
    /// Local: cancels at the period end.
    pub cancel_at_period_end: bool,
    /// Local plan.
    pub plan_id: i64,
    /// The plan Stripe bills, as last known.
    pub stripe_plan_id: Option<i64>,
}

/// One Stripe Price of the catalogue.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StripePrice {
    /// `turnpike_plan_{plan_id}_v{version}`.
    pub lookup_key: String,
    /// Local plan.
    pub plan_id: i64,
    /// Price version (0: the plan's legacy columns, no stored version).
    pub version: i64,
    /// Stripe Product (`turnpike_plan_{plan_id}`).
    pub stripe_product_id: String,
    /// Stripe Price.
    pub stripe_price_id: String,
    /// False once archived at Stripe.
    pub active: bool,
}

const PRICE_COLUMNS: &str = "lookup_key, plan_id, version, stripe_product_id, stripe_price_id, active";

impl Store {
    /// Stripe-backed subscriptions whose local (canceled?, cancel at period end, plan) differs
    /// from what Stripe holds, oldest change first. A subscription canceled at Stripe is done: it
    /// cannot be revived there (a new subscription goes through Checkout).
    pub async fn stripe_sync_due(&self, limit: i64) -> Result<Vec<StripeSyncDue>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT s.id AS subscription_id, ss.stripe_subscription_id, s.revision, s.status, s.cancel_at_period_end, s.plan_id,
                    ss.stripe_plan_id
             FROM stripe_subscriptions ss JOIN subscriptions s ON s.id = ss.subscription_id
             WHERE ss.stripe_subscription_id IS NOT NULL AND COALESCE(ss.stripe_status, '') <> 'canceled'
               AND (s.status = 'canceled' OR s.cancel_at_period_end <> ss.stripe_cancel_at_period_end
                    OR s.plan_id <> COALESCE(ss.stripe_plan_id, s.plan_id))
             ORDER BY ss.updated_at, s.id LIMIT $1")
            .bind(limit).fetch_all(p).await?))
    }

    /// Record what Stripe holds after an accepted push of `revision`. Events created before `now`
    /// become stale for this subscription: Stripe's echo of an older push, arriving late, must not
    /// undo what this push sent.
    pub async fn record_stripe_pushed(
        &self,
        subscription_id: i64,
        revision: i64,
        stripe_status: &str,
        cancel_at_period_end: bool,
        plan_id: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE stripe_subscriptions SET stripe_status = $2, stripe_cancel_at_period_end = $3, stripe_plan_id = $4,
               pushed_revision = $5, updated_at = $6,
               last_event_created = CASE WHEN last_event_created < $6 THEN $6 ELSE last_event_created END
             WHERE subscription_id = $1")
            .bind(subscription_id).bind(stripe_status).bind(cancel_at_period_end).bind(plan_id).bind(revision).bind(now)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// The last revision pushed to Stripe for a subscription (`None`: never pushed).
    pub async fn stripe_pushed_revision(&self, subscription_id: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = on_pool!(self, p => sqlx::query_as(
            "SELECT pushed_revision FROM stripe_subscriptions WHERE subscription_id = $1").bind(subscription_id).fetch_optional(p).await?);
        Ok(row.and_then(|r| r.0))
    }

    /// Paid plans (a base fee or a usage price above zero) with their current price version (0 when the plan has
    /// none stored): what the Stripe catalogue must hold.
    pub async fn stripe_catalogue_plans(&self) -> Result<Vec<(Plan, i64)>, StoreError> {
        let plans: Vec<Plan> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, api_id, slug, name, rate_per_second, burst, monthly_quota, currency, flat_price_minor,
                    unit_price_minor_per_1000, is_default
             FROM plans WHERE flat_price_minor > 0 OR unit_price_minor_per_1000 > 0 ORDER BY id").fetch_all(p).await?);
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            let v: (Option<i64>,) = on_pool!(self, p => sqlx::query_as(
                "SELECT MAX(version) FROM plan_prices WHERE plan_id = $1").bind(plan.id).fetch_one(p).await?);
            out.push((plan, v.0.unwrap_or(0)));
        }
        Ok(out)
    }

    /// The catalogue entry for a lookup key.
    pub async fn stripe_price(&self, lookup_key: &str) -> Result<Option<StripePrice>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!("SELECT {PRICE_COLUMNS} FROM stripe_prices WHERE lookup_key = $1"))
            .bind(lookup_key).fetch_optional(p).await?))
    }

    /// Record a Price Stripe holds (first record wins).
    pub async fn record_stripe_price(&self, price: &StripePrice, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO stripe_prices (lookup_key, plan_id, version, stripe_product_id, stripe_price_id, active, synced_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (lookup_key) DO NOTHING")
            .bind(&price.lookup_key).bind(price.plan_id).bind(price.version).bind(&price.stripe_product_id)
            .bind(&price.stripe_price_id).bind(price.active).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Active catalogue Prices of `plan_id` older than `current_version`: to archive.
    pub async fn stripe_prices_superseded(&self, plan_id: i64, current_version: i64) -> Result<Vec<StripePrice>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {PRICE_COLUMNS} FROM stripe_prices WHERE plan_id = $1 AND version < $2 AND active ORDER BY version"))
            .bind(plan_id).bind(current_version).fetch_all(p).await?))
    }

    /// Mark a catalogue Price archived (Stripe accepted `active=false`).
    pub async fn archive_stripe_price(&self, lookup_key: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("UPDATE stripe_prices SET active = FALSE, synced_at = $2 WHERE lookup_key = $1")
            .bind(lookup_key).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }
}

/// A finalized local invoice of a Stripe-billed subscription, for the drift check against Stripe.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StripeDriftCandidate {
    /// Local invoice.
    pub invoice_id: i64,
    /// Local subscription.
    pub subscription_id: i64,
    /// Period start (unix seconds).
    pub period_start: i64,
    /// Period end (unix seconds, exclusive).
    pub period_end: i64,
    /// The Stripe customer billed.
    pub customer_id: String,
    /// The invoice's currency (ISO 4217, lower case).
    pub currency: String,
    /// The invoice's number.
    pub number: Option<String>,
    /// The subscribed app's name.
    pub app_name: String,
    /// Its developer's email.
    pub email: String,
}

impl Store {
    /// Finalized (open or paid) invoices of Stripe-billed subscriptions for periods inside
    /// `[from, until)`, by subscription then period.
    pub async fn stripe_drift_candidates(&self, from: i64, until: i64) -> Result<Vec<StripeDriftCandidate>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT i.id AS invoice_id, i.subscription_id, i.period_start, i.period_end, ss.customer_id, i.currency, i.number,
                    a.name AS app_name, ac.email
             FROM invoices i JOIN stripe_subscriptions ss ON ss.subscription_id = i.subscription_id
             JOIN subscriptions s ON s.id = i.subscription_id JOIN apps a ON a.id = s.app_id JOIN accounts ac ON ac.id = a.account_id
             WHERE i.status IN ('open', 'paid') AND i.finalized_at IS NOT NULL AND ss.customer_id IS NOT NULL
               AND i.period_start >= $1 AND i.period_end <= $2
             ORDER BY i.subscription_id, i.period_start")
            .bind(from).bind(until).fetch_all(p).await?))
    }
}

/// Refunds Stripe reported in a window, per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StripeRefundTotal {
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// Refunded, minor units.
    pub refunded: i64,
    /// Charges refunded (fully or in part).
    pub charges: i64,
}

impl Store {
    /// Refunds reported by `charge.refunded` whose latest refund falls in `[from, until)`, per
    /// currency (the revenue reports subtract these).
    pub async fn stripe_refund_totals(&self, from: i64, until: i64) -> Result<Vec<StripeRefundTotal>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT currency, CAST(SUM(amount_refunded) AS BIGINT) AS refunded, COUNT(*) AS charges FROM stripe_refunds
             WHERE refunded_at >= $1 AND refunded_at < $2 GROUP BY currency ORDER BY currency")
            .bind(from).bind(until).fetch_all(p).await?))
    }
}

/// Credit notes Stripe reported in a window, per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StripeCreditTotal {
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// Credited beyond refunds, minor units.
    pub credited: i64,
    /// Credit notes (not void).
    pub notes: i64,
}

impl Store {
    /// What issued (not void) credit notes created in `[from, until)` took off invoices beyond
    /// their refunds, per currency (refunds are in [`Store::stripe_refund_totals`]).
    pub async fn stripe_credit_totals(&self, from: i64, until: i64) -> Result<Vec<StripeCreditTotal>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT currency, CAST(SUM(credited) AS BIGINT) AS credited, COUNT(*) AS notes FROM stripe_credit_notes
             WHERE status = 'issued' AND created_at >= $1 AND created_at < $2 GROUP BY currency ORDER BY currency")
            .bind(from).bind(until).fetch_all(p).await?))
    }
}
