-- For attempts an INSERT skipped, what holds their place: the attempt of the same event
-- (by dedup key), else the attempt that holds their webhook-id. $1 positions in the batch,
-- $2 webhook ids, $3 dedup keys.
SELECT k.position AS "position!",
       (SELECT id FROM attempts WHERE dedup_key = k.dedup_key) AS "original?",
       (SELECT id FROM attempts WHERE webhook_id = k.webhook_id) AS "holder?"
FROM UNNEST($1::int4[], $2::text[], $3::bytea[]) AS k(position, webhook_id, dedup_key)
