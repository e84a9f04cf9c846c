//! Stripe bridge state: customers per account, the webhook dedup table, per-subscription event
//! ordering and grace periods, and usage pushes. Only used when Stripe is configured.
//!
//! Every webhook is applied by [`Store::apply_stripe_event`] in ONE transaction whose first
//! statement inserts the event id: a second delivery of the same event (even concurrent) finds the
//! id and changes nothing, and a crash between "seen" and "applied" cannot happen.

use serde::Serialize;

use crate::changes::{record_change, ChangeKind};
use crate::db::{in_tx, on_pool};
use crate::{Store, StoreError};

/// What a verified Stripe event asks for, already mapped to local ids where the event carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeAction {
    /// `checkout.session.completed`: put `app_id` on the paid `plan_id`, active.
    Activate {
        /// App from the session's metadata.
        app_id: i64,
        /// Plan from the session's metadata.
        plan_id: i64,
        /// The Stripe subscription the session created, if any.
        stripe_subscription_id: Option<String>,
        /// The session's customer.
        customer_id: Option<String>,
    },
    /// `invoice.payment_failed`: start the grace period (ends at `grace_until`), unless one runs.
    PaymentFailed {
        /// Stripe subscription of the invoice.
        stripe_subscription_id: String,
        /// End of the grace period (unix seconds).
        grace_until: i64,
    },
    /// `invoice.paid` / `invoice.payment_succeeded`: active at once, grace cleared.
    Paid {
        /// Stripe subscription of the invoice.
        stripe_subscription_id: String,
    },
    /// `customer.subscription.deleted`: canceled.
    Canceled {
        /// The deleted Stripe subscription.
        stripe_subscription_id: String,
    },
    /// `customer.subscription.updated`: Stripe's side changed (Customer Portal, dashboard, dunning,
    /// or the echo of Turnpike's own push). Only what differs from the mirror of Stripe's state
    /// changes the local subscription, so an echo of a push never undoes a newer local change.
    SubscriptionUpdated {
        /// The Stripe subscription.
        stripe_subscription_id: String,
        /// The Turnpike plan of its price (by the catalogue's lookup key or metadata), if known.
        plan_id: Option<i64>,
        /// Stripe's `cancel_at_period_end`.
        cancel_at_period_end: bool,
        /// Stripe's `status` (`active`, `trialing`, `past_due`, `canceled`, …).
        status: String,
    },
    /// `invoice.payment_action_required` (SCA): email the developer the hosted invoice link.
    PaymentActionRequired {
        /// The invoice's customer.
        customer_id: String,
        /// `in_…`.
        invoice_id: String,
        /// Stripe's hosted invoice page, where the developer authenticates the payment.
        hosted_invoice_url: String,
    },
    /// `charge.refunded`: the charge's cumulative refunded amount, for the revenue reports.
    Refunded {
        /// `ch_…`.
        charge_id: String,
        /// The charge's customer.
        customer_id: Option<String>,
        /// ISO 4217 code, lower case.
        currency: String,
        /// Cumulative amount refunded (minor units).
        amount_refunded: i64,
    },
    /// `credit_note.created`/`.updated`/`.voided`: what the note takes off an invoice beyond its
    /// refunds (those arrive as `charge.refunded`), for the revenue reports.
    CreditNote {
        /// `cn_…`.
        credit_note_id: String,
        /// The note's customer.
        customer_id: Option<String>,
        /// ISO 4217 code, lower case.
        currency: String,
        /// `total` minus the amounts refunded to the payment method (minor units, ≥ 0).
        credited: i64,
        /// The note is void (it credits nothing; final).
        voided: bool,
        /// When Stripe created the note (unix seconds).
        created_at: i64,
    },
    /// An event type Turnpike does not act on (recorded so a redelivery is cheap).
    Ignore,
}

