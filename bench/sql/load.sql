-- The benchmark's history, generated in the database: signings :from to :to - 1 with
-- :per_signing attempts each, real-shaped payloads from the template in :'template'
-- (bench/lib/payloads.py), results and reasons varied, in chunks that each commit.
-- Signing g is bench-sig-<g> of person bench-person-<g/2>, identification bench-tn-<g>.
-- psql -v from=0 -v to=N -v per_signing=5 -v template="$(cat template.json)" -f load.sql

\set ON_ERROR_STOP on
SET synchronous_commit = off;

CREATE TEMP TABLE bench_params AS
SELECT :from::bigint AS first, :to::bigint AS signings, :per_signing::int AS per_signing,
       :'template'::text AS template;

CREATE FUNCTION pg_temp.bench_payload(tn text, result text, ident text, at timestamptz, template text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(replace(template,
        '@TN@', tn), '@RESULT@', result), '@IDENT@', ident),
        '@TIME@', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
$$;

CREATE PROCEDURE pg_temp.bench_load()
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    chunk constant bigint := 100000;
    first bigint;
BEGIN
    SELECT * INTO p FROM bench_params;
    first := p.first;
    WHILE first < p.signings LOOP
        INSERT INTO signings (signing_id, person_id, identification_id)
        SELECT 'bench-sig-' || g, 'bench-person-' || (g / 2), 'bench-tn-' || g
        FROM generate_series(first, least(first + chunk, p.signings) - 1) AS g;

        INSERT INTO attempts (id, transaction_number, ident_id, result, reason,
                              identified_at, dedup_key, payload)
        SELECT gen_random_uuid(), 'bench-tn-' || g, 'BEN-' || g || '-' || k, r.result, r.reason,
               t.at, sha256(convert_to('load-' || g || '-' || k, 'UTF8')),
               pg_temp.bench_payload('bench-tn-' || g, r.result, 'BEN-' || g || '-' || k,
                                     t.at, p.template)::json
        FROM generate_series(first, least(first + chunk, p.signings) - 1) AS g,
             generate_series(1, p.per_signing) AS k,
             LATERAL (SELECT (ARRAY['ABORTED', 'ABORTED', 'REVIEW_PENDING', 'SUCCESS',
                                    'FRAUD_SUSPICION_PENDING', 'CANCELED',
                                    'SUCCESS_DATA_CHANGED', 'CHECK_PENDING'])[1 + (g + k) % 8]
                             AS result) AS rr,
             LATERAL (SELECT rr.result,
                             CASE rr.result
                                 WHEN 'ABORTED' THEN (ARRAY['TECH_LIGHTING',
                                     'TECH_DISCONNECTED_VIDEO', 'USER_CANCELLATION',
                                     'USER_NO_ID'])[1 + g % 4]
                                 WHEN 'CANCELED' THEN 'DATA_ID_EXPIRED'
                             END AS reason) AS r,
             LATERAL (SELECT timestamptz '2026-01-01 00:00:00+00'
                             + make_interval(secs => (g * 37 + k * 3600) % 25000000) AS at) AS t;
        COMMIT;
        first := first + chunk;
        RAISE NOTICE 'loaded % of % signings', least(first, p.signings), p.signings;
    END LOOP;

END
$$;

CALL pg_temp.bench_load();
VACUUM ANALYZE signings;
VACUUM ANALYZE attempts;
