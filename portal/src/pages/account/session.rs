//! Sign up, log in, log out.
//!
//! Signup never reveals whether an email has an account: known and unknown addresses get the
//! same "check your email" page after the same argon2 work; the mailbox owner learns the rest.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use turnpike_store::domain::{hash_password, verify_password, Email, Password};
use turnpike_store::AccountStatus;

use super::common::{capitalise, email_subject, public_url, send_verification, CheckEmailPage};
use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;
use crate::service::{self, ServiceError};
use crate::throttle::{self, ClientIp};
use crate::PortalState;

/// Shown for a wrong email and a wrong password alike, so the form does not reveal who has an
/// account.
pub const BAD_CREDENTIALS: &str = "Email or password is incorrect.";

/// `GET/POST /signup`.
#[derive(Debug, Default, Template, WebTemplate)]
#[template(path = "signup.html")]
pub struct SignupPage {
    chrome: Chrome,
    email: String,
    email_error: Option<String>,
    password_error: Option<String>,
    form_error: Option<String>,
}

/// The signup and login forms. Missing fields are empty strings, so they get field errors, not
/// a 400. Any other field (`role`, `plan`, `quota`, `status`…) is ignored.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// A signed-out form (signup, login): someone already logged in goes to the dashboard instead.
async fn signed_out_form<P: IntoResponse>(mut ctx: Ctx, page: impl FnOnce(Chrome) -> P) -> PortalResult<Response> {
    if ctx.account.is_some() {
        return Ok(Redirect::to("/dashboard").into_response());
    }
    ctx.ensure_csrf().await?;
    Ok(page(ctx.chrome().await?).into_response())
}

/// `GET /signup`.
pub async fn signup_form(ctx: Ctx) -> PortalResult<Response> {
    signed_out_form(ctx, |chrome| SignupPage { chrome, ..SignupPage::default() }).await
}

/// `POST /signup`: a new email gets an unverified account and a verification link; a known one
/// gets a note with login and reset links. Both answer the same page.
pub async fn signup(State(state): State<PortalState>, ip: ClientIp, ctx: Ctx, Form(form): Form<Credentials>) -> PortalResult<Response> {
    let email = Email::parse(&form.email);
    let password = Password::parse(&form.password);
    let (email, password) = match (email, password) {
        (Ok(e), Ok(p)) => (e, p),
        (e, p) => {
            let page = SignupPage {
                chrome: ctx.chrome().await?,
                email: form.email.trim().to_owned(),
                email_error: e.err().map(|e| capitalise(&e.to_string())),
                password_error: p.err().map(|e| capitalise(&e.to_string())),
                form_error: None,
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let checks = [(throttle::SIGNUP_PER_IP, ip.0.as_str()), (throttle::SIGNUP_PER_EMAIL, email.as_str())];
    if let Err(too_many) = throttle::attempt(&state, &checks).await? {
        return Ok(too_many);
    }
    let now = state.clock.now();
    // Hashed whether or not the account exists: the same work either way.
    let hash = hash_password(&password).await?;
    let base = public_url(&state);
    match service::accounts::signup(&state.store, &email, &hash, now).await {
        Ok(account) => send_verification(&state, &account, now).await?,
        Err(ServiceError::EmailTaken) => {
            let body = format!(
                "Someone (hopefully you) tried to create a Turnpike developer account with {email}, \
                 but this address already has one.\n\n\
                 Log in: {base}/login\n\
                 Forgot your password? Reset it: {base}/reset-password\n\n\
                 If this was not you, you can ignore this message: nothing was changed.\n"
            );
            state.store.enqueue_email("signup_existing", email.as_str(), "You already have a Turnpike account", &body, now).await?;
            // Audited like a new signup, which also keeps the database work of both answers alike.
            state.store.audit(None, "signup.existing_email", "account:?", "", now).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(CheckEmailPage {
        chrome: ctx.chrome().await?,
        heading: "Check your email",
        email: email.to_string(),
        message: "We sent a message to this address. Open the link in it to confirm your email and finish \
                  signing up. If you already have an account, the message explains how to log in.",
    }
    .into_response())
}

/// `GET/POST /login`.
#[derive(Debug, Default, Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    chrome: Chrome,
    email: String,
    error: Option<String>,
}

/// `GET /login`.
pub async fn login_form(ctx: Ctx) -> PortalResult<Response> {
    signed_out_form(ctx, |chrome| LoginPage { chrome, ..LoginPage::default() }).await
}

/// `POST /login`.
pub async fn login(State(state): State<PortalState>, ip: ClientIp, mut ctx: Ctx, Form(form): Form<Credentials>) -> PortalResult<Response> {
    let subject = email_subject(&form.email);
    let checks = [(throttle::LOGIN_PER_IP, ip.0.as_str()), (throttle::LOGIN_PER_ACCOUNT, subject.as_str())];
    // Counted before the password is looked at, atomically: a guess past the limit learns
    // nothing, and a burst of concurrent guesses gets no more than the allowance evaluated.
    let attempt = match throttle::attempt(&state, &checks).await? {
        Ok(a) => a,
        Err(too_many) => return Ok(too_many),
    };
    let found = match Email::parse(&form.email) {
        Ok(email) => state.store.find_account_by_email(&email).await?,
        Err(_) => None,
    };
    // Unknown emails verify against a dummy hash: the same time as a wrong password.
    let ok = verify_password(&form.password, found.as_ref().map(|(_, h)| h.as_str())).await?;
    let now = state.clock.now();
    let refuse = |status: StatusCode, error: &str, chrome: Chrome| {
        let page = LoginPage { chrome, email: form.email.trim().to_owned(), error: Some(error.to_owned()) };
        (status, page).into_response()
    };
    let account = match found {
        Some((account, _)) if ok => account,
        // The attempt stays counted.
        _ => return Ok(refuse(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS, ctx.chrome().await?)),
    };
    throttle::refund(&state, attempt).await?;
    if account.status == AccountStatus::Suspended {
        state.store.audit(Some(account.id), "login.refused", &format!("account:{}", account.id), "suspended", now).await?;
        let msg = "This account is suspended. Contact support to restore access.";
        return Ok(refuse(StatusCode::FORBIDDEN, msg, ctx.chrome().await?));
    }
    throttle::clear(&state, throttle::LOGIN_PER_ACCOUNT, &subject).await?;
    state.store.audit(Some(account.id), "login", &format!("account:{}", account.id), "", now).await?;
    ctx.log_in(account).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `POST /logout`.
pub async fn logout(mut ctx: Ctx) -> PortalResult<Redirect> {
    ctx.log_out().await?;
    Ok(Redirect::to("/"))
}
