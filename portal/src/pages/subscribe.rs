//! `POST /apis/{slug}/subscribe`: put one of the developer's apps on a plan of a published API,
//! from the API's page. Apps get every API's default plan when they are created; this is how an
//! existing app joins an API published later, or picks another plan.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use turnpike_ledger::{self as ledger, ChangeOutcome, LedgerError, Subscribed};
use turnpike_store::{AccountId, StoreError, Visibility};
use turnpike_stripe::Stripe;

use super::stripe::checkout_for;
use crate::ctx::{Ctx, FlashKind};
use crate::error::{PortalError, PortalResult};
use crate::format::datetime;
use crate::service::{self, ServiceError};
use crate::PortalState;

/// The subscribe form: which app goes on which plan.
#[derive(Debug, Deserialize)]
pub struct SubscribeForm {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    plan_id: String,
}

fn not_found(e: StoreError) -> PortalError {
    match e {
        StoreError::NotFound => PortalError::NotFound,
        e => e.into(),
    }
}

fn ledger_err(e: LedgerError) -> PortalError {
    match e {
        LedgerError::Store(s) => not_found(s),
        other => PortalError::Store(StoreError::Corrupt(other.to_string())),
    }
}

/// `POST /apis/{slug}/subscribe` (`app_id`, `plan_id`). Someone else's app, a plan of another API
/// and an API that is not published are all 404 (nothing changes). A paid plan with Stripe on
/// goes to Checkout (the webhook subscribes); otherwise the local ledger records it at once: a
/// plan change (prorated, [`ledger::change_plan`]) when the app already has a live subscription
/// to this API, a new subscription otherwise. Gateways see it through the change log.
pub async fn subscribe(
    State(state): State<PortalState>,
    stripe: Option<Extension<Stripe>>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Form(form): Form<SubscribeForm>,
) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    let api = state.store.get_api_by_slug(&slug).await.map_err(not_found)?;
    if api.visibility != Visibility::Public {
        return Err(PortalError::NotFound);
    }
    let back = format!("/apis/{}", api.slug);
    // The page offers no subscription while the gateway routes none of the API's targets; a
    // form posted anyway is refused the same way.
    if api.unroutable_reason().is_some() {
        ctx.flash(FlashKind::Error, "This API is unavailable right now: it cannot be subscribed to.").await?;
        return Ok(Redirect::to(&back).into_response());
    }
    let (Ok(app_id), Ok(plan_id)) = (form.app_id.trim().parse::<i64>(), form.plan_id.trim().parse::<i64>()) else {
        ctx.flash(FlashKind::Error, "Choose an app to subscribe.").await?;
        return Ok(Redirect::to(&back).into_response());
    };
    let app = state.store.get_app(account.id, app_id).await.map_err(not_found)?;
    let plan = state.store.get_plan(plan_id).await.map_err(not_found)?;
    if plan.api_id != api.id {
        return Err(PortalError::NotFound);
    }
    let now = state.clock.now();
    if let Some(Extension(stripe)) = &stripe {
        if ledger::plan_needs_payment(&state.store, plan.id, now).await.map_err(ledger_err)? {
            return checkout_for(&state, stripe, &ctx, &account, &app, plan.id, &back).await;
        }
    }
    let (sub, outcome) = match service::subscriptions::subscribe(&state.store, AccountId(account.id), &app, &plan, now).await {
        Ok(done) => done,
        Err(ServiceError::Stale) => {
            ctx.flash(FlashKind::Error, super::billing::CHANGED_MEANWHILE).await?;
            return Ok(Redirect::to(&back).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let sub_id = sub.id;
    let applied = format!("Subscribed {} to {}. Gateways apply its limits within a second.", app.name, plan.name);
    let msg = match outcome {
        Subscribed::New | Subscribed::Resumed | Subscribed::Changed(ChangeOutcome::Now) => applied,
        Subscribed::Changed(ChangeOutcome::AtPeriodEnd(at)) => {
            format!("{} moves to {} on {}, at the end of this period.", app.name, plan.name, datetime(at))
        }
        Subscribed::Changed(ChangeOutcome::Unchanged) => format!("{} is already on {}.", app.name, plan.name),
    };
    ctx.flash(FlashKind::Success, msg).await?;
    Ok(Redirect::to(&format!("/billing#sub-{sub_id}")).into_response())
}
