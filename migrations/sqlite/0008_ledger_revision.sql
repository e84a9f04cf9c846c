-- Plan changes serialised per subscription: every write to a subscription's plan or status bumps
-- `revision`, and the ledger's writes are conditional on the revision it read, so two concurrent
-- changes cannot both apply (the loser records nothing and is told to reload).
ALTER TABLE subscriptions ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
