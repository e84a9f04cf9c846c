-- Sessions name their account in a column, so ending an account's sessions (password change,
-- reset, suspension) is an indexed delete instead of a LIKE over the serialised session data.
ALTER TABLE sessions ADD COLUMN account_id INTEGER;
UPDATE sessions SET account_id = json_extract(data, '$.account_id') WHERE json_valid(data);
CREATE INDEX sessions_account_idx ON sessions(account_id);
