//! `GET /api/docs`: the JSON API's reference, rendered by vendored Swagger UI from
//! `/api/openapi.json`. The page's script is a file (`static/api/docs.js`): the CSP forbids
//! inline scripts. "Try it out" calls use the visitor's session; the script sends the session's
//! CSRF token (from a `<meta>` tag) in `X-CSRF-Token` on writes.

use askama::Template;
use askama_web::WebTemplate;

use crate::ctx::{Chrome, Ctx};
use crate::error::PortalResult;

/// The docs page.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "api_docs.html")]
pub struct DocsPage {
    chrome: Chrome,
}

/// `GET /api/docs`.
pub async fn page(mut ctx: Ctx) -> PortalResult<DocsPage> {
    if ctx.account.is_some() {
        ctx.ensure_csrf().await?;
    }
    Ok(DocsPage { chrome: ctx.chrome().await? })
}
