-- Personal access tokens for the portal's JSON API (PostgreSQL). Only the SHA-256 of a token is
-- stored; the token itself is shown once at creation.
CREATE TABLE api_tokens (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    token_hash     BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    CONSTRAINT api_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_tokens_account_idx ON api_tokens(account_id);
