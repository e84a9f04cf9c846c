-- Turnpike schema: gateway (postgres). Placeholder until this area needs columns or tables.
SELECT 1;
