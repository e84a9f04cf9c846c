//! Sign up, log in, log out.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use serde::Deserialize;
use turnpike_store::domain::{hash_password, verify_password, Email, Password};
use turnpike_store::{AccountStatus, Role, StoreError};

use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;
use crate::PortalState;

/// Shown for a wrong email and a wrong password alike, so the form does not reveal who has an
/// account.
pub const BAD_CREDENTIALS: &str = "Email or password is incorrect.";
/// Shown when the email is taken.
pub const EMAIL_TAKEN: &str = "An account with this email already exists — log in instead.";

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

/// The signup form. Missing fields are empty strings, so they get field errors, not a 400.
#[derive(Debug, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `GET /signup`.
pub async fn signup_form(mut ctx: Ctx) -> PortalResult<Response> {
    if ctx.account.is_some() {
        return Ok(Redirect::to("/dashboard").into_response());
    }
    ctx.ensure_csrf().await?;
    Ok(SignupPage { chrome: ctx.chrome().await?, ..SignupPage::default() }.into_response())
}

/// `POST /signup`: create a developer account, queue the welcome email, log in.
pub async fn signup(State(state): State<PortalState>, mut ctx: Ctx, Form(form): Form<SignupForm>) -> PortalResult<Response> {
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
    let now = state.clock.now();
    let hash = hash_password(&password).await;
    let account = match state.store.create_account(&email, &hash, Role::Developer, now).await {
        Ok(a) => a,
        Err(StoreError::Conflict) => {
            let page = SignupPage {
                chrome: ctx.chrome().await?,
                email: email.to_string(),
                form_error: Some(EMAIL_TAKEN.to_owned()),
                ..SignupPage::default()
            };
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let body = format!(
        "Welcome to Turnpike!\n\n\
         Your developer account {email} is ready. Create an app and an API key from your dashboard:\n\n\
         {}/dashboard\n\n\
         If you did not sign up, you can ignore this message.\n",
        state.config.public_url.trim_end_matches('/'),
    );
    state.store.enqueue_email("welcome", email.as_str(), "Welcome to Turnpike", &body, now).await?;
    state.store.audit(Some(account.id), "signup", &format!("account:{}", account.id), "", now).await?;
    ctx.log_in(account).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `GET/POST /login`.
#[derive(Debug, Default, Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    chrome: Chrome,
    email: String,
    error: Option<String>,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `GET /login`.
pub async fn login_form(mut ctx: Ctx) -> PortalResult<Response> {
    if ctx.account.is_some() {
        return Ok(Redirect::to("/dashboard").into_response());
    }
    ctx.ensure_csrf().await?;
    Ok(LoginPage { chrome: ctx.chrome().await?, ..LoginPage::default() }.into_response())
}

/// `POST /login`.
pub async fn login(State(state): State<PortalState>, mut ctx: Ctx, Form(form): Form<LoginForm>) -> PortalResult<Response> {
    let found = match Email::parse(&form.email) {
        Ok(email) => state.store.find_account_by_email(&email).await?,
        Err(_) => None,
    };
    // Unknown emails verify against a dummy hash: the same time as a wrong password.
    let ok = verify_password(&form.password, found.as_ref().map(|(_, h)| h.as_str())).await;
    let now = state.clock.now();
    let refuse = |status: StatusCode, error: &str, chrome: Chrome| {
        let page = LoginPage { chrome, email: form.email.trim().to_owned(), error: Some(error.to_owned()) };
        (status, page).into_response()
    };
    let account = match found {
        Some((account, _)) if ok => account,
        _ => return Ok(refuse(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS, ctx.chrome().await?)),
    };
    if account.status == AccountStatus::Suspended {
        state.store.audit(Some(account.id), "login.refused", &format!("account:{}", account.id), "suspended", now).await?;
        let msg = "This account is suspended. Contact support to restore access.";
        return Ok(refuse(StatusCode::FORBIDDEN, msg, ctx.chrome().await?));
    }
    state.store.audit(Some(account.id), "login", &format!("account:{}", account.id), "", now).await?;
    ctx.log_in(account).await?;
    Ok(Redirect::to("/dashboard").into_response())
}

/// `POST /logout`.
pub async fn logout(mut ctx: Ctx) -> PortalResult<Redirect> {
    ctx.log_out().await?;
    Ok(Redirect::to("/"))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// Signup, login and logout.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}
