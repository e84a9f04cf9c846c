//! Finalized invoices and their lines. Finalizing is exactly-once: the invoice row is inserted
//! with `ON CONFLICT (subscription_id, period_start) DO NOTHING` and, only if it was new, numbered
//! from the one-row `invoice_counter` in the same transaction, so two workers (or two runs)
//! produce one invoice and numbers have no gaps.

use serde::Serialize;

use crate::db::{in_tx, on_pool};
use crate::{Audit, Store, StoreError};

/// An invoice.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InvoiceRow {
    /// Id.
    pub id: i64,
    /// `TP-000001`…
    pub number: Option<String>,
    /// Subscription.
    pub subscription_id: i64,
    /// Period start (unix seconds).
    pub period_start: i64,
    /// Period end (exclusive).
    pub period_end: i64,
    /// Currency code.
    pub currency: String,
    /// Total, minor units.
    pub total_minor: i64,
    /// `open`, `paid`, `void` (`draft` is never stored: drafts are computed live).
    pub status: String,
    /// Plan used.
    pub plan_id: Option<i64>,
    /// Price version used (`plan_prices.id`), if the plan had a stored price.
    pub plan_price_id: Option<i64>,
    /// Billable requests invoiced.
    pub usage_quantity: i64,
    /// Payment due.
    pub due_at: Option<i64>,
    /// Paid.
    pub paid_at: Option<i64>,
    /// Finalized.
    pub finalized_at: Option<i64>,
    /// Created.
    pub created_at: i64,
}

/// An invoice line.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InvoiceLineRow {
    /// Id.
    pub id: i64,
    /// Invoice.
    pub invoice_id: i64,
    /// Order on the invoice.
    pub line_no: i64,
    /// `fee`, `usage` or `adjustment`.
    pub kind: String,
    /// For people.
    pub description: String,
    /// Units.
    pub quantity: i64,
    /// Unit price, minor units, per `unit_per`.
    pub unit_price_minor: Option<i64>,
    /// Units the unit price is for.
    pub unit_per: Option<i64>,
    /// Amount, minor units.
    pub amount_minor: i64,
    /// Usage buckets covered: `hour_from <= hour < hour_to` of the subscription's usage rows.
    pub hour_from: Option<i64>,
    /// See `hour_from`.
    pub hour_to: Option<i64>,
    /// Sum of `admitted` over those buckets.
    pub source_admitted: Option<i64>,
    /// Sum of `status_5xx` over those buckets.
    pub source_5xx: Option<i64>,
}

/// A line to store.
#[derive(Debug, Clone)]
pub struct NewInvoiceLine {
    /// `fee`, `usage` or `adjustment`.
    pub kind: String,
    /// For people.
    pub description: String,
    /// Units.
    pub quantity: i64,
    /// Unit price.
    pub unit_price_minor: Option<i64>,
    /// Per.
    pub unit_per: Option<i64>,
    /// Amount.
    pub amount_minor: i64,
    /// Buckets covered (usage lines).
    pub buckets: Option<(i64, i64)>,
    /// Bucket totals `(admitted, 5xx)` (usage lines).
    pub source: Option<(i64, i64)>,
}

/// An invoice to finalize.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    /// Subscription.
    pub subscription_id: i64,
    /// Period start.
    pub period_start: i64,
    /// Period end.
    pub period_end: i64,
    /// Currency.
    pub currency: String,
    /// Total.
    pub total_minor: i64,
    /// Plan.
    pub plan_id: i64,
    /// Price version.
    pub plan_price_id: Option<i64>,
    /// Billable requests.
    pub usage_quantity: i64,
    /// Due date.
    pub due_at: i64,
    /// Lines in order.
    pub lines: Vec<NewInvoiceLine>,
}

/// An invoice with who it belongs to, for lists and reports.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvoiceSummary {
    /// Id.
    pub id: i64,
    /// Number.
    pub number: Option<String>,
    /// Status.
    pub status: String,
    /// Period start.
    pub period_start: i64,
    /// Period end.
    pub period_end: i64,
    /// Currency.
    pub currency: String,
    /// Total.
    pub total_minor: i64,
    /// Billable requests.
    pub usage_quantity: i64,
    /// Due.
    pub due_at: Option<i64>,
    /// Paid.
    pub paid_at: Option<i64>,
    /// Subscription.
    pub subscription_id: i64,
    /// API id.
    pub api_id: i64,
    /// API name.
    pub api_name: String,
    /// Plan id.
    pub plan_id: i64,
    /// Plan name.
    pub plan_name: String,
    /// App name.
    pub app_name: String,
    /// Owner.
    pub account_id: i64,
    /// Owner's email.
    pub email: String,
}

