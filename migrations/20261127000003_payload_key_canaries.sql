-- A key id names key material only by the operator's word: a replica started with other
-- material under an id in use (a wrong Secret, a key pasted from the wrong environment) read
-- as ready, failed every listing of the rows under that id, and sealed new rows under the id
-- with material that no other replica could open. `canary` is a short value sealed under the
-- id's material when a replica first finds the id registered without one (readiness); a
-- replica whose material under that id does not open it is not ready.
--
-- Every statement that seals rows registers its key in this table, so the ALTER's lock waits
-- for ingest's batches in flight and holds the next ones back for the moment it takes (adding
-- a column without a default rewrites nothing); it gives up after 5 s rather than queue
-- ingest behind a lock that waits, and the migration is tried again at the next start.
SET LOCAL lock_timeout = '5s';
ALTER TABLE payload_keys ADD COLUMN canary bytea;