impl StripeAction {
    /// One line for the audit log (ids only).
    pub fn describe(&self) -> String {
        match self {
            StripeAction::Activate { app_id, plan_id, stripe_subscription_id, .. } => {
                format!("app {app_id} on plan {plan_id}, active ({})", stripe_subscription_id.as_deref().unwrap_or("no subscription"))
            }
            StripeAction::PaymentFailed { stripe_subscription_id, grace_until } => {
                format!("{stripe_subscription_id}: payment failed, grace until {grace_until}")
            }
            StripeAction::Paid { stripe_subscription_id } => format!("{stripe_subscription_id}: paid, active"),
            StripeAction::Canceled { stripe_subscription_id } => format!("{stripe_subscription_id}: canceled"),
            StripeAction::SubscriptionUpdated { stripe_subscription_id, plan_id, cancel_at_period_end, status } => {
                let plan = plan_id.map_or_else(|| "unknown plan".to_owned(), |p| format!("plan {p}"));
                format!("{stripe_subscription_id}: {status}, {plan}, cancel at period end {cancel_at_period_end}")
            }
            StripeAction::PaymentActionRequired { customer_id, invoice_id, .. } => {
                format!("{invoice_id} of {customer_id}: payment needs authentication, developer emailed")
            }
            StripeAction::Refunded { charge_id, currency, amount_refunded, .. } => {
                format!("{charge_id}: {amount_refunded} {currency} refunded in total")
            }
            StripeAction::CreditNote { credit_note_id, currency, credited, voided, .. } => {
                if *voided {
                    format!("{credit_note_id}: void")
                } else {
                    format!("{credit_note_id}: {credited} {currency} credited beyond refunds")
                }
            }
            StripeAction::Ignore => "ignored".into(),
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StripeEventOutcome {
    /// State changed.
    Applied,
    /// The event id was seen before; nothing changed.
    Duplicate,
    /// Older than the last event applied to that subscription; nothing changed.
    Stale,
    /// No local subscription matches (or the type is not acted on); recorded, nothing changed.
    Unmatched,
}

impl StripeEventOutcome {
    fn as_str(self) -> &'static str {
        match self {
            StripeEventOutcome::Applied => "applied",
            StripeEventOutcome::Duplicate => "duplicate",
            StripeEventOutcome::Stale => "stale",
            StripeEventOutcome::Unmatched => "unmatched",
        }
    }
}

/// Stripe state kept for one local subscription.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StripeSubscriptionState {
    /// Local subscription.
    pub subscription_id: i64,
    /// Stripe subscription id.
    pub stripe_subscription_id: Option<String>,
    /// Stripe customer id.
    pub customer_id: Option<String>,
    /// `created` of the last applied event (unix seconds).
    pub last_event_created: i64,
    /// When the payment failed (the event's `created`), while in grace or past due.
    pub past_due_since: Option<i64>,
    /// End of the grace period, while one runs or ran.
    pub grace_until: Option<i64>,
}

/// One usage push recorded after Stripe accepted it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StripeUsagePush {
    /// Local subscription.
    pub subscription_id: i64,
    /// Period start (unix seconds).
    pub period_start: i64,
    /// Period end (unix seconds, exclusive).
    pub period_end: i64,
    /// Units pushed.
    pub quantity: i64,
    /// The `Idempotency-Key` sent.
    pub idempotency_key: String,
    /// Stripe's invoice item id.
    pub stripe_item_id: String,
}

/// After an update matched nothing: `Stale` if the Stripe subscription is known (a newer event
/// won), else `Unmatched`. A macro so one text serves both backends' transactions.
macro_rules! known_or_stale {
    ($tx:expr, $stripe_sub:expr) => {{
        let known: Option<(i64,)> = sqlx::query_as("SELECT subscription_id FROM stripe_subscriptions WHERE stripe_subscription_id = $1")
            .bind($stripe_sub)
            .fetch_optional(&mut *$tx)
            .await?;
        if known.is_some() {
            StripeEventOutcome::Stale
        } else {
            StripeEventOutcome::Unmatched
        }
    }};
}

/// Set the status of the local subscription behind a Stripe subscription from an event created at
/// `$created`, unless a newer event was applied already; grace cleared, change recorded.
macro_rules! set_status_from_event {
    ($tx:expr, $stripe_sub:expr, $created:expr, $status:expr, $now:expr) => {{
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE stripe_subscriptions SET last_event_created = $2, past_due_since = NULL, grace_until = NULL, updated_at = $3
             WHERE stripe_subscription_id = $1 AND last_event_created <= $2 RETURNING subscription_id",
        )
        .bind($stripe_sub)
        .bind($created)
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        match row {
            None => known_or_stale!($tx, $stripe_sub),
            Some((sub_id,)) => {
                let app: Option<(i64,)> =
                    sqlx::query_as("UPDATE subscriptions SET status = $2, revision = revision + 1 WHERE id = $1 RETURNING app_id")
                        .bind(sub_id)
                        .bind($status)
                        .fetch_optional(&mut *$tx)
                        .await?;
                if let Some((app_id,)) = app {
                    record_change!($tx, ChangeKind::App, app_id.to_string(), $now);
                }
                StripeEventOutcome::Applied
            }
        }
    }};
}