const INVOICE_COLUMNS: &str =
    "id, number, subscription_id, period_start, period_end, currency, total_minor, status, plan_id, plan_price_id, \
                               usage_quantity, due_at, paid_at, finalized_at, created_at";
const LINE_COLUMNS: &str =
    "id, invoice_id, line_no, kind, description, quantity, unit_price_minor, unit_per, amount_minor, hour_from, hour_to, \
                            source_admitted, source_5xx";
const SUMMARY_SELECT: &str =
    "SELECT i.id, i.number, i.status, i.period_start, i.period_end, i.currency, i.total_minor, i.usage_quantity, i.due_at, \
     i.paid_at, i.subscription_id, s.api_id, apis.name AS api_name, COALESCE(i.plan_id, s.plan_id) AS plan_id, p.name AS plan_name, \
     a.name AS app_name, a.account_id, acc.email
     FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id JOIN apps a ON a.id = s.app_id
     JOIN accounts acc ON acc.id = a.account_id JOIN apis ON apis.id = s.api_id
     JOIN plans p ON p.id = COALESCE(i.plan_id, s.plan_id)";

/// `TP-000042`.
pub fn invoice_number(n: i64) -> String {
    format!("TP-{n:06}")
}

impl Store {
    /// Finalize an invoice exactly once per (subscription, period start). Returns the invoice and
    /// whether this call created it; a second call (or a concurrent one) returns the existing one
    /// and consumes no number. A zero-total invoice is `paid` at once, others `open`.
    pub async fn finalize_invoice(&self, inv: &NewInvoice, now: i64) -> Result<(InvoiceRow, bool), StoreError> {
        let status = if inv.total_minor == 0 { "paid" } else { "open" };
        let paid_at = (inv.total_minor == 0).then_some(now);
        let created: Option<InvoiceRow> = in_tx!(self, tx => {
            let id: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO invoices (subscription_id, period_start, period_end, currency, total_minor, status, created_at, plan_id,
                    plan_price_id, usage_quantity, due_at, paid_at, finalized_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $7)
                 ON CONFLICT (subscription_id, period_start) DO NOTHING RETURNING id")
                .bind(inv.subscription_id).bind(inv.period_start).bind(inv.period_end).bind(&inv.currency).bind(inv.total_minor)
                .bind(status).bind(now).bind(inv.plan_id).bind(inv.plan_price_id).bind(inv.usage_quantity).bind(inv.due_at).bind(paid_at)
                .fetch_optional(&mut *tx).await?;
            match id {
                None => None,
                Some((id,)) => {
                    let (n,): (i64,) = sqlx::query_as("UPDATE invoice_counter SET last = last + 1 WHERE id = 1 RETURNING last")
                        .fetch_one(&mut *tx).await?;
                    sqlx::query("UPDATE invoices SET number = $2 WHERE id = $1").bind(id).bind(invoice_number(n)).execute(&mut *tx).await?;
                    for (i, l) in inv.lines.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO invoice_lines (invoice_id, line_no, kind, description, quantity, unit_price_minor, unit_per, amount_minor,
                                hour_from, hour_to, source_admitted, source_5xx)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                            .bind(id).bind(i64::try_from(i).unwrap_or(i64::MAX)).bind(&l.kind).bind(&l.description).bind(l.quantity)
                            .bind(l.unit_price_minor).bind(l.unit_per).bind(l.amount_minor)
                            .bind(l.buckets.map(|b| b.0)).bind(l.buckets.map(|b| b.1))
                            .bind(l.source.map(|s| s.0)).bind(l.source.map(|s| s.1))
                            .execute(&mut *tx).await?;
                    }
                    let row: InvoiceRow = sqlx::query_as(&format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"))
                        .bind(id).fetch_one(&mut *tx).await?;
                    Some(row)
                }
            }
        });
        match created {
            Some(row) => Ok((row, true)),
            None => {
                let row: InvoiceRow = on_pool!(self, p => sqlx::query_as(&format!(
                    "SELECT {INVOICE_COLUMNS} FROM invoices WHERE subscription_id = $1 AND period_start = $2"))
                    .bind(inv.subscription_id).bind(inv.period_start).fetch_one(p).await?);
                Ok((row, false))
            }
        }
    }

