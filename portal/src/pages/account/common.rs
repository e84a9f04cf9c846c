//! What the account pages share: the "check your email" and message pages, the verification
//! email, links in emails, the throttle subject of a typed address, dead links.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use turnpike_store::domain::Email;
use turnpike_store::{Account, TokenPurpose};

use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;
use crate::PortalState;

/// "Check your email": the one answer to a signup or a reset request, whoever asked.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "check_email.html")]
pub struct CheckEmailPage {
    pub(crate) chrome: Chrome,
    pub(crate) heading: &'static str,
    pub(crate) email: String,
    pub(crate) message: &'static str,
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

/// Issue a verification token for the account's current email and queue the email.
pub(crate) async fn send_verification(state: &PortalState, account: &Account, now: i64) -> PortalResult<()> {
    let token = state.store.issue_token(account.id, TokenPurpose::VerifyEmail, None, now).await?;
    let base = public_url(state);
    let body = format!(
        "Welcome to Turnpike!\n\n\
         Confirm your email address to finish setting up your developer account:\n\n\
         {base}/verify-email?token={}\n\n\
         The link works once and expires in 24 hours.\n\
         If you did not sign up, you can ignore this message.\n",
        token.expose(),
    );
    state.store.enqueue_email("verify_email", &account.email, "Confirm your email for Turnpike", &body, now).await?;
    Ok(())
}

/// The portal's public base URL without a trailing slash, for links in emails.
pub(crate) fn public_url(state: &PortalState) -> &str {
    state.config.public_url.trim_end_matches('/')
}

/// The throttle subject for an email as typed: the normalised address when it parses.
pub(crate) fn email_subject(raw: &str) -> String {
    Email::parse(raw).map_or_else(|_| raw.trim().to_lowercase(), |e| e.to_string())
}

/// The first letter in upper case (field errors as sentences).
pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
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
