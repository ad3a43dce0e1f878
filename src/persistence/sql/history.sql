-- One page of a signing's attempt history and the history's total, in one statement so that
-- both come from the same snapshot. $1 signing id, $2 person id, $3 limit, $4 offset.
-- Each payload comes sealed (key_id, sealed), or as plain text if stored before encryption.
-- The benchmark runs this very file (bench/run, bench/sql/explain_listing.sql).
--
-- MATERIALIZED: the signing and its total are computed once, not once per row of the page,
-- which a flattened subquery would do.
WITH s AS MATERIALIZED (
    SELECT sg.identification_id,
           (SELECT count(*) FROM attempts c
            WHERE c.transaction_number = sg.identification_id) AS total
    FROM signings sg
    WHERE sg.signing_id = $1 AND sg.person_id = $2
)
SELECT s.total AS "total!", s.identification_id AS "identification_id!",
       a.id AS "id?", a.result AS "result?", a.reason,
       a.key_id, a.sealed, a.payload::text AS plain
FROM s
LEFT JOIN LATERAL (
    SELECT at.id, at.result, at.reason, at.key_id, at.sealed, at.payload, at.sort_at, at.seq
    FROM attempts at
    WHERE at.transaction_number = s.identification_id
    ORDER BY at.sort_at, at.seq
    LIMIT $3 OFFSET $4
) AS a ON true
ORDER BY a.sort_at, a.seq