    /// An invoice by id.
    pub async fn get_invoice(&self, id: i64) -> Result<InvoiceRow, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// An invoice summary, only if `account_id` owns it (otherwise [`StoreError::NotFound`]).
    pub async fn account_invoice(&self, account_id: i64, id: i64) -> Result<InvoiceSummary, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("{SUMMARY_SELECT} WHERE i.id = $1 AND a.account_id = $2"))
            .bind(id).bind(account_id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// An invoice summary by id (admin).
    pub async fn invoice_summary(&self, id: i64) -> Result<InvoiceSummary, StoreError> {
        on_pool!(self, p => sqlx::query_as(&format!("{SUMMARY_SELECT} WHERE i.id = $1"))
            .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// The account's invoices, newest first.
    pub async fn account_invoices(&self, account_id: i64) -> Result<Vec<InvoiceSummary>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!("{SUMMARY_SELECT} WHERE a.account_id = $1 ORDER BY i.period_start DESC, i.id DESC"))
            .bind(account_id).fetch_all(p).await?))
    }

    /// Every invoice, newest first (admin list and reports).
    pub async fn all_invoices(&self) -> Result<Vec<InvoiceSummary>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!("{SUMMARY_SELECT} ORDER BY i.id DESC")).fetch_all(p).await?))
    }

    /// Finalized invoices of subscriptions billed through Stripe (a customer is known) whose usage
    /// has not been pushed to Stripe yet, oldest first.
    pub async fn invoices_to_push(&self, limit: i64) -> Result<Vec<InvoiceRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices i
             WHERE i.status IN ('open', 'paid') AND i.finalized_at IS NOT NULL
               AND EXISTS (SELECT 1 FROM stripe_subscriptions ss WHERE ss.subscription_id = i.subscription_id AND ss.customer_id IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM stripe_usage_pushes up WHERE up.subscription_id = i.subscription_id AND up.period_start = i.period_start)
             ORDER BY i.id LIMIT $1"))
            .bind(limit).fetch_all(p).await?))
    }

    /// An invoice's lines in order.
    pub async fn invoice_lines(&self, invoice_id: i64) -> Result<Vec<InvoiceLineRow>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {LINE_COLUMNS} FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no, id"))
            .bind(invoice_id).fetch_all(p).await?))
    }

    /// Mark an open invoice paid and write `audit`, in one transaction. [`StoreError::NotFound`]
    /// if it is not open.
    pub async fn mark_invoice_paid(&self, id: i64, audit: &Audit, now: i64) -> Result<(), StoreError> {
        self.close_invoice(id, "paid", audit, now).await
    }

    /// Void an open invoice and write `audit`, in one transaction. [`StoreError::NotFound`] if it
    /// is not open.
    pub async fn void_invoice(&self, id: i64, audit: &Audit, now: i64) -> Result<(), StoreError> {
        self.close_invoice(id, "void", audit, now).await
    }

    async fn close_invoice(&self, id: i64, status: &str, audit: &Audit, now: i64) -> Result<(), StoreError> {
        in_tx!(self, tx => {
            let n = sqlx::query(
                "UPDATE invoices SET status = $2, paid_at = CASE WHEN $2 = 'paid' THEN $3 ELSE paid_at END WHERE id = $1 AND status = 'open'")
                .bind(id).bind(status).bind(now).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            crate::audit::record_audit!(tx, audit, now);
        });
        Ok(())
    }

    /// The end of the latest invoiced period of a subscription, if any.
    pub async fn last_invoiced_period_end(&self, subscription_id: i64) -> Result<Option<i64>, StoreError> {
        let r: (Option<i64>,) = on_pool!(self, p => sqlx::query_as(
            "SELECT MAX(period_end) FROM invoices WHERE subscription_id = $1")
            .bind(subscription_id).fetch_one(p).await?);
        Ok(r.0)
    }

    /// Usage-bucket totals of a subscription for hours in `[from, to)`, over all sources:
    /// `(admitted, status_5xx)`.
    pub async fn subscription_usage_totals(&self, subscription_id: i64, from: i64, to: i64) -> Result<(i64, i64), StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(admitted), 0) AS BIGINT), CAST(COALESCE(SUM(status_5xx), 0) AS BIGINT)
             FROM usage_hourly WHERE subscription_id = $1 AND hour >= $2 AND hour < $3")
            .bind(subscription_id).bind(from).bind(to).fetch_one(p).await?))
    }
}
