use serde::Serialize;

use crate::audit::record_audit_opt;
use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

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
    /// A plan change waiting for the period end (a downgrade).
    pub pending_plan_id: Option<i64>,
    /// Cancel when the current period ends.
    pub cancel_at_period_end: bool,
    /// When it was canceled (the last period ends here).
    pub canceled_at: Option<i64>,
    /// Created (unix seconds): free trials count from here.
    pub created_at: i64,
    /// Bumped by every write to the plan or status: the ledger's writes are conditional on the
    /// revision it read ([`Store::change_subscription`]).
    pub revision: i64,
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

const SUB_COLUMNS: &str =
    "id, app_id, api_id, plan_id, status, billing_anchor, pending_plan_id, cancel_at_period_end, canceled_at, created_at, revision";

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

    /// Put `app_id` on `plan_id` for the plan's API, effective immediately, without any billing
    /// adjustment: a new subscription starts on the hour; a live one keeps its anchor and just
    /// changes plan (an operator's and the tests' tool). A **canceled** subscription is not taken
    /// up again here ([`StoreError::Conflict`]): that is a billing event, and the ledger's
    /// `subscribe` records what it costs. Unknown plan: [`StoreError::NotFound`].
    pub async fn subscribe(&self, app_id: i64, plan_id: i64, now: i64) -> Result<Subscription, StoreError> {
        self.subscribe_audited(app_id, plan_id, None, now).await
    }

    /// [`Store::subscribe`] and `audit` (target: the subscription), in one transaction.
    pub async fn subscribe_audited(&self, app_id: i64, plan_id: i64, audit: Option<&Audit>, now: i64) -> Result<Subscription, StoreError> {
        let anchor = crate::clock::hour_start(now);
        Ok(in_tx!(self, tx => {
            let row: Option<Subscription> = sqlx::query_as(&format!(
                "INSERT INTO subscriptions (app_id, api_id, plan_id, billing_anchor, created_at)
                 SELECT $1, api_id, id, $3, $3 FROM plans WHERE id = $2
                 ON CONFLICT (app_id, api_id) DO UPDATE SET plan_id = excluded.plan_id, pending_plan_id = NULL,
                    revision = subscriptions.revision + 1
                 WHERE subscriptions.status <> 'canceled'
                 RETURNING {SUB_COLUMNS}"))
                .bind(app_id).bind(plan_id).bind(anchor).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                let plan: Option<(i64,)> = sqlx::query_as("SELECT id FROM plans WHERE id = $1").bind(plan_id).fetch_optional(&mut *tx).await?;
                return Err(if plan.is_some() { StoreError::Conflict } else { StoreError::NotFound });
            };
            record_change!(tx, ChangeKind::App, app_id.to_string(), now);
            record_audit_opt!(tx, audit.map(|a| a.on(format!("subscription:{}", row.id))), now);
            row
        }))
    }

    /// Set a subscription's status (`active`, `past_due`, `canceled`); gateways see it at once.
    pub async fn set_subscription_status(&self, subscription_id: i64, status: &str, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let app: Option<(i64,)> = sqlx::query_as(
                "UPDATE subscriptions SET status = $2, revision = revision + 1 WHERE id = $1 RETURNING app_id")
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

/// A base-fee adjustment line for a subscription's period (proration, trial, cancellation).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Adjustment {
    /// Id.
    pub id: i64,
    /// Subscription.
    pub subscription_id: i64,
    /// The period it belongs to (its start).
    pub period_start: i64,
    /// For people.
    pub description: String,
    /// Signed minor units.
    pub amount_minor: i64,
    /// When recorded.
    pub created_at: i64,
}

/// A subscription's plan change, as applied in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChange {
    /// Switch to the plan now.
    Now(i64),
    /// Switch when the current period ends (`None` clears a scheduled change).
    AtPeriodEnd(Option<i64>),
    /// Cancel now.
    CancelNow,
    /// Cancel when the current period ends (`false` undoes it).
    CancelAtPeriodEnd(bool),
    /// Take a canceled subscription up again on `plan`, now; `Some(anchor)` starts a new billing
    /// period there (the old periods are all invoiced), `None` keeps the current period.
    Resubscribe { plan: i64, anchor: Option<i64> },
    /// Keep the plan: clear a scheduled plan change and a scheduled cancellation.
    Resume,
}