const STATE_COLUMNS: &str = "subscription_id, stripe_subscription_id, customer_id, last_event_created, past_due_since, grace_until";

/// `invoice.payment_action_required`: one email to the customer's account asking to confirm the
/// payment (queued in the event's transaction, so one per event however often delivered).
macro_rules! ask_to_confirm_payment {
    ($tx:ident, $customer_id:expr, $invoice_id:expr, $hosted_invoice_url:expr, $now:expr) => {{
        let (customer_id, invoice_id, hosted_invoice_url, now) = ($customer_id, $invoice_id, $hosted_invoice_url, $now);
        // In the event's transaction: one email per event, however often delivered.
        let to: Option<(String,)> =
            sqlx::query_as("SELECT a.email FROM stripe_customers c JOIN accounts a ON a.id = c.account_id WHERE c.customer_id = $1")
                .bind(customer_id)
                .fetch_optional(&mut *$tx)
                .await?;
        match to {
            None => StripeEventOutcome::Unmatched,
            Some((email,)) => {
                let body = format!(
                    "Your bank asks you to confirm a payment to Turnpike (invoice {invoice_id}).\n\n\
                     Confirm it here: {hosted_invoice_url}\n\n\
                     Until it is confirmed the invoice stays unpaid; your keys keep working during the grace period.\n"
                );
                crate::outbox::queue_email!(
                    &mut *$tx,
                    "stripe_payment_action_required",
                    &email,
                    "Confirm your payment to Turnpike",
                    body,
                    now
                );
                StripeEventOutcome::Applied
            }
        }
    }};
}

