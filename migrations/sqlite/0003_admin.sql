-- Turnpike schema: admin (sqlite). Placeholder until this area needs columns or tables.
SELECT 1;
