//! `/account`: change password, change email, delete the account. Every change asks for the
//! current password again; a wrong one counts as a failed login for the throttle.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use turnpike_store::domain::{hash_password, verify_password, Email, Password};
use turnpike_store::{Account, PasswordEvent};

use super::common::{capitalise, public_url};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::service::{self, ServiceError};
use crate::throttle::{self, ClientIp};
use crate::PortalState;

const WRONG_PASSWORD: &str = "Your current password is incorrect.";
const STRIPE_BILLED: &str =
    "A subscription of yours is billed through Stripe. Cancel it under Billing, Manage payment, then delete your account.";

/// The settings page; each form shows its own errors.
#[derive(Debug, Default, Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountPage {
    chrome: Chrome,
    email: String,
    verified: bool,
    member_since: String,
    password_error: Option<String>,
    new_password_error: Option<String>,
    email_error: Option<String>,
    new_email: String,
    new_email_error: Option<String>,
    delete_error: Option<String>,
}

impl AccountPage {
    async fn for_account(ctx: &Ctx, account: &Account) -> PortalResult<AccountPage> {
        Ok(AccountPage {
            chrome: ctx.chrome().await?,
            email: account.email.clone(),
            verified: account.email_verified_at.is_some(),
            member_since: crate::format::datetime(account.created_at),
            ..AccountPage::default()
        })
    }
}

/// Change-password form. Unknown fields (`role`, `plan`, `quota`, `status`…) are ignored.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// Change-email form.
#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    new_email: String,
}

/// Delete-account form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    password: String,
}

/// `GET /account`.
pub async fn page(ctx: Ctx) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    Ok(AccountPage::for_account(&ctx, &account).await?.into_response())
}

/// Check the re-entered password under the login throttle. `Err(response)` is the answer to send
/// (429); `Ok(false)` a wrong password (already counted).
async fn reauthenticate(state: &PortalState, ip: &ClientIp, account: &Account, password: &str) -> PortalResult<Result<bool, Response>> {
    let checks = [(throttle::LOGIN_PER_IP, ip.0.as_str()), (throttle::LOGIN_PER_ACCOUNT, account.email.as_str())];
    let attempt = match throttle::attempt(state, &checks).await? {
        Ok(a) => a,
        Err(too_many) => return Ok(Err(too_many)),
    };
    let hash = state.store.password_hash(account.id).await?;
    let ok = verify_password(password, Some(&hash)).await?;
    if ok {
        throttle::refund(state, attempt).await?;
    }
    Ok(Ok(ok))
}

/// `POST /account/password`: needs the current password; ends the account's other sessions.
pub async fn change_password(
    State(state): State<PortalState>,
    ip: ClientIp,
    ctx: Ctx,
    Form(f): Form<PasswordForm>,
) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    let new = Password::parse(&f.new_password);
    let ok = match reauthenticate(&state, &ip, &account, &f.current_password).await? {
        Ok(ok) => ok,
        Err(throttled) => return Ok(throttled),
    };
    let password = match (ok, new) {
        (true, Ok(p)) => p,
        (ok, new) => {
            let mut page = AccountPage::for_account(&ctx, &account).await?;
            page.password_error = (!ok).then(|| WRONG_PASSWORD.to_owned());
            page.new_password_error = new.err().map(|e| capitalise(&e.to_string()));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let now = state.clock.now();
    let hash = hash_password(&password).await?;
    let keep = ctx.session.id().map(|id| id.to_string());
    let revoked = state.store.set_password(account.id, &hash, PasswordEvent::Change, keep.as_deref(), now).await?;
    let tokens = match revoked {
        0 => String::new(),
        1 => " Your personal access token was revoked: create a new one where you need it.".to_owned(),
        n => format!(" Your {n} personal access tokens were revoked: create new ones where you need them."),
    };
    ctx.flash(FlashKind::Success, format!("Password changed. Your other sessions were logged out.{tokens}")).await?;
    Ok(Redirect::to("/account").into_response())
}

/// `POST /account/email`: needs the password; mails a confirmation link to the new address. The
/// email changes only when that link is confirmed.
pub async fn change_email(State(state): State<PortalState>, ip: ClientIp, ctx: Ctx, Form(f): Form<EmailForm>) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    let new = Email::parse(&f.new_email).map_err(|e| capitalise(&e.to_string())).and_then(|e| {
        if e.as_str() == account.email {
            Err("That is already your email.".to_owned())
        } else {
            Ok(e)
        }
    });
    let ok = match reauthenticate(&state, &ip, &account, &f.password).await? {
        Ok(ok) => ok,
        Err(throttled) => return Ok(throttled),
    };
    let new_email = match (ok, new) {
        (true, Ok(e)) => e,
        (ok, new) => {
            let mut page = AccountPage::for_account(&ctx, &account).await?;
            page.email_error = (!ok).then(|| WRONG_PASSWORD.to_owned());
            page.new_email = f.new_email.trim().to_owned();
            page.new_email_error = new.err();
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let now = state.clock.now();
    let token = service::accounts::request_email_change(&state.store, &account, &new_email, now).await?;
    let base = public_url(&state);
    let body = format!(
        "Someone (hopefully you) asked to move the Turnpike account {} to this address.\n\n\
         Confirm the change here:\n\n\
         {base}/confirm-email?token={}\n\n\
         The link works once and expires in 24 hours. If you did not ask, ignore this message.\n",
        account.email,
        token.expose(),
    );
    state.store.enqueue_email("change_email", new_email.as_str(), "Confirm your new email for Turnpike", &body, now).await?;
    let notice = format!(
        "Someone asked to move your Turnpike account to {new_email}. Nothing changes until the link sent to that \
         address is opened.\n\nIf this was not you, change your password now: {base}/account\n"
    );
    state.store.enqueue_email("change_email_notice", &account.email, "Your Turnpike email is about to change", &notice, now).await?;
    ctx.flash(FlashKind::Success, format!("We sent a confirmation link to {new_email}. Your email changes once you open it.")).await?;
    Ok(Redirect::to("/account").into_response())
}

/// `POST /account/delete`: needs the password; cancels every subscription now (409 while one is
/// billed through Stripe), revokes every key, anonymises the account, ends every session.
pub async fn delete_account(
    State(state): State<PortalState>,
    ip: ClientIp,
    mut ctx: Ctx,
    Form(f): Form<DeleteForm>,
) -> PortalResult<Response> {
    let account = ctx.require_account()?.clone();
    let ok = match reauthenticate(&state, &ip, &account, &f.password).await? {
        Ok(ok) => ok,
        Err(throttled) => return Ok(throttled),
    };
    if !ok {
        let mut page = AccountPage::for_account(&ctx, &account).await?;
        page.delete_error = Some(WRONG_PASSWORD.to_owned());
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    match service::accounts::delete(&state.store, &account, state.clock.now()).await {
        Ok(()) => {}
        Err(ServiceError::StripeBilled) => {
            let mut page = AccountPage::for_account(&ctx, &account).await?;
            page.delete_error = Some(STRIPE_BILLED.to_owned());
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        Err(e) => return Err(e.into()),
    }
    ctx.log_out().await?;
    ctx.flash(FlashKind::Success, "Your account was deleted and its API keys revoked.").await?;
    Ok(Redirect::to("/").into_response())
}