/// `credit_note.*`: what a note takes off beyond its refunds; only `issued` → `void` changes a
/// stored note.
macro_rules! record_credit_note {
    ($tx:ident, $credit_note_id:expr, $customer_id:expr, $currency:expr, $credited:expr, $voided:expr, $created_at:expr) => {{
        let (credit_note_id, customer_id, currency, credited, voided, created_at) =
            ($credit_note_id, $customer_id, $currency, $credited, $voided, $created_at);
        let account: Option<(i64,)> = sqlx::query_as("SELECT account_id FROM stripe_customers WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(&mut *$tx)
            .await?;
        let (status, credited) = if *voided { ("void", 0) } else { ("issued", (*credited).max(0)) };
        // Only `issued` → `void` changes a stored note: redeliveries and a late
        // `created` after the void leave it as it is.
        let n = sqlx::query(
            "INSERT INTO stripe_credit_notes (credit_note_id, customer_id, account_id, currency, credited, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (credit_note_id) DO UPDATE SET credited = excluded.credited, status = excluded.status
             WHERE stripe_credit_notes.status <> 'void' AND excluded.status = 'void'",
        )
        .bind(credit_note_id)
        .bind(customer_id)
        .bind(account.map(|a| a.0))
        .bind(currency)
        .bind(credited)
        .bind(status)
        .bind(created_at)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if n > 0 {
            StripeEventOutcome::Applied
        } else {
            StripeEventOutcome::Stale
        }
    }};
}

/// `customer.subscription.updated`/`deleted`: a plan change, a cancellation at period end or an
/// end made at Stripe (Customer Portal) follows into the subscription, in event order.
macro_rules! follow_subscription_update {
    ($tx:ident, $stripe_subscription_id:expr, $plan_id:expr, $cancel_at_period_end:expr, $status:expr, $created:expr, $now:expr) => {{
        let (stripe_subscription_id, plan_id, cancel_at_period_end, status, created, now) =
            ($stripe_subscription_id, $plan_id, $cancel_at_period_end, $status, $created, $now);
        // Locks the mirror row (PostgreSQL) and checks the event order; the mirror
        // columns are returned as they were before this event.
        let mirror: Option<(i64, Option<String>, bool, Option<i64>)> = sqlx::query_as(
            "UPDATE stripe_subscriptions SET last_event_created = $2, updated_at = $3
             WHERE stripe_subscription_id = $1 AND last_event_created <= $2
             RETURNING subscription_id, stripe_status, stripe_cancel_at_period_end, stripe_plan_id",
        )
        .bind(stripe_subscription_id)
        .bind(created)
        .bind(now)
        .fetch_optional(&mut *$tx)
        .await?;
        match mirror {
            None => known_or_stale!($tx, stripe_subscription_id),
            Some((sub_id, was_status, was_cape, was_plan)) => {
                let ended = matches!(status.as_str(), "canceled" | "incomplete_expired");
                let cancel = ended && was_status.as_deref() != Some("canceled");
                let cape = (*cancel_at_period_end != was_cape).then_some(*cancel_at_period_end);
                let plan = plan_id.filter(|p| Some(*p) != was_plan);
                if cancel || cape.is_some() || plan.is_some() {
                    // A plan of another API is never taken (the metadata is Stripe's).
                    let app: Option<(i64,)> = sqlx::query_as(
                        "UPDATE subscriptions SET
                           plan_id = COALESCE((SELECT p.id FROM plans p WHERE p.id = $2 AND p.api_id = subscriptions.api_id), plan_id),
                           pending_plan_id = CASE WHEN $2 IS NULL THEN pending_plan_id ELSE NULL END,
                           cancel_at_period_end = COALESCE($3, cancel_at_period_end),
                           status = CASE WHEN $4 THEN 'canceled' ELSE status END,
                           canceled_at = CASE WHEN $4 THEN $5 ELSE canceled_at END,
                           revision = revision + 1
                         WHERE id = $1 AND status <> 'canceled' RETURNING app_id",
                    )
                    .bind(sub_id)
                    .bind(plan)
                    .bind(cape)
                    .bind(cancel)
                    .bind(now)
                    .fetch_optional(&mut *$tx)
                    .await?;
                    if let Some((app_id,)) = app {
                        record_change!($tx, ChangeKind::App, app_id.to_string(), now);
                    }
                }
                let stripe_status = if ended { "canceled" } else { "active" };
                sqlx::query(
                    "UPDATE stripe_subscriptions SET stripe_status = $2, stripe_cancel_at_period_end = $3,
                       stripe_plan_id = COALESCE($4, stripe_plan_id) WHERE subscription_id = $1",
                )
                .bind(sub_id)
                .bind(stripe_status)
                .bind(cancel_at_period_end)
                .bind(plan_id)
                .execute(&mut *$tx)
                .await?;
                StripeEventOutcome::Applied
            }
        }
    }};
}

/// A checkout completed (`StripeAction::Activate`): put the app on the plan (a new subscription
/// or a re-plan) and link it to Stripe's subscription, unless a newer event already moved it.
/// Inside `apply_stripe_event`'s transaction; evaluates to the outcome.
macro_rules! activate_from_event {
    ($tx:ident, $app_id:expr, $plan_id:expr, $stripe_subscription_id:expr, $customer_id:expr, $created:expr, $now:expr) => {{
        let (app_id, plan_id, stripe_subscription_id, customer_id, created, now) =
            ($app_id, $plan_id, $stripe_subscription_id, $customer_id, $created, $now);
        // Ordering first: an older checkout event must not re-plan a subscription
        // that a newer event already moved.
        let last: Option<(i64,)> = sqlx::query_as(
            "SELECT ss.last_event_created FROM stripe_subscriptions ss
             JOIN subscriptions s ON s.id = ss.subscription_id JOIN plans p ON p.api_id = s.api_id
             WHERE s.app_id = $1 AND p.id = $2")
            .bind(app_id).bind(plan_id).fetch_optional(&mut *$tx).await?;
        if last.is_some_and(|(l,)| created < l) {
            StripeEventOutcome::Stale
        } else {
            let anchor = crate::clock::hour_start(now);
            let sub: Option<(i64, i64)> = sqlx::query_as(
                "INSERT INTO subscriptions (app_id, api_id, plan_id, billing_anchor, created_at)
                 SELECT a.id, p.api_id, p.id, $3, $3 FROM plans p, apps a WHERE p.id = $2 AND a.id = $1
                 ON CONFLICT (app_id, api_id) DO UPDATE SET plan_id = excluded.plan_id, status = 'active',
                   revision = subscriptions.revision + 1
                 RETURNING id, app_id")
                .bind(app_id).bind(plan_id).bind(anchor).fetch_optional(&mut *$tx).await?;
            match sub {
                None => StripeEventOutcome::Unmatched,
                Some((sub_id, app_id)) => {
                    sqlx::query(
                        "INSERT INTO stripe_subscriptions
                           (subscription_id, stripe_subscription_id, customer_id, last_event_created, past_due_since, grace_until, updated_at,
                            stripe_status, stripe_cancel_at_period_end, stripe_plan_id)
                         VALUES ($1, $2, $3, $4, NULL, NULL, $5, 'active', FALSE, $6)
                         ON CONFLICT (subscription_id) DO UPDATE SET
                           stripe_status = 'active', stripe_cancel_at_period_end = FALSE, stripe_plan_id = excluded.stripe_plan_id,
                           stripe_subscription_id = COALESCE(excluded.stripe_subscription_id, stripe_subscriptions.stripe_subscription_id),
                           customer_id = COALESCE(excluded.customer_id, stripe_subscriptions.customer_id),
                           last_event_created = excluded.last_event_created,
                           past_due_since = NULL, grace_until = NULL, updated_at = excluded.updated_at")
                        .bind(sub_id).bind(stripe_subscription_id).bind(customer_id).bind(created).bind(now).bind(plan_id)
                        .execute(&mut *$tx).await?;
                    record_change!($tx, ChangeKind::App, app_id.to_string(), now);
                    StripeEventOutcome::Applied
                }
            }
        }
    }};
}

impl Store {
    /// The account's Stripe customer id, if one was created.
    pub async fn stripe_customer(&self, account_id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_pool!(self, p => sqlx::query_as(
            "SELECT customer_id FROM stripe_customers WHERE account_id = $1").bind(account_id).fetch_optional(p).await?);
        Ok(row.map(|r| r.0))
    }

    /// Remember the account's Stripe customer. A concurrent first checkout may race: the first
    /// stored id wins and is returned (both calls used the same idempotency key, so Stripe
    /// answered both with the same customer anyway).
    pub async fn set_stripe_customer(&self, account_id: i64, customer_id: &str, now: i64) -> Result<String, StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO stripe_customers (account_id, customer_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (account_id) DO NOTHING")
            .bind(account_id).bind(customer_id).bind(now).execute(p).await?.rows_affected());
        self.stripe_customer(account_id).await?.ok_or(StoreError::NotFound)
    }

    /// Apply one verified event exactly once. The event id is inserted first; a duplicate (even a
    /// concurrent one, which waits for the first transaction) returns [`StripeEventOutcome::Duplicate`].
    pub async fn apply_stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        created: i64,
        action: &StripeAction,
        now: i64,
    ) -> Result<StripeEventOutcome, StoreError> {
        Ok(in_tx!(self, tx => {
            // First statement is a write: on SQLite the transaction takes the write lock here (no
            // read snapshot to upgrade), on PostgreSQL a concurrent twin waits on the primary key.
            let fresh = sqlx::query(
                "INSERT INTO stripe_events (id, type, created, outcome, received_at) VALUES ($1, $2, $3, 'pending', $4)
                 ON CONFLICT (id) DO NOTHING")
                .bind(event_id).bind(event_type).bind(created).bind(now).execute(&mut *tx).await?.rows_affected();
            if fresh == 0 {
                StripeEventOutcome::Duplicate
            } else {
                let outcome = match action {
                    StripeAction::Ignore => StripeEventOutcome::Unmatched,
                    StripeAction::Activate { app_id, plan_id, stripe_subscription_id, customer_id } => {
                        activate_from_event!(tx, app_id, plan_id, stripe_subscription_id, customer_id, created, now)
                    }
                    StripeAction::PaymentFailed { stripe_subscription_id, grace_until } => {
                        // The grace period starts once: a retried payment that fails again does
                        // not extend it.
                        let n = sqlx::query(
                            "UPDATE stripe_subscriptions SET last_event_created = $2, updated_at = $4,
                               past_due_since = COALESCE(past_due_since, $2), grace_until = COALESCE(grace_until, $3)
                             WHERE stripe_subscription_id = $1 AND last_event_created <= $2
                               AND subscription_id IN (SELECT id FROM subscriptions WHERE status <> 'canceled')")
                            .bind(stripe_subscription_id).bind(created).bind(grace_until).bind(now)
                            .execute(&mut *tx).await?.rows_affected();
                        if n > 0 { StripeEventOutcome::Applied } else { known_or_stale!(tx, stripe_subscription_id) }
                    }
                    StripeAction::Paid { stripe_subscription_id } => {
                        set_status_from_event!(tx, stripe_subscription_id, created, "active", now)
                    }
                    StripeAction::Canceled { stripe_subscription_id } => {
                        sqlx::query("UPDATE stripe_subscriptions SET stripe_status = 'canceled' WHERE stripe_subscription_id = $1")
                            .bind(stripe_subscription_id).execute(&mut *tx).await?;
                        set_status_from_event!(tx, stripe_subscription_id, created, "canceled", now)
                    }
                    StripeAction::PaymentActionRequired { customer_id, invoice_id, hosted_invoice_url } => {
                        ask_to_confirm_payment!(tx, customer_id, invoice_id, hosted_invoice_url, now)
                    }
                    StripeAction::Refunded { charge_id, customer_id, currency, amount_refunded } => {
                        let account: Option<(i64,)> = sqlx::query_as("SELECT account_id FROM stripe_customers WHERE customer_id = $1")
                            .bind(customer_id).fetch_optional(&mut *tx).await?;
                        let n = sqlx::query(
                            "INSERT INTO stripe_refunds (charge_id, customer_id, account_id, currency, amount_refunded, refunded_at)
                             VALUES ($1, $2, $3, $4, $5, $6)
                             ON CONFLICT (charge_id) DO UPDATE SET amount_refunded = excluded.amount_refunded, refunded_at = excluded.refunded_at
                             WHERE stripe_refunds.amount_refunded < excluded.amount_refunded")
                            .bind(charge_id).bind(customer_id).bind(account.map(|a| a.0)).bind(currency).bind(amount_refunded).bind(created)
                            .execute(&mut *tx).await?.rows_affected();
                        if n > 0 { StripeEventOutcome::Applied } else { StripeEventOutcome::Stale }
                    }
                    StripeAction::CreditNote { credit_note_id, customer_id, currency, credited, voided, created_at } => {
                        record_credit_note!(tx, credit_note_id, customer_id, currency, credited, voided, created_at)
                    }
                    StripeAction::SubscriptionUpdated { stripe_subscription_id, plan_id, cancel_at_period_end, status } => {
                        follow_subscription_update!(tx, stripe_subscription_id, plan_id, cancel_at_period_end, status, created, now)
                    }
                };
                if outcome == StripeEventOutcome::Applied {
                    // Audited in the same transaction: one row per applied event, never for a
                    // duplicate. The detail holds ids only, never a secret.
                    sqlx::query("INSERT INTO audit_log (at, actor_id, action, target, detail) VALUES ($1, NULL, $2, $3, $4)")
                        .bind(now).bind(format!("stripe.{event_type}")).bind(format!("stripe_event:{event_id}")).bind(action.describe())
                        .execute(&mut *tx).await?;
                }
                sqlx::query("UPDATE stripe_events SET outcome = $2 WHERE id = $1")
                    .bind(event_id).bind(outcome.as_str()).execute(&mut *tx).await?;
                outcome
            }
        }))
    }

    /// How many events with this id were recorded (0 or 1), and the outcome.
    pub async fn stripe_event_outcome(&self, event_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_pool!(self, p => sqlx::query_as(
            "SELECT outcome FROM stripe_events WHERE id = $1").bind(event_id).fetch_optional(p).await?);
        Ok(row.map(|r| r.0))
    }

    /// The Stripe state of a local subscription.
    pub async fn stripe_subscription_state(&self, subscription_id: i64) -> Result<Option<StripeSubscriptionState>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(&format!(
            "SELECT {STATE_COLUMNS} FROM stripe_subscriptions WHERE subscription_id = $1"))
            .bind(subscription_id).fetch_optional(p).await?))
    }

    /// Worker step: every active subscription whose grace period ended by `now` becomes
    /// `past_due` (gateways answer 402) with a change record. Returns how many flipped.
    pub async fn expire_stripe_grace(&self, now: i64) -> Result<u64, StoreError> {
        Ok(in_tx!(self, tx => {
            let flipped: Vec<(i64, i64)> = sqlx::query_as(
                "UPDATE subscriptions SET status = 'past_due', revision = revision + 1
                 WHERE status = 'active' AND id IN
                   (SELECT subscription_id FROM stripe_subscriptions WHERE grace_until IS NOT NULL AND grace_until <= $1)
                 RETURNING id, app_id")
                .bind(now).fetch_all(&mut *tx).await?;
            for (sub_id, app_id) in &flipped {
                record_change!(tx, ChangeKind::App, app_id.to_string(), now);
                sqlx::query("INSERT INTO audit_log (at, actor_id, action, target, detail) VALUES ($1, NULL, 'stripe.grace_ended', $2, 'past_due')")
                    .bind(now).bind(format!("subscription:{sub_id}")).execute(&mut *tx).await?;
            }
            flipped.len() as u64
        }))
    }

    /// What a checkout of `app_id` onto `plan_id` needs: the plan and its API's display name, only
    /// if the app may take that plan: the API is **public** (what the catalog's Subscribe allows),
    /// or the app already holds a live subscription to it (a private API the owner granted; moving
    /// between its plans). A draft API, or a private one the app is not on, is
    /// [`StoreError::NotFound`], as it is everywhere else a developer could learn it exists.
    pub async fn stripe_checkout_plan(&self, app_id: i64, plan_id: i64) -> Result<(crate::Plan, String), StoreError> {
        let plan: Option<crate::Plan> = on_pool!(self, p => sqlx::query_as(
            "SELECT p.id, p.api_id, p.slug, p.name, p.rate_per_second, p.burst, p.monthly_quota, p.currency,
                    p.flat_price_minor, p.unit_price_minor_per_1000, p.is_default
             FROM plans p JOIN apis a ON a.id = p.api_id WHERE p.id = $1 AND (a.visibility = 'public'
               OR (a.visibility = 'private' AND EXISTS (SELECT 1 FROM subscriptions s
                     WHERE s.app_id = $2 AND s.api_id = a.id AND s.status <> 'canceled')))")
            .bind(plan_id).bind(app_id).fetch_optional(p).await?);
        let plan = plan.ok_or(StoreError::NotFound)?;
        let name: (String,) = on_pool!(self, p => sqlx::query_as("SELECT name FROM apis WHERE id = $1")
            .bind(plan.api_id).fetch_one(p).await?);
        Ok((plan, name.0))
    }

    /// The currency of the subscription's plan.
    pub async fn stripe_subscription_currency(&self, subscription_id: i64) -> Result<String, StoreError> {
        let row: Option<(String,)> = on_pool!(self, p => sqlx::query_as(
            "SELECT p.currency FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.id = $1")
            .bind(subscription_id).fetch_optional(p).await?);
        row.map(|r| r.0).ok_or(StoreError::NotFound)
    }

    /// The usage already pushed for this subscription and period, if any.
    pub async fn stripe_usage_push(&self, subscription_id: i64, period_start: i64) -> Result<Option<StripeUsagePush>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT subscription_id, period_start, period_end, quantity, idempotency_key, stripe_item_id
             FROM stripe_usage_pushes WHERE subscription_id = $1 AND period_start = $2")
            .bind(subscription_id).bind(period_start).fetch_optional(p).await?))
    }

    /// Record a usage push Stripe accepted (first record wins; a repeat is a no-op).
    pub async fn record_stripe_usage_push(&self, push: &StripeUsagePush, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO stripe_usage_pushes (subscription_id, period_start, period_end, quantity, idempotency_key, stripe_item_id, pushed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subscription_id, period_start) DO NOTHING")
            .bind(push.subscription_id).bind(push.period_start).bind(push.period_end).bind(push.quantity)
            .bind(&push.idempotency_key).bind(&push.stripe_item_id).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }
}
