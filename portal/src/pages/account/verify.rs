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

use super::common::{dead_link, send_verification, MessagePage};
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
    /// Ask for the account's password (verifying an email while not logged in as its account).
    pub(crate) ask_password: bool,
    /// Why the last try was refused.
    pub(crate) error: Option<&'static str>,
}

/// `?token=` or a form's `token` field.
#[derive(Debug, Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

/// The verification form: the token, and the password when not logged in as the account.
#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

const DEAD_VERIFY: &str = "Verification links work once and expire after 24 hours. Log in and use \
                           \"Resend verification email\" to get a new one.";
const DEAD_CHANGE: &str = "Email change links work once and expire after 24 hours. Request the change \
                           again from your account settings.";

/// The verification page for `token`; the password is asked unless the visitor is logged in as
/// the account being verified.
async fn verify_page(ctx: &Ctx, token: String, account_id: i64, error: Option<&'static str>) -> PortalResult<ConfirmTokenPage> {
    let ask_password = ctx.account.as_ref().is_none_or(|a| a.id != account_id);
    Ok(ConfirmTokenPage {
        chrome: ctx.chrome().await?,
        heading: "Confirm your email",
        text: if ask_password {
            "Enter the password you chose when you signed up: it shows that the person who owns this mailbox made the account.".to_owned()
        } else {
            "One click and your developer account is ready.".to_owned()
        },
        action: "/verify-email",
        token,
        button: "Confirm my email",
        ask_password,
        error,
    })
}

/// `GET /verify-email?token=…`: the confirm form, if the token is still good.
pub async fn verify_form(State(state): State<PortalState>, mut ctx: Ctx, Query(q): Query<TokenParam>) -> PortalResult<Response> {
    ctx.ensure_csrf().await?;
    let Some(grant) = state.store.peek_token(&q.token, TokenPurpose::VerifyEmail, state.clock.now()).await? else {
        return dead_link(&ctx, DEAD_VERIFY).await;
    };
    Ok(verify_page(&ctx, q.token, grant.account_id, None).await?.into_response())
}

/// `POST /verify-email`: use the token, mark the email verified, log in (new session id).
///
/// **Who may verify**: the link proves control of the mailbox; the password proves that the same
/// person made the account. Someone who registers another person's address first (pre-account
/// takeover) knows the password but not the mailbox; the mailbox's owner who clicks the link
/// knows no password for an account they did not make, so the account stays unverified and
/// powerless (no tokens, no keys) until the owner resets the password, which ends every session
/// and credential of the account. So the password is asked unless the visitor is already logged
/// in as the account (then the session proves it), under the login throttle.
pub async fn verify(
    State(state): State<PortalState>,
    ip: throttle::ClientIp,
    mut ctx: Ctx,
    Form(f): Form<VerifyForm>,
) -> PortalResult<Response> {
    let now = state.clock.now();
    let Some(grant) = state.store.peek_token(&f.token, TokenPurpose::VerifyEmail, now).await? else {
        return dead_link(&ctx, DEAD_VERIFY).await;
    };
    let account = state.store.get_account(grant.account_id).await?;
    if ctx.account.as_ref().is_none_or(|a| a.id != account.id) {
        let checks = [(throttle::LOGIN_PER_IP, ip.0.as_str()), (throttle::LOGIN_PER_ACCOUNT, account.email.as_str())];
        let attempt = match throttle::attempt(&state, &checks).await? {
            Ok(a) => a,
            Err(too_many) => return Ok(too_many),
        };
        let hash = state.store.password_hash(account.id).await?;
        if !turnpike_store::domain::verify_password(&f.password, Some(&hash)).await? {
            let page = verify_page(&ctx, f.token, account.id, Some("That is not the password of this account.")).await?;
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
        throttle::refund(&state, attempt).await?;
    }
    // Used once, now that the visitor has shown both.
    if crate::service::accounts::verify_email(&state.store, &f.token, now).await?.is_none() {
        return dead_link(&ctx, DEAD_VERIFY).await;
    }
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
    if let Err(too_many) = throttle::attempt(&state, &checks).await? {
        return Ok(too_many);
    }
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
        ask_password: false,
        error: None,
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
    ctx.flash(FlashKind::Success, format!("Your email is now {email}.")).await?;
    let next = if ctx.account.as_ref().is_some_and(|a| a.id == grant.account_id) { "/account" } else { "/login" };
    Ok(Redirect::to(next).into_response())
}
