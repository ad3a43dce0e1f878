-- Erases a person ($1): their signings, every attempt of those signings' identifications and
-- the kept rejected deliveries that name them; the identifications are remembered by the
-- SHA-256 of their transaction number only. One statement, so all of it sees one snapshot;
-- persons::erase runs it after locking out writers, so that snapshot holds every attempt
-- committed before.
WITH signings_erased AS (
    DELETE FROM signings WHERE person_id = $1
    RETURNING identification_id
),
remembered AS (
    INSERT INTO erased_identifications (digest)
    SELECT sha256(convert_to(identification_id, 'UTF8')) FROM signings_erased
    ON CONFLICT DO NOTHING
),
attempts_erased AS (
    DELETE FROM attempts
    WHERE transaction_number IN (SELECT identification_id FROM signings_erased)
    RETURNING 1
),
-- `= ANY(ARRAY(...))` rather than `IN (SELECT ...)`: beside the OR, only this form lets each
-- side use its index (a BitmapOr); the other scanned the whole table while ingest waited.
rejected_erased AS (
    DELETE FROM rejected_deliveries
    WHERE transaction_number = ANY(ARRAY(SELECT identification_id FROM signings_erased))
       OR also_named && ARRAY(SELECT identification_id FROM signings_erased)
    RETURNING 1
)
SELECT (SELECT count(*) FROM signings_erased) AS "signings!",
       (SELECT count(*) FROM attempts_erased) AS "attempts!",
       (SELECT count(*) FROM rejected_erased) AS "rejected_deliveries!"
