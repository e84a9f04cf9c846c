-- Turnpike schema: billing (sqlite). Keep in step with migrations/postgres/0005_billing.sql.

-- Versioned plan prices: editing a plan's pricing inserts a new version; invoices record the
-- version they used. `pricing` is turnpike_billing::Pricing as JSON. `billable` names which
-- metered requests count: 'admitted' or 'admitted_non_5xx' (see billing/src/ledger.rs).
CREATE TABLE plan_prices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id     BIGINT NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    pricing     TEXT NOT NULL,
    trial_days  BIGINT NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    billable    TEXT NOT NULL DEFAULT 'admitted_non_5xx' CHECK (billable IN ('admitted', 'admitted_non_5xx')),
    created_at  BIGINT NOT NULL,
    created_by  BIGINT,
    CONSTRAINT plan_prices_plan_version_key UNIQUE (plan_id, version)
);

-- Plan changes that wait for the period end, and cancellation.
ALTER TABLE subscriptions ADD COLUMN pending_plan_id BIGINT REFERENCES plans(id);
ALTER TABLE subscriptions ADD COLUMN cancel_at_period_end BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN canceled_at BIGINT;

-- Every subscription change, for proration and the audit trail. Base-fee adjustments
-- (proration, trial, cancel-now credits) become lines of the period's invoice.
CREATE TABLE billing_adjustments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    period_start    BIGINT NOT NULL,
    description     TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX billing_adjustments_sub_idx ON billing_adjustments(subscription_id, period_start);

-- Finalized invoices: number (gapless, from invoice_counter in the finalizing transaction),
-- the plan and price version used, and the billable usage invoiced (for the drift check).
ALTER TABLE invoices ADD COLUMN number TEXT;
ALTER TABLE invoices ADD COLUMN plan_id BIGINT;
ALTER TABLE invoices ADD COLUMN plan_price_id BIGINT;
ALTER TABLE invoices ADD COLUMN usage_quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN due_at BIGINT;
ALTER TABLE invoices ADD COLUMN paid_at BIGINT;
ALTER TABLE invoices ADD COLUMN finalized_at BIGINT;
CREATE UNIQUE INDEX invoices_number_key ON invoices(number);
CREATE INDEX invoices_status_idx ON invoices(status, due_at);

-- Line traceability: usage lines cover the subscription's usage_hourly buckets with
-- hour_from <= hour < hour_to; source_admitted / source_5xx are those buckets' totals.
ALTER TABLE invoice_lines ADD COLUMN line_no BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoice_lines ADD COLUMN kind TEXT NOT NULL DEFAULT 'usage';
ALTER TABLE invoice_lines ADD COLUMN unit_price_minor BIGINT;
ALTER TABLE invoice_lines ADD COLUMN unit_per BIGINT;
ALTER TABLE invoice_lines ADD COLUMN hour_from BIGINT;
ALTER TABLE invoice_lines ADD COLUMN hour_to BIGINT;
ALTER TABLE invoice_lines ADD COLUMN source_admitted BIGINT;
ALTER TABLE invoice_lines ADD COLUMN source_5xx BIGINT;

-- One row: the last invoice number handed out.
CREATE TABLE invoice_counter (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);
INSERT INTO invoice_counter (id, last) VALUES (1, 0);
