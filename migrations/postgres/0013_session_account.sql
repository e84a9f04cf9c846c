-- Sessions name their account in a column, so ending an account's sessions (password change,
-- reset, suspension) is an indexed delete instead of a LIKE over the serialised session data.
ALTER TABLE sessions ADD COLUMN account_id BIGINT;
UPDATE sessions SET account_id = (data::jsonb ->> 'account_id')::bigint WHERE data::jsonb ? 'account_id';
CREATE INDEX sessions_account_idx ON sessions(account_id);
