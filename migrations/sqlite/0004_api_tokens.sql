-- Turnpike schema: api_tokens (sqlite). Placeholder until this area needs columns or tables.
SELECT 1;
