-- Turnpike schema: admin console (sqlite).

-- Lifecycle shown in the catalog next to each API.
ALTER TABLE apis ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'stable'
    CHECK (lifecycle IN ('alpha', 'beta', 'stable', 'deprecated'));

-- Audit log filters (by action, by actor) page newest first.
CREATE INDEX audit_log_action_idx ON audit_log(action, id);
CREATE INDEX audit_log_actor_idx ON audit_log(actor_id, id);
