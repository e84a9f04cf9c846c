//! One function per action. Each enforces the action's rules, then writes the change and its
//! audit row in one transaction (through the store's `Audit`), and is called by every surface
//! alike: the HTML pages, the JSON API and, later, the admin API. Handlers only parse the
//! request, call one of these and render the result or the [`ServiceError`] their own way.

pub mod accounts;
pub mod apis;
pub mod apps;
pub mod config;
pub mod developers;
pub mod invoices;
pub mod keys;
pub mod plans;
pub mod prices;
pub mod subscriptions;
pub mod webhooks;

use turnpike_ledger::LedgerError;
use turnpike_store::StoreError;

/// Why an action was refused or failed. Surfaces choose the words and the status; the variant is
/// the contract.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such resource, or one the actor does not own (never "forbidden": that would leak that
    /// it exists).
    #[error("not found")]
    NotFound,
    /// A name failed validation; nothing changed.
    #[error("invalid name: {0:?}")]
    InvalidName(NameError),
    /// The app name is taken among the actor's apps; nothing changed.
    #[error("app name taken: {0}")]
    AppNameTaken(String),
    /// The actor's email address is not verified: keys are refused (a pre-registered address
    /// must not get working credentials before its owner confirms it).
    #[error("email not verified")]
    EmailUnverified,
    /// The key is revoked, suspended or already expiring, so it cannot be rotated.
    #[error("key not rotatable")]
    NotRotatable,
    /// An app with metered usage or invoices is kept for billing.
    #[error("app has billing history")]
    HasBillingHistory,
    /// A slug (of a plan or an API) is taken; nothing changed.
    #[error("slug taken")]
    SlugTaken,
    /// The email address already has an account; nothing changed.
    #[error("email taken")]
    EmailTaken,
    /// The invoice is not open (already paid or void); nothing changed.
    #[error("invoice not open")]
    NotOpen,
    /// The resource changed meanwhile (a concurrent plan change, a webhook); nothing changed.
    #[error("changed meanwhile")]
    Stale,
    /// Stripe bills one of the account's subscriptions: it is changed there, not here.
    #[error("billed through stripe")]
    StripeBilled,
    /// Pricing failed or a stored price is unreadable (logged, never shown).
    #[error("billing: {0}")]
    Billing(String),
    /// Fields failed their rules; nothing changed.
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldProblem>),
    /// Another API already routes the same host and prefix; nothing changed.
    #[error("route taken")]
    RouteTaken,
    /// The database failed (logged, never shown).
    #[error("store: {0}")]
    Store(StoreError),
}

/// One field that failed its rule: the field's name (as the JSON API and the declarative file
/// spell it) and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// e.g. `route_prefix`.
    pub field: &'static str,
    /// Why it was refused.
    pub message: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldProblem {
        FieldProblem { field, message: message.into() }
    }
}

impl From<LedgerError> for ServiceError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Store(StoreError::Stale) => ServiceError::Stale,
            LedgerError::Store(e) => e.into(),
            e => ServiceError::Billing(e.to_string()),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            e => ServiceError::Store(e),
        }
    }
}

/// A refusal the page did not handle itself: a missing resource is the 404 page, anything else
/// the 500 page (with the cause logged).
impl From<ServiceError> for crate::error::PortalError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => crate::error::PortalError::NotFound,
            ServiceError::Store(e) => crate::error::PortalError::Store(e),
            other => crate::error::PortalError::Store(StoreError::Corrupt(format!("unhandled refusal: {other}"))),
        }
    }
}

/// A unique-constraint refusal ([`StoreError::Conflict`]) as `taken`, any other store error as
/// itself: the one mapping for "that name, slug or address is already used".
pub(crate) fn taken(taken: ServiceError) -> impl FnOnce(StoreError) -> ServiceError {
    move |e| match e {
        StoreError::Conflict => taken,
        e => e.into(),
    }
}

/// Service result.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Longest app or key name.
pub const MAX_NAME_CHARS: usize = 80;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Nothing but white space.
    Empty,
    /// More than [`MAX_NAME_CHARS`] characters.
    TooLong,
    /// A control character.
    ControlCharacter,
}

/// The one name rule for apps and keys: trimmed, 1–80 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(NameError::TooLong)
    } else if name.chars().any(char::is_control) {
        Err(NameError::ControlCharacter)
    } else {
        Ok(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("  Billing bot "), Ok("Billing bot".to_owned()));
        assert_eq!(parse_name("   "), Err(NameError::Empty));
        assert_eq!(parse_name(&"x".repeat(81)), Err(NameError::TooLong));
        assert!(parse_name(&"é".repeat(80)).is_ok());
        assert_eq!(parse_name("a\u{0}b"), Err(NameError::ControlCharacter));
    }
}
