-- A refused body can name several identifications (an `identificationprocess.transactionnumber`
-- sent twice, with two values): erasing the person of any of them erases the kept delivery.
-- `transaction_number` stays the first named, as operators see it; `also_named` holds the
-- others (NULL when there are none, as for every delivery IDnow sends), up to 15.
--
-- Adding a column without a default rewrites nothing; the index is built on a table that
-- retention keeps to 30 days of refused deliveries (a plain CREATE INDEX, as
-- 20261126000003_retention_index.sql explains).
ALTER TABLE rejected_deliveries ADD COLUMN also_named text[];
CREATE INDEX rejected_deliveries_also_named_idx ON rejected_deliveries USING gin (also_named);
