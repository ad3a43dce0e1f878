-- The long history of the listing benchmark: bench-sig-long, 200 attempts, payloads from
-- the template in :'template'.
\set ON_ERROR_STOP on
INSERT INTO signings (signing_id, person_id, identification_id)
VALUES ('bench-sig-long', 'bench-person-long', 'bench-tn-long');

INSERT INTO attempts (id, transaction_number, ident_id, result, reason, identified_at,
                      dedup_key, payload)
SELECT gen_random_uuid(), 'bench-tn-long', 'BEN-long-' || k, 'ABORTED', 'TECH_LIGHTING', at,
       sha256(convert_to('load-long-' || k, 'UTF8')),
       replace(replace(replace(replace(:'template',
           '@TN@', 'bench-tn-long'), '@RESULT@', 'ABORTED'), '@IDENT@', 'BEN-long-' || k),
           '@TIME@', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))::json
FROM generate_series(1, 200) AS k,
     LATERAL (SELECT timestamptz '2026-01-01 00:00:00+00' + make_interval(mins => k) AS at) AS t;