impl Store {
    /// A subscription by id.
    pub async fn get_subscription(&self, subscription_id: i64) -> Result<Subscription, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = $1"))
            .bind(subscription_id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// A subscription only if one of `account_id`'s apps holds it (otherwise [`StoreError::NotFound`]).
    pub async fn account_subscription(&self, account_id: i64, subscription_id: i64) -> Result<Subscription, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {} FROM subscriptions s JOIN apps a ON a.id = s.app_id WHERE s.id = $1 AND a.account_id = $2",
            SUB_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")))
            .bind(subscription_id).bind(account_id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Every subscription of every app of `account_id`.
    pub async fn account_subscriptions(&self, account_id: i64) -> Result<Vec<Subscription>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {} FROM subscriptions s JOIN apps a ON a.id = s.app_id WHERE a.account_id = $1 ORDER BY s.app_id, s.api_id",
            SUB_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")))
            .bind(account_id).fetch_all(p).await?))
    }

    /// Every subscription (the billing worker walks them).
    pub async fn all_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!("SELECT {SUB_COLUMNS} FROM subscriptions ORDER BY id")).fetch_all(p).await?))
    }

    /// Apply `change` to a subscription and record `adjustments` (period start, description,
    /// signed amount) in one transaction, **only if the subscription is still at `revision`** (the
    /// one the caller read and priced the change from). Another write in between (a concurrent
    /// plan change, a webhook, a period end) makes this [`StoreError::Stale`] and records nothing;
    /// a change that does not apply to the subscription's state is [`StoreError::NotFound`]. The
    /// change log tells gateways at once. `audit`, when given, is written in the same transaction
    /// (target: the subscription).
    pub async fn change_subscription(
        &self,
        subscription_id: i64,
        revision: i64,
        change: PlanChange,
        adjustments: &[(i64, String, i64)],
        audit: Option<&Audit>,
        now: i64,
    ) -> Result<Subscription, StoreError> {
        Ok(in_tx!(self, tx => {
            let q = match change {
                PlanChange::Now(plan) => sqlx::query(
                    "UPDATE subscriptions SET plan_id = $3, pending_plan_id = NULL, cancel_at_period_end = FALSE, status = 'active', canceled_at = NULL,
                       revision = revision + 1
                     WHERE id = $1 AND revision = $2 AND status <> 'canceled' AND EXISTS (SELECT 1 FROM plans p WHERE p.id = $3 AND p.api_id = subscriptions.api_id)")
                    .bind(subscription_id).bind(revision).bind(plan),
                PlanChange::AtPeriodEnd(plan) => sqlx::query(
                    "UPDATE subscriptions SET pending_plan_id = $3, revision = revision + 1 WHERE id = $1 AND revision = $2 AND status <> 'canceled'
                     AND ($3 IS NULL OR EXISTS (SELECT 1 FROM plans p WHERE p.id = $3 AND p.api_id = subscriptions.api_id))")
                    .bind(subscription_id).bind(revision).bind(plan),
                PlanChange::CancelNow => sqlx::query(
                    "UPDATE subscriptions SET status = 'canceled', canceled_at = $3, pending_plan_id = NULL, cancel_at_period_end = FALSE,
                       revision = revision + 1
                     WHERE id = $1 AND revision = $2 AND status <> 'canceled'")
                    .bind(subscription_id).bind(revision).bind(now),
                PlanChange::CancelAtPeriodEnd(on) => sqlx::query(
                    "UPDATE subscriptions SET cancel_at_period_end = $3, revision = revision + 1 WHERE id = $1 AND revision = $2 AND status <> 'canceled'")
                    .bind(subscription_id).bind(revision).bind(on),
                PlanChange::Resume => sqlx::query(
                    "UPDATE subscriptions SET cancel_at_period_end = FALSE, pending_plan_id = NULL, revision = revision + 1
                     WHERE id = $1 AND revision = $2 AND status <> 'canceled'")
                    .bind(subscription_id).bind(revision),
                PlanChange::Resubscribe { plan, anchor } => sqlx::query(
                    "UPDATE subscriptions SET plan_id = $3, status = 'active', canceled_at = NULL, pending_plan_id = NULL,
                       cancel_at_period_end = FALSE, billing_anchor = COALESCE($4, billing_anchor), revision = revision + 1
                     WHERE id = $1 AND revision = $2 AND status = 'canceled'
                       AND EXISTS (SELECT 1 FROM plans p WHERE p.id = $3 AND p.api_id = subscriptions.api_id)")
                    .bind(subscription_id).bind(revision).bind(plan).bind(anchor),
            };
            if q.execute(&mut *tx).await?.rows_affected() == 0 {
                let now_at: Option<(i64,)> = sqlx::query_as("SELECT revision FROM subscriptions WHERE id = $1")
                    .bind(subscription_id).fetch_optional(&mut *tx).await?;
                return Err(match now_at {
                    Some((r,)) if r != revision => StoreError::Stale,
                    _ => StoreError::NotFound,
                });
            }
            for (period_start, description, amount) in adjustments {
                sqlx::query("INSERT INTO billing_adjustments (subscription_id, period_start, description, amount_minor, created_at)
                             VALUES ($1, $2, $3, $4, $5)")
                    .bind(subscription_id).bind(period_start).bind(description).bind(amount).bind(now).execute(&mut *tx).await?;
            }
            let row: Subscription = sqlx::query_as(&format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = $1"))
                .bind(subscription_id).fetch_one(&mut *tx).await?;
            record_change!(tx, ChangeKind::App, row.app_id.to_string(), now);
            record_audit_opt!(tx, audit.map(|a| a.on(format!("subscription:{subscription_id}"))), now);
            row
        }))
    }

    /// At a period end (`period_end`): apply a scheduled plan change or cancellation. Idempotent:
    /// does nothing when nothing is scheduled. Returns whether anything changed.
    pub async fn apply_period_end(&self, subscription_id: i64, period_end: i64, now: i64) -> Result<bool, StoreError> {
        Ok(in_tx!(self, tx => {
            let a = sqlx::query(
                "UPDATE subscriptions SET status = 'canceled', canceled_at = $2, cancel_at_period_end = FALSE, pending_plan_id = NULL,
                   revision = revision + 1
                 WHERE id = $1 AND cancel_at_period_end AND status <> 'canceled'")
                .bind(subscription_id).bind(period_end).execute(&mut *tx).await?.rows_affected();
            let b = sqlx::query(
                "UPDATE subscriptions SET plan_id = pending_plan_id, pending_plan_id = NULL, revision = revision + 1
                 WHERE id = $1 AND pending_plan_id IS NOT NULL")
                .bind(subscription_id).execute(&mut *tx).await?.rows_affected();
            if a + b > 0 {
                let (app_id,): (i64,) = sqlx::query_as("SELECT app_id FROM subscriptions WHERE id = $1")
                    .bind(subscription_id).fetch_one(&mut *tx).await?;
                record_change!(tx, ChangeKind::App, app_id.to_string(), now);
            }
            a + b > 0
        }))
    }

    /// Adjustments recorded for one period of a subscription, oldest first.
    pub async fn adjustments(&self, subscription_id: i64, period_start: i64) -> Result<Vec<Adjustment>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT id, subscription_id, period_start, description, amount_minor, created_at FROM billing_adjustments
             WHERE subscription_id = $1 AND period_start = $2 ORDER BY id")
            .bind(subscription_id).bind(period_start).fetch_all(p).await?))
    }
}
