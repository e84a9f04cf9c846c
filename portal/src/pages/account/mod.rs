//! The account pages: sign up, log in, log out ([`session`]), email verification and email
//! change ([`verify`]), password reset ([`reset`]) and the settings page ([`settings`]). Their
//! shared pieces live in [`common`]; the pages import those, never each other.

use axum::routing::{get, post};

use crate::PortalState;

mod common;
pub mod reset;
pub mod session;
pub mod settings;
pub mod verify;

/// Signup, login, logout, verification, password reset and account settings.
pub fn routes() -> axum::Router<PortalState> {
    axum::Router::new()
        .route("/signup", get(session::signup_form).post(session::signup))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/verify-email", get(verify::verify_form).post(verify::verify))
        .route("/verify-email/resend", post(verify::resend))
        .route("/confirm-email", get(verify::confirm_email_form).post(verify::confirm_email))
        .route("/reset-password", get(reset::request_form).post(reset::request))
        .route("/reset-password/confirm", get(reset::reset_form).post(reset::reset))
        .route("/account", get(settings::page))
        .route("/account/password", post(settings::change_password))
        .route("/account/email", post(settings::change_email))
        .route("/account/delete", post(settings::delete_account))
}
