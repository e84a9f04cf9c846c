//! Many catalog changes (APIs, plans, price versions) in **one** transaction, for the declarative
//! `turnpike admin apply`: either the database matches the file afterwards or nothing changed.
//! Every write goes through the same SQL as the single-change methods (the `insert_api!`,
//! `update_api!`, `create_plan_audited!`, `update_plan!` and `set_plan_price!` macros), each
//! with its change-log entry and its audit row.

use crate::apis::{insert_api, update_api, ApiRow};
use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::plans::{create_plan_audited, set_plan_price, update_plan};
use crate::{ApiSettings, Audit, NewPlan, NewPlanPrice, PlanLimits, Store, StoreError};

/// A plan an operation refers to: one that exists, or one created earlier in the same batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRef {
    /// A stored plan.
    Id(i64),
    /// The plan with this slug of the API with this slug (created earlier in the batch).
    Slugs(String, String),
}

/// One change of a catalog batch, with its audit row.
#[derive(Debug, Clone)]
pub enum CatalogOp {
    /// Create an API (and its document).
    CreateApi {
        /// Settings.
        settings: ApiSettings,
        /// The document's JSON text.
        openapi: Option<String>,
        /// Audit row (target: the new API).
        audit: Audit,
    },
    /// Replace an API's settings (and its document when `Some`).
    UpdateApi {
        /// API id.
        id: i64,
        /// Settings.
        settings: ApiSettings,
        /// The document's JSON text (`None`: keep the stored one).
        openapi: Option<String>,
        /// Audit row.
        audit: Audit,
    },
    /// Add a plan to the API with slug `api_slug`.
    CreatePlan {
        /// The API's slug (it may be created earlier in the batch).
        api_slug: String,
        /// The plan.
        plan: NewPlan,
        /// Outage policy (`None`: fail closed).
        fail_open_seconds: Option<i64>,
        /// Audit row (target: the new plan).
        audit: Audit,
    },
    /// Change a plan's limits and outage policy.
    UpdatePlan {
        /// Plan id.
        id: i64,
        /// Limits.
        limits: PlanLimits,
        /// Outage policy.
        fail_open_seconds: Option<i64>,
        /// Audit row.
        audit: Audit,
    },
    /// Append a price version.
    SetPrice {
        /// The plan.
        plan: PlanRef,
        /// The price.
        price: NewPlanPrice,
        /// Audit row (detail prefixed with the version).
        audit: Audit,
    },
    /// Delete a plan without billing history (refused with [`StoreError::Stale`] if it has some).
    DeletePlan {
        /// Plan id.
        id: i64,
        /// Audit row.
        audit: Audit,
    },
    /// Delete an API without billing history (refused with [`StoreError::Stale`] if it has some).
    DeleteApi {
        /// API id.
        id: i64,
        /// Audit row.
        audit: Audit,
    },
}

/// Whether a plan has subscriptions (current or pending), invoices or Stripe prices.
const PLAN_HISTORY: &str = "SELECT
    (SELECT COUNT(*) FROM subscriptions WHERE plan_id = $1 OR pending_plan_id = $1)
  + (SELECT COUNT(*) FROM invoices WHERE plan_id = $1)";
/// Whether an API has subscriptions, metered usage or plans with billing history.
const API_HISTORY: &str = "SELECT
    (SELECT COUNT(*) FROM subscriptions WHERE api_id = $1)
  + (SELECT COUNT(*) FROM usage_hourly WHERE api_id = $1)
  + (SELECT COUNT(*) FROM usage_daily WHERE api_id = $1)
  + (SELECT COUNT(*) FROM invoices WHERE plan_id IN (SELECT id FROM plans WHERE api_id = $1))";

impl Store {
    /// Whether plan `id` has billing history (subscriptions or invoices): such a plan is never
    /// deleted by the apply.
    pub async fn plan_has_billing_history(&self, id: i64) -> Result<bool, StoreError> {
        let (n,): (i64,) = on_pool!(self, p => sqlx::query_as(PLAN_HISTORY).bind(id).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// Whether API `id` has billing history (subscriptions, metered usage, invoices).
    pub async fn api_has_billing_history(&self, id: i64) -> Result<bool, StoreError> {
        let (n,): (i64,) = on_pool!(self, p => sqlx::query_as(API_HISTORY).bind(id).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// Apply `ops` in order in one transaction: all of them or none. A taken slug is
    /// [`StoreError::Conflict`]; deleting something that gained billing history meanwhile is
    /// [`StoreError::Stale`]; either way nothing is kept.
    pub async fn apply_catalog(&self, ops: &[CatalogOp], now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            for op in ops {
                match op {
                    CatalogOp::CreateApi { settings, openapi, audit } => {
                        let _row: ApiRow = insert_api!(tx, settings, openapi.as_deref(), audit, now);
                    }
                    CatalogOp::UpdateApi { id, settings, openapi, audit } => {
                        let _row: ApiRow = update_api!(tx, *id, settings, openapi.as_deref(), Some(audit), now);
                    }
                    CatalogOp::CreatePlan { api_slug, plan, fail_open_seconds, audit } => {
                        let (api_id,): (i64,) = sqlx::query_as("SELECT id FROM apis WHERE slug = $1")
                            .bind(api_slug).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
                        let _plan: crate::Plan = create_plan_audited!(tx, api_id, plan, *fail_open_seconds, audit, now);
                    }
                    CatalogOp::UpdatePlan { id, limits, fail_open_seconds, audit } => {
                        let _plan: crate::Plan = update_plan!(tx, *id, limits, *fail_open_seconds, Some(audit), now);
                    }
                    CatalogOp::SetPrice { plan, price, audit } => {
                        let plan_id = match plan {
                            PlanRef::Id(id) => *id,
                            PlanRef::Slugs(api, plan) => {
                                let (id,): (i64,) = sqlx::query_as(
                                    "SELECT p.id FROM plans p JOIN apis a ON a.id = p.api_id WHERE a.slug = $1 AND p.slug = $2")
                                    .bind(api).bind(plan).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
                                id
                            }
                        };
                        let audit = audit.on(format!("plan:{plan_id}"));
                        let _row: crate::PlanPriceRow = set_plan_price!(tx, plan_id, price, Some(&audit), now);
                    }
                    CatalogOp::DeletePlan { id, audit } => {
                        let (n,): (i64,) = sqlx::query_as(PLAN_HISTORY).bind(*id).fetch_one(&mut *tx).await?;
                        if n > 0 {
                            return Err(StoreError::Stale);
                        }
                        let api: Option<(i64,)> = sqlx::query_as("DELETE FROM plans WHERE id = $1 RETURNING api_id")
                            .bind(*id).fetch_optional(&mut *tx).await?;
                        let Some((api_id,)) = api else { return Err(StoreError::NotFound) };
                        record_change!(tx, ChangeKind::Api, api_id.to_string(), now);
                        crate::audit::record_audit!(tx, audit, now);
                    }
                    CatalogOp::DeleteApi { id, audit } => {
                        let (n,): (i64,) = sqlx::query_as(API_HISTORY).bind(*id).fetch_one(&mut *tx).await?;
                        if n > 0 {
                            return Err(StoreError::Stale);
                        }
                        let gone = sqlx::query("DELETE FROM apis WHERE id = $1").bind(*id).execute(&mut *tx).await?.rows_affected();
                        if gone == 0 {
                            return Err(StoreError::NotFound);
                        }
                        record_change!(tx, ChangeKind::Api, id.to_string(), now);
                        crate::audit::record_audit!(tx, audit, now);
                    }
                }
            }
        });
        Ok(())
    }
}
