//! Queries behind the admin revenue reports; the figures are aggregated in
//! `turnpike_ledger` from these rows (one SQL text for both backends).

use serde::Serialize;

use crate::db::on_pool;
use crate::{Store, StoreError};

/// One invoice next to the gateway's usage buckets for the same subscription and period.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DriftRow {
    /// Invoice.
    pub invoice_id: i64,
    /// Its number.
    pub number: Option<String>,
    /// Billable requests on the invoice.
    pub usage_quantity: i64,
    /// `admitted` summed over the period's buckets now.
    pub admitted: i64,
    /// `status_5xx` summed over the period's buckets now.
    pub status_5xx: i64,
    /// The price version's billable rule (`None`: the default).
    pub billable: Option<String>,
}

impl Store {
    /// Every non-void invoice with the usage buckets' current totals for its period.
    pub async fn drift_rows(&self) -> Result<Vec<DriftRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT i.id AS invoice_id, i.number, i.usage_quantity,
                    CAST(COALESCE((SELECT SUM(u.admitted) FROM usage_hourly u WHERE u.subscription_id = i.subscription_id
                        AND u.hour >= i.period_start AND u.hour < i.period_end), 0) AS BIGINT) AS admitted,
                    CAST(COALESCE((SELECT SUM(u.status_5xx) FROM usage_hourly u WHERE u.subscription_id = i.subscription_id
                        AND u.hour >= i.period_start AND u.hour < i.period_end), 0) AS BIGINT) AS status_5xx,
                    pp.billable
             FROM invoices i LEFT JOIN plan_prices pp ON pp.id = i.plan_price_id
             WHERE i.status <> 'void' ORDER BY i.id")
            .fetch_all(p).await?))
    }

    /// Gateway usage not yet on any invoice: `(admitted, status_5xx)` of buckets in `[from, to)`.
    pub async fn usage_totals_between(&self, from: i64, to: i64) -> Result<(i64, i64), StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(admitted), 0) AS BIGINT), CAST(COALESCE(SUM(status_5xx), 0) AS BIGINT)
             FROM usage_hourly WHERE hour >= $1 AND hour < $2")
            .bind(from).bind(to).fetch_one(p).await?))
    }
}
