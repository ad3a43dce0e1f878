-- bench/retention's history, generated in the database, in arrival order 100 days ago:
--   :expired attempts whose identification no signing claims (retention deletes them),
--   :claimed_signings signings with 5 expired attempts each, interleaved with the former in
--     arrival order (retention walks past them and keeps them),
--   :recent attempts no signing claims that arrived 10 days ago (not yet due: kept).
-- Each row is sealed under :'key_id' like the service's rows: `sealed` is :sealed_bytes
-- random bytes (ciphertext does not compress), so every payload is TOASTed out of line as a
-- real one is. The bytes come from a pool of 1,000 random blobs; TOAST compresses each value
-- on its own, so reuse across rows does not shrink anything.
-- psql -v expired=N -v claimed_signings=N -v recent=N -v key_id=K -v sealed_bytes=N -f ...

\set ON_ERROR_STOP on
-- Only this loading session commits without waiting for the WAL flush (a crash would lose its
-- last chunk, nothing else); the server and the service keep synchronous_commit = on.
SET synchronous_commit = off;

CREATE TEMP TABLE ret_params AS
SELECT :expired::bigint AS expired, :claimed_signings::bigint AS claimed_signings,
       :recent::bigint AS recent, :'key_id'::text AS key_id,
       :sealed_bytes::int AS sealed_bytes,
       -- The first expired arrival: 100 days ago, one row a millisecond from there on.
       now() - interval '100 days' AS base;

CREATE TEMP TABLE ret_blobs AS
SELECT b AS n,
       (SELECT substring(string_agg(decode(md5(b || ':' || k || ':' || random()), 'hex'), ''::bytea)
                         FROM 1 FOR (SELECT sealed_bytes FROM ret_params))
        FROM generate_series(1, (SELECT sealed_bytes FROM ret_params) / 16 + 1) AS k) AS bytes
FROM generate_series(0, 999) AS b;
CREATE UNIQUE INDEX ON ret_blobs (n);
ANALYZE ret_blobs;

INSERT INTO payload_keys (key_id) SELECT key_id FROM ret_params ON CONFLICT DO NOTHING;

INSERT INTO signings (signing_id, person_id, identification_id, registered_at)
SELECT 'ret-claimed-sig-' || i, 'ret-claimed-person-' || i, 'ret-claimed-' || i,
       p.base + interval '100 days' - interval '1 hour'
FROM ret_params p, generate_series(0, p.claimed_signings - 1) AS i;

-- kind 0: expired unclaimed (3 attempts per identification), 1: expired claimed, 2: recent.
CREATE FUNCTION pg_temp.ret_insert(kind int, first bigint, last bigint)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO attempts (id, transaction_number, ident_id, result, reason, identified_at,
                          received_at, dedup_key, key_id, sealed)
    SELECT gen_random_uuid(), t.tn, 'RET-' || kind || '-' || g,
           (ARRAY['ABORTED', 'SUCCESS', 'CANCELED', 'REVIEW_PENDING'])[1 + g % 4],
           CASE g % 4 WHEN 0 THEN 'TECH_DISCONNECTED_VIDEO' WHEN 2 THEN 'USER_CANCELLATION' END,
           t.at - interval '30 seconds', t.at,
           sha256(convert_to('retention-' || kind || '-' || g, 'UTF8')),
           p.key_id, b.bytes
    FROM ret_params p,
         generate_series(first, last) AS g,
         LATERAL (SELECT CASE kind
                             WHEN 0 THEN 'ret-unclaimed-' || (g / 3)
                             WHEN 1 THEN 'ret-claimed-' || (g % p.claimed_signings)
                             ELSE 'ret-recent-' || (g / 3)
                         END AS tn,
                         CASE kind
                             -- the claimed ones spread evenly among the unclaimed ones
                             WHEN 0 THEN p.base + make_interval(secs => g / 1000.0)
                             WHEN 1 THEN p.base + make_interval(
                                 secs => (g * p.expired / greatest(p.claimed_signings * 5, 1)
                                          + 0.5) / 1000.0)
                             ELSE now() - interval '10 days' + make_interval(secs => g / 1000.0)
                         END AS at) AS t,
         ret_blobs b
    WHERE b.n = g % 1000
$$;

CREATE PROCEDURE pg_temp.ret_load()
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    chunk constant bigint := 50000;
    kinds bigint[];
    first bigint;
BEGIN
    SELECT * INTO p FROM ret_params;
    kinds := ARRAY[p.expired, p.claimed_signings * 5, p.recent];
    FOR kind IN 0..2 LOOP
        first := 0;
        WHILE first < kinds[kind + 1] LOOP
            PERFORM pg_temp.ret_insert(kind, first, least(first + chunk, kinds[kind + 1]) - 1);
            COMMIT;
            first := first + chunk;
            RAISE NOTICE 'kind %: % of % rows', kind, least(first, kinds[kind + 1]), kinds[kind + 1];
        END LOOP;
    END LOOP;
END
$$;

CALL pg_temp.ret_load();
