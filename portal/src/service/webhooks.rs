//! Owners' outgoing webhooks: add and remove endpoints (the console and, later, the admin API
//! call these). Deliveries are the worker's (`turnpike::alerts`).

use rand::RngCore;
use turnpike_store::{AccountId, Audit, Store, StoreError, EVENT_TYPES};

/// Why an endpoint was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not an `http(s)://` URL the worker can call.
    #[error("{0}")]
    Url(String),
    /// No event type chosen, or one Turnpike does not raise.
    #[error("{0}")]
    Events(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new endpoint: its id and the signing secret, shown once.
#[derive(Debug)]
pub struct Created {
    /// Endpoint id.
    pub id: i64,
    /// `whsec_…`: receivers verify `Turnpike-Signature` with it.
    pub secret: String,
}

/// Register `url` for `events` (each one of [`EVENT_TYPES`], or `*` for all), audited.
pub async fn create(store: &Store, actor: AccountId, url: &str, events: &[String], now: i64) -> Result<Created, WebhookError> {
    let url = url.trim();
    turnpike_store::check_upstream_url(url).map_err(|why| WebhookError::Url(format!("Endpoint URL: {why}.")))?;
    let events: Vec<&str> = events.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
    if events.is_empty() {
        return Err(WebhookError::Events("Choose at least one event.".into()));
    }
    if let Some(bad) = events.iter().find(|e| **e != "*" && !EVENT_TYPES.contains(e)) {
        return Err(WebhookError::Events(format!("Unknown event type {bad:?}.")));
    }
    let events = if events.contains(&"*") { "*".to_owned() } else { events.join(",") };
    let mut random = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let secret = format!("whsec_{}", hex::encode(random));
    let audit = Audit::new(Some(actor.get()), "webhook.create", "", format!("{url} events={events}"));
    let id = store.create_webhook(url, &secret, &events, &audit, now).await?;
    Ok(Created { id, secret })
}

/// Remove endpoint `id` and its delivery log, audited.
pub async fn delete(store: &Store, actor: AccountId, id: i64, now: i64) -> Result<(), StoreError> {
    store.delete_webhook(id, &Audit::new(Some(actor.get()), "webhook.delete", format!("webhook:{id}"), ""), now).await
}
