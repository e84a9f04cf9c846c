//! Invoices: the developer's and the admin's invoice pages, the admin's list, marking paid and voiding.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use turnpike_billing::Money;
use turnpike_store::{InvoiceId, InvoiceLineRow, InvoiceSummary};

use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::format::{count, datetime};
use crate::pages::parse_id;
use crate::service::{self, ServiceError, ServiceResult};
use crate::PortalState;

use super::{date, not_found, unit_price_text, LineView};

/// An invoice row.
#[derive(Debug, Clone)]
pub struct InvoiceListRow {
    /// Id.
    pub id: i64,
    /// Number.
    pub number: String,
    /// Period.
    pub period: String,
    /// `App · API · Plan`.
    pub what: String,
    /// Total.
    pub total: String,
    /// Status.
    pub status: String,
    /// Due date.
    pub due: String,
    /// Owner (admin lists).
    pub email: String,
    /// Whether it can be marked paid.
    pub open: bool,
}

impl InvoiceListRow {
    pub(super) fn new(i: &InvoiceSummary) -> Self {
        InvoiceListRow {
            id: i.id,
            number: i.number.clone().unwrap_or_default(),
            period: format!("{} – {}", date(i.period_start), date(i.period_end)),
            what: format!("{} · {} · {}", i.app_name, i.api_name, i.plan_name),
            total: Money::from_stored(i.total_minor, &i.currency).format(),
            status: i.status.clone(),
            due: i.due_at.map(date).unwrap_or_default(),
            email: i.email.clone(),
            open: i.status == "open",
        }
    }
}

/// `GET /billing/invoices/{id}` (and the admin's copy): printable.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/invoice.html")]
pub struct InvoicePage {
    chrome: Chrome,
    invoice: InvoiceListRow,
    issued: String,
    app_name: String,
    api_name: String,
    plan_name: String,
    price_version: String,
    email: String,
    usage: String,
    lines: Vec<LineView>,
    back: &'static str,
}

async fn invoice_page(state: &PortalState, ctx: &Ctx, inv: InvoiceSummary, back: &'static str) -> PortalResult<InvoicePage> {
    let row = state.store.get_invoice(inv.id).await?;
    let lines: Vec<InvoiceLineRow> = state.store.invoice_lines(inv.id).await?;
    let price_version = match row.plan_price_id {
        Some(pid) => state.store.get_plan_price(pid).await.map(|p| format!("v{}", p.version)).unwrap_or_default(),
        None => "legacy".to_owned(),
    };
    let c = inv.currency.clone();
    let lines = lines
        .into_iter()
        .map(|l| LineView {
            quantity: count(l.quantity),
            unit_price: unit_price_text(l.unit_price_minor, l.unit_per, &c),
            amount: Money::from_stored(l.amount_minor, &c).format(),
            source: match (l.hour_from, l.hour_to, l.source_admitted, l.source_5xx) {
                (Some(f), Some(t), Some(a), Some(s)) => {
                    format!("Usage buckets {} – {}: {} admitted, {} 5xx", datetime(f), datetime(t), count(a), count(s))
                }
                _ => String::new(),
            },
            kind: l.kind,
            description: l.description,
        })
        .collect();
    Ok(InvoicePage {
        chrome: ctx.chrome().await?,
        issued: row.finalized_at.map(date).unwrap_or_default(),
        app_name: inv.app_name.clone(),
        api_name: inv.api_name.clone(),
        plan_name: inv.plan_name.clone(),
        price_version,
        email: inv.email.clone(),
        usage: count(inv.usage_quantity),
        invoice: InvoiceListRow::new(&inv),
        lines,
        back,
    })
}

/// `GET /billing/invoices/{id}`: 404 unless the logged-in developer owns it.
pub async fn invoice_detail(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<InvoicePage> {
    let account_id = ctx.require_account()?.id;
    let inv = state.store.account_invoice(account_id, parse_id(&id)?).await.map_err(not_found)?;
    invoice_page(&state, &ctx, inv, "/billing").await
}

/// `GET /admin/invoices`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "billing/admin_invoices.html")]
pub struct AdminInvoicesPage {
    chrome: Chrome,
    invoices: Vec<InvoiceListRow>,
}

/// `GET /admin/invoices`.
pub async fn admin_invoices(State(state): State<PortalState>, mut ctx: Ctx) -> PortalResult<AdminInvoicesPage> {
    ctx.ensure_csrf().await?;
    let invoices = state.store.all_invoices().await?.iter().map(InvoiceListRow::new).collect();
    Ok(AdminInvoicesPage { chrome: ctx.chrome().await?, invoices })
}

/// `GET /admin/invoices/{id}`.
pub async fn admin_invoice(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<InvoicePage> {
    let inv = state.store.invoice_summary(parse_id(&id)?).await.map_err(not_found)?;
    invoice_page(&state, &ctx, inv, "/admin/invoices").await
}

/// `POST /admin/invoices/{id}/paid`: the local ledger's "payment received".
pub async fn mark_paid(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let done = service::invoices::mark_paid(&state.store, ctx.account_id(), InvoiceId(parse_id(&id)?), state.clock.now()).await;
    invoice_changed(&ctx, done, "Invoice marked paid.", "Only open invoices can be marked paid.").await
}

/// `POST /admin/invoices/{id}/void`.
pub async fn void(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let done = service::invoices::void(&state.store, ctx.account_id(), InvoiceId(parse_id(&id)?), state.clock.now()).await;
    invoice_changed(&ctx, done, "Invoice voided.", "Only open invoices can be voided.").await
}

async fn invoice_changed(ctx: &Ctx, done: ServiceResult<()>, success: &str, not_open: &str) -> PortalResult<Response> {
    match done {
        Ok(()) => ctx.flash(FlashKind::Success, success).await?,
        Err(ServiceError::NotOpen) => ctx.flash(FlashKind::Error, not_open).await?,
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to("/admin/invoices").into_response())
}
