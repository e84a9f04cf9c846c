-- Turnpike schema: usage alerts and outgoing webhooks (sqlite).

-- Quota thresholds (percent of the monthly quota) that email the developer, per plan.
ALTER TABLE plans ADD COLUMN quota_alert_percents TEXT NOT NULL DEFAULT '80,100';

-- Every alert sent: the primary key makes each (kind, subject, period, threshold) send once,
-- however many workers run and however often they restart. Inserted in the same transaction as
-- the email (outbox) and the webhook event it causes.
CREATE TABLE alerts_sent (
    kind          TEXT NOT NULL,      -- 'quota' (subject: subscription) or 'key_expiry' (subject: key)
    subject_id    BIGINT NOT NULL,
    period_start  BIGINT NOT NULL,    -- quota: the billing period; key_expiry: the expiry time
    threshold     BIGINT NOT NULL,    -- quota: percent; key_expiry: days before expiry
    sent_at       BIGINT NOT NULL,
    PRIMARY KEY (kind, subject_id, period_start, threshold)
);

-- Endpoints product owners registered for events.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    events      TEXT NOT NULL,        -- comma-separated event types, or '*'
    active      BOOLEAN NOT NULL DEFAULT 1,
    created_by  BIGINT,
    created_at  BIGINT NOT NULL
);

-- Events to deliver; source_key makes each source fact (an audit row, a finalized invoice, an
-- alert) one event however many sweeps see it.
CREATE TABLE webhook_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_key  TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT webhook_events_source_key UNIQUE (source_key)
);

-- One row per (endpoint, event): the delivery log and the retry schedule.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         BIGINT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

-- How far the event sweeps have read (an optimisation: source_key keeps them exact anyway).
CREATE TABLE webhook_cursors (
    name     TEXT PRIMARY KEY,
    last_id  BIGINT NOT NULL
);

-- The quota-alert sweep reads the usage rows written since its last run.
CREATE INDEX usage_hourly_updated_idx ON usage_hourly (updated_at);
CREATE INDEX invoices_finalized_idx ON invoices (finalized_at);
