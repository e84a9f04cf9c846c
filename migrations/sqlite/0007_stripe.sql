-- Turnpike schema: Stripe bridge (sqlite). Only used when Stripe is configured.

-- One Stripe customer per developer account.
CREATE TABLE stripe_customers (
    account_id   BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    customer_id  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT stripe_customers_customer_key UNIQUE (customer_id)
);

-- Every webhook event applied (or deliberately ignored), by Stripe's event id: the dedup guard.
-- Inserted first in the same transaction as the state change it causes.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);

-- Per local subscription: the Stripe subscription behind it, the `created` time of the last event
-- applied (older events are ignored), and the grace period after a failed payment.
CREATE TABLE stripe_subscriptions (
    subscription_id         BIGINT PRIMARY KEY REFERENCES subscriptions(id) ON DELETE CASCADE,
    stripe_subscription_id  TEXT,
    customer_id             TEXT,
    last_event_created      BIGINT NOT NULL,
    past_due_since          BIGINT,
    grace_until             BIGINT,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX stripe_subscriptions_stripe_idx ON stripe_subscriptions(stripe_subscription_id);
CREATE INDEX stripe_subscriptions_grace_idx ON stripe_subscriptions(grace_until);

-- Usage pushed to Stripe as invoice items, once per subscription and period.
CREATE TABLE stripe_usage_pushes (
    subscription_id  BIGINT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    period_start     BIGINT NOT NULL,
    period_end       BIGINT NOT NULL,
    quantity         BIGINT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    stripe_item_id   TEXT NOT NULL,
    pushed_at        BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, period_start)
);
