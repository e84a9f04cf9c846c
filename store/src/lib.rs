//! Turnpike's shared domain types and every SQL statement, for PostgreSQL and SQLite.
//!
//! The gateway, the portal and the workers talk to the database only through [`Store`]. Each
//! table or aggregate has its own module with plain async methods on `Store`; the same SQL text
//! runs on both backends (`$N` placeholders, `ON CONFLICT` upserts, `RETURNING`, integer times),
//! so one test suite covers both.

pub mod clock;
pub mod domain;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod net;
pub mod period;

mod accounts;
mod alerts;
mod analytics;
pub use analytics::{AnalyticsFilter, AnalyticsLine, AnalyticsRow, Grouping, Traffic, TrafficSlot, UNMATCHED};
pub mod histogram;
pub use alerts::{Alert, DeliveryOutcome, DeliveryRow, DueDelivery, ExpiringKey, QuotaWatch, Webhook, EVENT_TYPES};
mod apis;
mod apps;
mod audit;
mod billing_reports;
mod catalog;
pub use catalog::{CatalogOp, PlanRef};
mod changes;
mod db;
mod ids;
pub use ids::{AccountId, ApiId, AppId, InvoiceId, KeyId, PlanId, SubscriptionId};
mod error;
mod invoices;
mod keys;
mod outbox;
mod plans;
mod sessions;
mod subscriptions;
mod throttle;
pub use throttle::Allowance;
mod tokens;
mod usage;

pub use accounts::{Account, AccountStatus, PasswordEvent, Role};
pub use apis::{check_upstream_url, Api, NewApi, Upstream, Visibility};
pub use apps::App;
pub use audit::{Audit, AuditEntry};
pub use billing_reports::DriftRow;
pub use changes::{Change, ChangeKind};
pub use db::{Backend, Store};
pub use error::StoreError;
pub use invoices::{invoice_number, InvoiceLineRow, InvoiceRow, InvoiceSummary, NewInvoice, NewInvoiceLine};
pub use keys::{KeyAuth, KeyRecord, KeyStatus};
pub use outbox::OutboxMessage;
pub use plans::{NewPlan, Plan};
pub use plans::{NewPlanPrice, PlanLimits, PlanPriceRow};
pub use sessions::SESSION_ACCOUNT_KEY;
pub use subscriptions::{Adjustment, PlanChange};
pub use subscriptions::{Entitlement, Subscription};
pub use tokens::{IssuedToken, TokenGrant, TokenPurpose};
pub use usage::{UsageRow, UsageSummary};

mod admin;
pub use admin::{AdminCounts, AuditFilter, AuditRow, DeveloperRow, Page};
pub use apis::{ApiSettings, Lifecycle};
// Personal access tokens and the JSON API's extra queries (issue 4).
mod pats;
pub use pats::{KeyUsage, PatRecord, PersonalToken, Scope, Scopes, PAT_PREFIX};
mod stripe;
mod stripe_mirror;
pub use stripe::{StripeAction, StripeEventOutcome, StripeSubscriptionState, StripeUsagePush};
pub use stripe_mirror::{StripeCreditTotal, StripeDriftCandidate, StripePrice, StripeRefundTotal, StripeSyncDue};
mod usage_series;
pub use usage_series::{HourCalls, HourUsage, HourlyUsageLine, UsageCounts, UsageFilter};
