-- Gateway policy per plan: what happens when the shared counter store (Redis) is unreachable.
-- 'closed' (default): 503 + Retry-After. 'open': admit on each gateway's local limits for at most
-- fail_open_seconds from the start of the outage, counted under the gateway's own meter source
-- and added to the shared quota when Redis answers again.
ALTER TABLE plans ADD COLUMN redis_failure_policy TEXT NOT NULL DEFAULT 'closed' CHECK (redis_failure_policy IN ('closed', 'open'));
ALTER TABLE plans ADD COLUMN fail_open_seconds BIGINT NOT NULL DEFAULT 300 CHECK (fail_open_seconds >= 0);
