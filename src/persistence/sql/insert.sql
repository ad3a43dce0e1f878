-- A batch of attempts, one element of each array per attempt, committed on its own. Returns
-- the attempts inserted, each with whether its signing is registered; those skipped hold a
-- taken place or belong to an erased identification (see places.sql). The benchmark's
-- pgbench INSERT is this file with one-element arrays (bench/lib/payloads.py).
--
-- $10 holds the id of the key that sealed each payload ($9). The keys are registered in the
-- same statement, so that no row is ever committed under a key payload_keys does not name.
-- $11 holds each attempt's identification digest (SHA-256 of the transaction number): an
-- erased identification's attempts are not stored again.
--
-- UNNEST keeps the order of the arrays, so `seq` follows arrival within a batch.
WITH registered AS (
    INSERT INTO payload_keys (key_id) SELECT DISTINCT unnest($10::text[])
    ON CONFLICT DO NOTHING
),
inserted AS (
    INSERT INTO attempts
        (id, transaction_number, ident_id, result, reason, identified_at,
         webhook_id, dedup_key, key_id, sealed)
    SELECT id, transaction_number, ident_id, result, reason, identified_at,
           webhook_id, dedup_key, key_id, sealed
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::timestamptz[], $7::text[], $8::bytea[], $9::bytea[], $10::text[],
                $11::bytea[])
        AS input(id, transaction_number, ident_id, result, reason, identified_at,
                 webhook_id, dedup_key, sealed, key_id, identification)
    WHERE NOT EXISTS (SELECT 1 FROM erased_identifications e
                      WHERE e.digest = input.identification)
    ON CONFLICT DO NOTHING
    RETURNING id, transaction_number
)
SELECT i.id AS "id!",
       EXISTS (SELECT 1 FROM signings s
               WHERE s.identification_id = i.transaction_number) AS "signing_registered!"
FROM inserted i
