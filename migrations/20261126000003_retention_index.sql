-- Retention walks attempts in arrival order, from where its last pass stopped.
--
-- A plain CREATE INDEX: readers go on, writers wait while it is built (about half a second per
-- million attempts; webhooks that wait past the statement timeout are answered 503 and
-- retried). Not CONCURRENTLY: that cannot run in a transaction, and while it waits for older
-- snapshots another replica's migrator, waiting for sqlx's migration lock, would wait for it
-- in turn.
CREATE INDEX attempts_received_idx ON attempts (received_at, seq);
