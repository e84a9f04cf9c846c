//! Invoice actions of the local ledger: mark an open invoice paid, void it.

use turnpike_store::{AccountId, Audit, InvoiceId, Store, StoreError};

use super::{ServiceError, ServiceResult};

fn not_open(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotOpen,
        e => e.into(),
    }
}

/// "Payment received" for open invoice `id`; anything but an open invoice is
/// [`ServiceError::NotOpen`].
pub async fn mark_paid(store: &Store, actor_id: Option<AccountId>, id: InvoiceId, now: i64) -> ServiceResult<()> {
    let audit = Audit::new(actor_id.map(AccountId::get), "invoice.paid", format!("invoice:{id}"), "");
    store.mark_invoice_paid(id.get(), &audit, now).await.map_err(not_open)
}

/// Void open invoice `id`; anything but an open invoice is [`ServiceError::NotOpen`].
pub async fn void(store: &Store, actor_id: Option<AccountId>, id: InvoiceId, now: i64) -> ServiceResult<()> {
    let audit = Audit::new(actor_id.map(AccountId::get), "invoice.void", format!("invoice:{id}"), "");
    store.void_invoice(id.get(), &audit, now).await.map_err(not_open)
}
