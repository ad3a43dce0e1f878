-- A batch of attempts, one element of each array per attempt, committed on its own. Returns
-- the attempts inserted, each with whether its signing is registered; those skipped hold a
-- taken place (see places.sql). The benchmark's pgbench INSERT is this file with one-element
-- arrays (bench/lib/payloads.py).
--
-- UNNEST keeps the order of the arrays, so `seq` follows arrival within a batch.
WITH inserted AS (
    INSERT INTO attempts
        (id, transaction_number, ident_id, result, reason, identified_at,
         webhook_id, dedup_key, payload)
    SELECT id, transaction_number, ident_id, result, reason, identified_at,
           webhook_id, dedup_key, payload::json
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::timestamptz[], $7::text[], $8::bytea[], $9::text[])
        AS input(id, transaction_number, ident_id, result, reason, identified_at,
                 webhook_id, dedup_key, payload)
    ON CONFLICT DO NOTHING
    RETURNING id, transaction_number
)
SELECT i.id AS "id!",
       EXISTS (SELECT 1 FROM signings s
               WHERE s.identification_id = i.transaction_number) AS "signing_registered!"
FROM inserted i
