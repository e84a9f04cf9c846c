-- Turnpike schema v1 (SQLite). Times are UTC unix seconds (BIGINT) so that the SQLite
-- and PostgreSQL schemas share every query and every comparison; money is BIGINT minor units.

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('developer', 'admin')),
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    email_verified_at BIGINT,
    created_at     BIGINT NOT NULL,
    CONSTRAINT accounts_email_key UNIQUE (email)
);

CREATE TABLE apps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT apps_account_name_key UNIQUE (account_id, name)
);
CREATE INDEX apps_account_idx ON apps(account_id);

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id        BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    key_hash      BLOB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'suspended')),
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    expires_at    BIGINT,
    CONSTRAINT api_keys_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_app_idx ON api_keys(app_id);

CREATE TABLE apis (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    route_prefix  TEXT NOT NULL,
    host          TEXT,
    upstreams     TEXT NOT NULL, -- JSON: [{"url": "...", "weight": 1}]
    openapi       TEXT,
    visibility    TEXT NOT NULL DEFAULT 'draft' CHECK (visibility IN ('draft', 'public', 'private')),
    allow_query_key BOOLEAN NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT apis_slug_key UNIQUE (slug)
);

CREATE TABLE plans (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    api_id               BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    slug                 TEXT NOT NULL,
    name                 TEXT NOT NULL,
    rate_per_second      BIGINT NOT NULL CHECK (rate_per_second > 0),
    burst                BIGINT NOT NULL CHECK (burst > 0),
    monthly_quota        BIGINT,            -- NULL: unlimited
    currency             TEXT NOT NULL DEFAULT 'usd',
    flat_price_minor     BIGINT NOT NULL DEFAULT 0 CHECK (flat_price_minor >= 0),
    unit_price_minor_per_1000 BIGINT NOT NULL DEFAULT 0 CHECK (unit_price_minor_per_1000 >= 0),
    is_default           BOOLEAN NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    CONSTRAINT plans_api_slug_key UNIQUE (api_id, slug)
);

CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id          BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    plan_id         BIGINT NOT NULL REFERENCES plans(id),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'past_due', 'canceled')),
    billing_anchor  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    CONSTRAINT subscriptions_app_api_key UNIQUE (app_id, api_id)
);

-- One row per key x API x hour x counter source. A source is one counter store: "redis" for the
-- shared Redis counters, or one in-process counter's instance id. Each source writes absolute
-- values for its own row, so a repeated or crashed flush changes nothing; totals are sums over sources.
CREATE TABLE usage_hourly (
    key_id          BIGINT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    api_id          BIGINT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    subscription_id BIGINT NOT NULL,
    hour            BIGINT NOT NULL, -- unix seconds at the start of the hour
    source          TEXT NOT NULL,
    admitted        BIGINT NOT NULL DEFAULT 0,
    status_2xx      BIGINT NOT NULL DEFAULT 0,
    status_3xx      BIGINT NOT NULL DEFAULT 0,
    status_4xx      BIGINT NOT NULL DEFAULT 0,
    status_5xx      BIGINT NOT NULL DEFAULT 0,
    bytes_in        BIGINT NOT NULL DEFAULT 0,
    bytes_out       BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum  BIGINT NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (key_id, api_id, hour, source)
);
CREATE INDEX usage_hourly_sub_hour_idx ON usage_hourly(subscription_id, hour);

CREATE TABLE invoices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    period_start    BIGINT NOT NULL,
    period_end      BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    total_minor     BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'paid', 'void')),
    created_at      BIGINT NOT NULL,
    CONSTRAINT invoices_sub_period_key UNIQUE (subscription_id, period_start)
);

CREATE TABLE invoice_lines (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id    BIGINT NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    description   TEXT NOT NULL,
    quantity      BIGINT NOT NULL,
    amount_minor  BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor_id    BIGINT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at_idx ON audit_log(at);

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expires_idx ON sessions(expires_at);

-- Every change that gateways cache (keys, apps' subscriptions, plans, APIs, accounts) appends a
-- row here; gateways poll it (and Redis pub/sub wakes them sooner) to invalidate caches and reload
-- routes. Pruned by the worker after a day.
CREATE TABLE change_log (
    version  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    ref_id   TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX change_log_at_idx ON change_log(at);
