-- A refused body can name several identifications (an `identificationprocess.transactionnumber`
-- sent twice, with two values; src/domain/named.rs): erasing the person of any of them erases
-- the kept delivery. `transaction_number` stays the first named, as operators see it;
-- `also_named` holds the others (NULL when there are none, as for every delivery IDnow sends).
--
-- The ALTER's lock keeps every reader and writer of the table out until the migration
-- commits: adding a column without a default rewrites nothing, and the index of a column that
-- is NULL everywhere builds in moments. But a lock that has to wait (a long `rejected list`, a
-- pg_dump) would queue every later reader and writer of the table behind it, erasures
-- included, which hold ingest back meanwhile: it gives up after 5 s instead, and the
-- migration is tried again at the next start.
SET LOCAL lock_timeout = '5s';
ALTER TABLE rejected_deliveries ADD COLUMN also_named text[];
CREATE INDEX rejected_deliveries_also_named_idx ON rejected_deliveries USING gin (also_named);
