-- Turnpike schema: api_tokens (postgres). Placeholder until this area needs columns or tables.
SELECT 1;
