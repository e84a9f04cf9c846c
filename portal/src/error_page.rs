//! Error pages. They depend on no request context and on no page: `crate::error` renders them
//! from anywhere, and the fallback for unknown routes (`pages::not_found`) adds the visitor's nav.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::chrome::Chrome;

/// A friendly error page with a status.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    chrome: Chrome,
    status: StatusCode,
    title: &'static str,
    message: &'static str,
}

impl ErrorPage {
    /// Any status, title and message.
    pub fn new(status: StatusCode, title: &'static str, message: &'static str) -> ErrorPage {
        ErrorPage { chrome: Chrome::minimal(), status, title, message }
    }

    /// 404.
    pub fn not_found() -> ErrorPage {
        ErrorPage::new(
            StatusCode::NOT_FOUND,
            "Page not found",
            "The page you were looking for does not exist, or you do not have access to it.",
        )
    }

    /// 500.
    pub fn internal() -> ErrorPage {
        ErrorPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "We could not complete your request. It has been logged; please try again in a moment.",
        )
    }

    /// The same page with the visitor's nav.
    pub fn with_chrome(mut self, chrome: Chrome) -> ErrorPage {
        self.chrome = chrome;
        self
    }

    /// The status code as a number, for the template.
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        match self.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "rendering the error page failed");
                (self.status, self.title).into_response()
            }
        }
    }
}

/// For `CatchPanicLayer`: a panicking handler still answers with the 500 page.
pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ErrorPage::internal().into_response()
}
