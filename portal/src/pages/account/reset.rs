//! Password reset by emailed token: request (the same answer for known and unknown emails), then
//! a form to set a new password. A reset ends every session of the account.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use turnpike_store::domain::{hash_password, Email, Password};
use turnpike_store::{PasswordEvent, TokenPurpose};

use super::common::{capitalise, dead_link, email_subject, public_url, CheckEmailPage};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::throttle::{self, ClientIp};
use crate::PortalState;

const DEAD_RESET: &str = "Password reset links work once and expire after an hour. Ask for a new one.";

/// `GET/POST /reset-password`.
#[derive(Debug, Default, Template, WebTemplate)]
#[template(path = "reset_request.html")]
pub struct ResetRequestPage {
    chrome: Chrome,
    email: String,
    email_error: Option<String>,
}

/// `GET/POST /reset-password/confirm`.
#[derive(Debug, Default, Template, WebTemplate)]
#[template(path = "reset_password.html")]
pub struct ResetPasswordPage {
    chrome: Chrome,
    token: String,
    password_error: Option<String>,
}

/// The reset request form.
#[derive(Debug, Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    email: String,
}

/// The new-password form.
#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// `?token=`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `GET /reset-password`.
pub async fn request_form(mut ctx: Ctx) -> PortalResult<Response> {
    ctx.ensure_csrf().await?;
    Ok(ResetRequestPage { chrome: ctx.chrome().await?, ..ResetRequestPage::default() }.into_response())
}

/// `POST /reset-password`: mail a reset link if the account exists; answer the same either way.
pub async fn request(State(state): State<PortalState>, ip: ClientIp, ctx: Ctx, Form(f): Form<RequestForm>) -> PortalResult<Response> {
    let email = match Email::parse(&f.email) {
        Ok(e) => e,
        Err(e) => {
            let page = ResetRequestPage {
                chrome: ctx.chrome().await?,
                email: f.email.trim().to_owned(),
                email_error: Some(capitalise(&e.to_string())),
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let subject = email_subject(email.as_str());
    let checks = [(throttle::RESET_PER_IP, ip.0.as_str()), (throttle::RESET_PER_EMAIL, subject.as_str())];
    if let Err(too_many) = throttle::attempt(&state, &checks).await? {
        return Ok(too_many);
    }
    let now = state.clock.now();
    if let Some((account, _)) = state.store.find_account_by_email(&email).await? {
        let token = state.store.issue_token(account.id, TokenPurpose::ResetPassword, None, now).await?;
        let body = format!(
            "Someone (hopefully you) asked to reset the password of your Turnpike account {email}.\n\n\
             Choose a new password here:\n\n\
             {}/reset-password/confirm?token={}\n\n\
             The link works once and expires in 1 hour. If you did not ask, ignore this message: \
             your password stays the same.\n",
            public_url(&state),
            token.expose(),
        );
        state.store.enqueue_email("reset_password", email.as_str(), "Reset your Turnpike password", &body, now).await?;
        state.store.audit(Some(account.id), "password.reset_requested", &format!("account:{}", account.id), "", now).await?;
    }
    Ok(CheckEmailPage {
        chrome: ctx.chrome().await?,
        heading: "Check your email",
        email: email.to_string(),
        message: "If this address has a Turnpike account, we sent it a link to choose a new password. \
                  The link expires in 1 hour.",
    }
    .into_response())
}

/// `GET /reset-password/confirm?token=…`: the new-password form, if the token is still good.
pub async fn reset_form(State(state): State<PortalState>, mut ctx: Ctx, Query(q): Query<TokenQuery>) -> PortalResult<Response> {
    ctx.ensure_csrf().await?;
    if state.store.peek_token(&q.token, TokenPurpose::ResetPassword, state.clock.now()).await?.is_none() {
        return dead_link(&ctx, DEAD_RESET).await;
    }
    Ok(ResetPasswordPage { chrome: ctx.chrome().await?, token: q.token, password_error: None }.into_response())
}

/// `POST /reset-password/confirm`: set the new password, end every session of the account.
pub async fn reset(State(state): State<PortalState>, mut ctx: Ctx, Form(f): Form<ResetForm>) -> PortalResult<Response> {
    let now = state.clock.now();
    let password = match Password::parse(&f.password) {
        Ok(p) => p,
        Err(e) => {
            // The token is not used up by a password the rules refuse.
            if state.store.peek_token(&f.token, TokenPurpose::ResetPassword, now).await?.is_none() {
                return dead_link(&ctx, DEAD_RESET).await;
            }
            let page = ResetPasswordPage { chrome: ctx.chrome().await?, token: f.token, password_error: Some(capitalise(&e.to_string())) };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let Some(grant) = state.store.consume_token(&f.token, TokenPurpose::ResetPassword, now).await? else {
        return dead_link(&ctx, DEAD_RESET).await;
    };
    let hash = hash_password(&password).await?;
    // Sessions, personal access tokens and mailed links of the account all end here.
    state.store.set_password(grant.account_id, &hash, PasswordEvent::Reset, None, now).await?;
    if ctx.account.is_some() {
        ctx.log_out().await?;
    }
    let account = state.store.get_account(grant.account_id).await?;
    throttle::clear(&state, throttle::LOGIN_PER_ACCOUNT, &account.email).await?;
    ctx.flash(
        FlashKind::Success,
        "Your password was changed: every session was logged out and every personal access token revoked. Log in with your new password.",
    )
    .await?;
    Ok(Redirect::to("/login").into_response())
}
