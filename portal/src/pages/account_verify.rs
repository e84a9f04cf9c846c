//! Email verification (signup and resend) and confirmation of an email change. The link in the
//! email opens a page with a confirm button: GET changes nothing (mail scanners prefetch links);
//! the POST uses the token once.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use turnpike_store::domain::Email;
use turnpike_store::{AccountStatus, StoreError, TokenPurpose};

use super::account::send_verification;
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::throttle;
use crate::PortalState;

/// The page behind an emailed link: what will happen, and a button to do it.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "confirm_token.html")]
pub struct ConfirmTokenPage {
    pub(crate) chrome: Chrome,
    pub(crate) heading: &'static str,
    pub(crate) text: String,
    pub(crate) action: &'static str,
    pub(crate) token: String,
    pub(crate) button: &'static str,
}

/// A short message page (a dead link, a refused change).
#[derive(Debug, Template, WebTemplate)]
#[template(path = "account_message.html")]
pub struct MessagePage {
    pub(crate) chrome: Chrome,
    pub(crate) heading: &'static str,
    pub(crate) message: &'static str,
    pub(crate) link: &'static str,
    pub(crate) link_label: &'static str,
}

/// `?token=` or a form's `token` field.
#[derive(Debug, Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

/// Answer for a link that is unknown, used, expired or meant for something else.
pub(crate) async fn dead_link(ctx: &Ctx, what: &'static str) -> PortalResult<Response> {
    let page = MessagePage {
        chrome: ctx.chrome().await?,
        heading: "This link no longer works",
        message: what,
        link: "/login",
        link_label: "Go to log in",
    };
    Ok((StatusCode::BAD_REQUEST, page).into_response())
}

const DEAD_VERIFY: &str = "Verification links work once and expire after 24 hours. Log in and use \
                           \"Resend verification email\" to get a new one.";
const DEAD_CHANGE: &str = "Email change links work once and expire after 24 hours. Request the change \
                           again from your account settings.";

/// `GET /verify-email?token=…`: the confirm button, if the token is still good.
pub async fn verify_form(State(state): State<PortalState>, mut ctx: Ctx, Query(q): Query<TokenParam>) -> PortalResult<Response> {
    ctx.ensure_csrf().await?;
    if state.store.peek_token(&q.token, TokenPurpose::VerifyEmail, state.clock.now()).await?.is_none() {
        return dead_link(&ctx, DEAD_VERIFY).await;
    }
    Ok(ConfirmTokenPage {
        chrome: ctx.chrome().await?,
        heading: "Confirm your email",
        text: "One click and your developer account is ready.".to_owned(),
        action: "/verify-email",
        token: q.token,
        button: "Confirm my email",
    }
    .into_response())
}

/// `POST /verify-email`: use the token, mark the email verified, log in (new session id).
pub async fn verify(State(state): State<PortalState>, mut ctx: Ctx, Form(f): Form<TokenParam>) -> PortalResult<Response> {
    let now = state.clock.now();
    let Some(grant) = state.store.consume_token(&f.token, TokenPurpose::VerifyEmail, now).await? else {
        return dead_link(&ctx, DEAD_VERIFY).await;
    };
    state.store.mark_email_verified(grant.account_id, now).await?;
    let account = state.store.get_account(grant.account_id).await?;
    state.store.audit(Some(account.id), "email.verify", &format!("account:{}", account.id), "", now).await?;
    if account.status != AccountStatus::Active {
        return dead_link(&ctx, "This account is suspended. Contact support to restore access.").await;
    }
    ctx.log_in(account).await?;
    ctx.flash(FlashKind::Success, "Your email is confirmed. Welcome to Turnpike!").await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `POST /verify-email/resend`: a new verification link for the logged-in, unverified account.
pub async fn resend(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    if account.email_verified_at.is_some() {
        ctx.flash(FlashKind::Success, "Your email is already confirmed.").await?;
        return Ok(Redirect::to("/dashboard").into_response());
    }
    let subject = account.id.to_string();
    let checks = [(throttle::RESEND_PER_ACCOUNT, subject.as_str())];
    if let Some(wait) = throttle::blocked(&state, &checks).await? {
        return Ok(throttle::too_many(wait));
    }
    throttle::record(&state, &checks).await?;
    send_verification(&state, &account, state.clock.now()).await?;
    ctx.flash(FlashKind::Success, format!("We sent a new verification link to {}.", account.email)).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `GET /confirm-email?token=…`: the confirm button for an email change.
pub async fn confirm_email_form(State(state): State<PortalState>, mut ctx: Ctx, Query(q): Query<TokenParam>) -> PortalResult<Response> {
    ctx.ensure_csrf().await?;
    let Some(grant) = state.store.peek_token(&q.token, TokenPurpose::ChangeEmail, state.clock.now()).await? else {
        return dead_link(&ctx, DEAD_CHANGE).await;
    };
    let to = grant.new_email.unwrap_or_default();
    Ok(ConfirmTokenPage {
        chrome: ctx.chrome().await?,
        heading: "Confirm your new email",
        text: format!("Your Turnpike account will use {to} from now on."),
        action: "/confirm-email",
        token: q.token,
        button: "Use this email",
    }
    .into_response())
}

/// `POST /confirm-email`: apply the email change if the address is still free.
pub async fn confirm_email(State(state): State<PortalState>, ctx: Ctx, Form(f): Form<TokenParam>) -> PortalResult<Response> {
    let now = state.clock.now();
    let Some(grant) = state.store.consume_token(&f.token, TokenPurpose::ChangeEmail, now).await? else {
        return dead_link(&ctx, DEAD_CHANGE).await;
    };
    let Some(Ok(email)) = grant.new_email.as_deref().map(Email::parse) else {
        return dead_link(&ctx, DEAD_CHANGE).await;
    };
    // Uniqueness is checked again now, by the constraint: the address may have been taken since.
    match state.store.change_email(grant.account_id, &email, now).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            let page = MessagePage {
                chrome: ctx.chrome().await?,
                heading: "That email is taken",
                message: "Another account uses this address now, so your email was not changed.",
                link: "/account",
                link_label: "Back to account settings",
            };
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        Err(StoreError::NotFound) => return dead_link(&ctx, DEAD_CHANGE).await,
        Err(e) => return Err(e.into()),
    }
    state.store.audit(Some(grant.account_id), "email.change", &format!("account:{}", grant.account_id), "", now).await?;
    ctx.flash(FlashKind::Success, format!("Your email is now {email}.")).await?;
    let next = if ctx.account.as_ref().is_some_and(|a| a.id == grant.account_id) { "/account" } else { "/login" };
    Ok(Redirect::to(next).into_response())
}
