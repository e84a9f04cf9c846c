//! Outgoing webhooks: endpoints product owners register for events, and each one's delivery log.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use turnpike_store::EVENT_TYPES;

use super::common::{actor, Section};
use crate::ctx::{Chrome, Ctx, FlashKind};
use crate::error::PortalResult;
use crate::format::datetime;
use crate::pages::parse_id;
use crate::service::webhooks::{self, WebhookError};
use crate::PortalState;

/// Deliveries shown per endpoint.
const LOG_ROWS: i64 = 20;

/// An endpoint with its recent deliveries.
#[derive(Debug)]
pub struct EndpointView {
    id: i64,
    url: String,
    events: String,
    created: String,
    deliveries: Vec<DeliveryView>,
}

/// A row of the delivery log.
#[derive(Debug)]
pub struct DeliveryView {
    event_id: i64,
    event_type: String,
    status: String,
    attempts: i64,
    answer: String,
    when: String,
}

/// `GET /admin/webhooks`.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "admin/webhooks.html")]
pub struct WebhooksPage {
    chrome: Chrome,
    section: Section,
    endpoints: Vec<EndpointView>,
    event_types: &'static [&'static str],
    error: Option<String>,
    url: String,
    /// The secret of the endpoint just added (shown once).
    secret: Option<String>,
}

async fn page(state: &PortalState, ctx: &Ctx, error: Option<String>, url: String, secret: Option<String>) -> PortalResult<WebhooksPage> {
    let mut endpoints = Vec::new();
    for w in state.store.list_webhooks().await? {
        let deliveries = state
            .store
            .webhook_deliveries(w.id, LOG_ROWS)
            .await?
            .into_iter()
            .map(|d| DeliveryView {
                event_id: d.event_id,
                event_type: d.event_type,
                answer: match (d.last_status, d.last_error) {
                    (Some(s), _) => format!("HTTP {s}"),
                    (None, Some(e)) => e,
                    (None, None) => "not tried yet".to_owned(),
                },
                when: match (d.status.as_str(), d.delivered_at) {
                    ("delivered", Some(at)) => format!("delivered {}", datetime(at)),
                    ("pending", _) => format!("next try {}", datetime(d.next_attempt_at)),
                    _ => "gave up".to_owned(),
                },
                status: d.status,
                attempts: d.attempts,
            })
            .collect();
        endpoints.push(EndpointView { id: w.id, url: w.url, events: w.events, created: datetime(w.created_at), deliveries });
    }
    Ok(WebhooksPage { chrome: ctx.chrome().await?, section: Section::Webhooks, endpoints, event_types: EVENT_TYPES, error, url, secret })
}

/// `GET /admin/webhooks`.
pub async fn list(State(state): State<PortalState>, ctx: Ctx) -> PortalResult<WebhooksPage> {
    page(&state, &ctx, None, String::new(), None).await
}

/// `POST /admin/webhooks`: `url` and one `events` field per chosen type.
pub async fn create(State(state): State<PortalState>, ctx: Ctx, body: axum::body::Bytes) -> PortalResult<Response> {
    let admin = actor(&ctx)?;
    let mut url = String::new();
    let mut events = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "url" => url = v.chars().take(2000).collect(),
            "events" => events.push(v.into_owned()),
            _ => {}
        }
    }
    match webhooks::create(&state.store, admin, &url, &events, state.clock.now()).await {
        Ok(created) => {
            ctx.flash(FlashKind::Success, format!("Added endpoint {}. Copy its signing secret now: it is shown once.", created.id)).await?;
            Ok(page(&state, &ctx, None, String::new(), Some(created.secret)).await?.into_response())
        }
        Err(WebhookError::Store(e)) => Err(e.into()),
        Err(e) => {
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page(&state, &ctx, Some(e.to_string()), url, None).await?).into_response())
        }
    }
}

/// `POST /admin/webhooks/{id}/delete`.
pub async fn delete(State(state): State<PortalState>, ctx: Ctx, Path(id): Path<String>) -> PortalResult<Response> {
    let admin = actor(&ctx)?;
    let id = parse_id(&id)?;
    webhooks::delete(&state.store, admin, id, state.clock.now()).await?;
    ctx.flash(FlashKind::Success, format!("Removed endpoint {id} and its delivery log.")).await?;
    Ok(Redirect::to("/admin/webhooks").into_response())
}
