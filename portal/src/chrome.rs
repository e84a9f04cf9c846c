//! What the base layout needs on every page (the nav, the CSRF token of its forms, the flash
//! messages), apart from the request context that fills it in (`crate::ctx`), so that pages
//! rendered without a request, such as the error page, depend on nothing else.

use serde::{Deserialize, Serialize};

/// How a flash message is styled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashKind {
    /// Something worked.
    Success,
    /// Something did not.
    Error,
}

/// A message shown once, on the next page rendered for this session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// Style.
    pub kind: FlashKind,
    /// Text (escaped when rendered).
    pub text: String,
}

impl Flash {
    /// CSS class suffix.
    pub fn class(&self) -> &'static str {
        match self.kind {
            FlashKind::Success => "success",
            FlashKind::Error => "error",
        }
    }
}

/// What the base layout needs on every page.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The logged-in developer's email.
    pub user_email: Option<String>,
    /// CSRF token for the forms on the page (the logout button at least, when logged in).
    pub csrf: String,
    /// Messages to show once.
    pub flashes: Vec<Flash>,
    /// Whether the logged-in account is an admin (the nav shows the admin console).
    pub is_admin: bool,
    /// Whether the nav shows the account links; off on error pages rendered without a session.
    pub show_account_nav: bool,
    /// Cache-busting version of the static assets.
    pub asset_version: &'static str,
    /// The logged-in account has not confirmed its email: the layout shows a banner with a
    /// "resend verification" button.
    pub email_unverified: bool,
}

impl Chrome {
    /// Chrome for pages rendered outside a session (error pages from deep inside a handler).
    pub fn minimal() -> Chrome {
        Chrome { asset_version: crate::assets::version(), ..Chrome::default() }
    }
}
