-- EXPLAIN of the history listing over a table of 1,000,000 attempts (200,000 signings of 5
-- attempts each, ~600-byte payloads). Run from the repository's root against a migrated,
-- empty database:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f bench/sql/explain_listing.sql
\timing on
INSERT INTO signings (signing_id, person_id, identification_id)
SELECT 'sig' || g, 'per' || (g % 50000), lpad(to_hex(g), 32, '0') || 'cidt'
FROM generate_series(1, 200000) AS g;

INSERT INTO attempts (id, transaction_number, ident_id, result, reason, identified_at,
                      dedup_key, payload)
SELECT gen_random_uuid(),
       lpad(to_hex(g % 200000 + 1), 32, '0') || 'cidt',
       'TST-' || g,
       (ARRAY['ABORTED', 'REVIEW_PENDING', 'SUCCESS', 'CANCELED'])[g % 4 + 1],
       CASE WHEN g % 4 = 0 THEN 'TECH_LIGHTING' END,
       timestamptz '2026-01-01' + g * interval '1 second',
       sha256(g::text::bytea),
       json_build_object(
           'identificationprocess', json_build_object(
               'result', 'SUCCESS', 'transactionnumber', lpad(to_hex(g % 200000 + 1), 32, '0') || 'cidt',
               'identificationtime', timestamptz '2026-01-01' + g * interval '1 second'),
           'userdata', json_build_object('padding', repeat('x', 500)))
FROM generate_series(1, 1000000) AS g;
VACUUM ANALYZE signings;
VACUUM ANALYZE attempts;
SELECT count(*) AS attempts FROM attempts;

-- The listing's statement, read from the service's own file and prepared as sqlx prepares it.
\set history_sql `cat src/persistence/sql/history.sql`
PREPARE history(text, text, bigint, bigint) AS :history_sql;

EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE history('sig123456', 'per23456', 10, 0);
-- The plan the server caches after five executions must be as good.
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE history('sig123456', 'per23456', 10, 0);
RESET plan_cache_mode;

-- A long history: 200 attempts, first page of 100.
INSERT INTO signings VALUES ('sig-long', 'per-long', 'tn-long');
INSERT INTO attempts (id, transaction_number, result, identified_at, dedup_key, payload)
SELECT gen_random_uuid(), 'tn-long', 'ABORTED', timestamptz '2026-01-01' + g * interval '1 minute',
       sha256(('long' || g)::bytea), '{}'
FROM generate_series(1, 200) AS g;
ANALYZE attempts;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE history('sig-long', 'per-long', 100, 0);
