-- Turnpike schema: accounts (postgres). Email verification, password reset and email change
-- tokens; login/signup/reset throttling shared by every portal instance; soft-deleted accounts.

-- A deleted account keeps its row (its usage and invoices stay on the owner's books), with the
-- email anonymised, status 'suspended' and this set.
ALTER TABLE accounts ADD COLUMN deleted_at BIGINT;

-- Single-use, expiring, purpose-bound tokens mailed to a developer. Only the SHA-256 of the
-- token is stored.
CREATE TABLE account_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    token_hash  BYTEA NOT NULL,
    new_email   TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    CONSTRAINT account_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX account_tokens_account_idx ON account_tokens(account_id);

-- One row per counted attempt (a failed login, a signup, a reset request) per throttle key
-- (e.g. 'login:ip:127.0.0.1', 'login:acct:ada@example.com'); counted over a sliding window.
CREATE TABLE throttle_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX throttle_events_key_at_idx ON throttle_events(key, at);
