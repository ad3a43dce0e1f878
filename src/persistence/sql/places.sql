-- For attempts an INSERT skipped, why: their identification was erased, else what holds their
-- place: the attempt of the same event (by dedup key), else the attempt that holds their
-- webhook-id. $1 positions in the batch, $2 webhook ids, $3 dedup keys, $4 identification
-- digests.
SELECT k.position AS "position!",
       EXISTS (SELECT 1 FROM erased_identifications
               WHERE digest = k.identification) AS "erased!",
       (SELECT id FROM attempts WHERE dedup_key = k.dedup_key) AS "original?",
       (SELECT id FROM attempts WHERE webhook_id = k.webhook_id) AS "holder?"
FROM UNNEST($1::int4[], $2::text[], $3::bytea[], $4::bytea[])
    AS k(position, webhook_id, dedup_key, identification)
