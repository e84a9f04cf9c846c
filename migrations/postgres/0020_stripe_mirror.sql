-- Turnpike schema: Stripe as a mirror the worker converges (postgres). Keep in step with the other backend.

-- What Stripe holds for each Stripe-backed subscription, as far as Turnpike knows: set when a
-- webhook reports it and when the worker's push is accepted. The worker pushes every subscription
-- whose local (status, cancel_at_period_end, plan_id) differs from this mirror, with the
-- Idempotency-Key tp-sub-{subscription_id}-r{revision}.
ALTER TABLE stripe_subscriptions ADD COLUMN stripe_status TEXT;
ALTER TABLE stripe_subscriptions ADD COLUMN stripe_cancel_at_period_end BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE stripe_subscriptions ADD COLUMN stripe_plan_id BIGINT;
ALTER TABLE stripe_subscriptions ADD COLUMN pushed_revision BIGINT;
-- Rows from before the mirror existed are taken to agree with Stripe.
UPDATE stripe_subscriptions SET stripe_status = (SELECT status FROM subscriptions s WHERE s.id = subscription_id),
    stripe_cancel_at_period_end = (SELECT cancel_at_period_end FROM subscriptions s WHERE s.id = subscription_id),
    stripe_plan_id = (SELECT plan_id FROM subscriptions s WHERE s.id = subscription_id);

-- The catalogue: one Stripe Price per paid plan price version (base fee, monthly), found at
-- Stripe by lookup_key turnpike_plan_{plan_id}_v{version}; archived when superseded.
CREATE TABLE stripe_prices (
    lookup_key         TEXT PRIMARY KEY,
    plan_id            BIGINT NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    version            BIGINT NOT NULL,
    stripe_product_id  TEXT NOT NULL,
    stripe_price_id    TEXT NOT NULL,
    active             BOOLEAN NOT NULL,
    synced_at          BIGINT NOT NULL
);
CREATE INDEX stripe_prices_plan_idx ON stripe_prices(plan_id, version);
CREATE INDEX stripe_prices_price_idx ON stripe_prices(stripe_price_id);

-- Refunds Stripe reported (`charge.refunded`), by charge: the cumulative amount refunded, for the
-- revenue reports. Redeliveries and reordering keep the largest amount seen.
CREATE TABLE stripe_refunds (
    charge_id        TEXT PRIMARY KEY,
    customer_id      TEXT,
    account_id       BIGINT REFERENCES accounts(id) ON DELETE SET NULL,
    currency         TEXT NOT NULL,
    amount_refunded  BIGINT NOT NULL CHECK (amount_refunded >= 0),
    refunded_at      BIGINT NOT NULL
);
CREATE INDEX stripe_refunds_at_idx ON stripe_refunds(refunded_at);
