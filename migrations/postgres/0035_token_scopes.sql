-- Scopes of a personal access token, space-separated: `developer` (the developer JSON API),
-- `admin:read` and `admin:write` (the admin JSON API; only an admin account may hold them).
-- Tokens made before scopes existed keep what they could do: `developer`.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'developer';
