//! Invoice actions of the local ledger: mark an open invoice paid, void it.

use turnpike_store::{Audit, Store, StoreError};

use super::{ServiceError, ServiceResult};

fn not_open(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotOpen,
        e => e.into(),
    }
}

/// "Payment received" for open invoice `id`; anything but an open invoice is
/// [`ServiceError::NotOpen`].
pub async fn mark_paid(store: &Store, actor_id: Option<i64>, id: i64, now: i64) -> ServiceResult<()> {
    let audit = Audit::new(actor_id, "invoice.paid", format!("invoice:{id}"), "");
    store.mark_invoice_paid(id, &audit, now).await.map_err(not_open)
}

/// Void open invoice `id`; anything but an open invoice is [`ServiceError::NotOpen`].
pub async fn void(store: &Store, actor_id: Option<i64>, id: i64, now: i64) -> ServiceResult<()> {
    let audit = Audit::new(actor_id, "invoice.void", format!("invoice:{id}"), "");
    store.void_invoice(id, &audit, now).await.map_err(not_open)
}
