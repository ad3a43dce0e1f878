-- A refused delivery sent again is kept once. IDnow retries whatever it was not answered 2xx
-- for, and a body the service refuses (422, say) is refused at every retry: each one kept a
-- copy of the same bytes, for operators to tell apart. `digest` is the SHA-256 of what the
-- sender sent and was answered (status, code, webhook-id, content type, body;
-- `persistence::rejected::digest`); NULL for rows kept before, which stay as they are (NULLs
-- are distinct in a unique index, so they never conflict).
--
-- The lock as in 20261127000002: the column needs no rewrite and the index of a column NULL
-- everywhere builds in moments, but a lock that has to wait gives up after 5 s rather than
-- queue every reader and writer of the table behind it; the migration is tried again at the
-- next start.
SET LOCAL lock_timeout = '5s';
ALTER TABLE rejected_deliveries ADD COLUMN digest bytea;
CREATE UNIQUE INDEX rejected_deliveries_digest_idx ON rejected_deliveries (digest);
