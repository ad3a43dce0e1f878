-- One page of a signing's attempt history and the history's total, in one statement so that
-- both come from the same snapshot. $1 signing id, $2 person id, $3 limit, $4 offset, $5 the
-- room the service has for the answer.
-- Each payload comes sealed (key_id, sealed), or as plain text if stored before encryption;
-- page_bytes, on every row, is what the page's payloads, results and reasons take as stored,
-- so that the service knows about how large its answer is from the first row on. A page
-- larger than $5 comes without its payloads (NULL): the service refuses it, and what it
-- would refuse is neither read from TOAST nor sent.
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
       a.id AS "id?", a.result AS "result?", a.reason, a.key_id,
       CASE WHEN a.page_bytes <= $5 THEN a.sealed END AS sealed,
       CASE WHEN a.page_bytes <= $5 THEN a.payload::text END AS plain,
       a.page_bytes
FROM s
LEFT JOIN LATERAL (
    -- octet_length of a sealed value reads its size from its header (a TOASTed value is not
    -- fetched for it); a plain one, of before encryption, is rendered as text twice.
    SELECT p.*,
           sum(coalesce(octet_length(p.sealed), octet_length(p.payload::text))
               + octet_length(p.result) + coalesce(octet_length(p.reason), 0)) OVER ()
               AS page_bytes
    FROM (
        SELECT at.id, at.result, at.reason, at.key_id, at.sealed, at.payload, at.sort_at,
               at.seq
        FROM attempts at
        WHERE at.transaction_number = s.identification_id
        ORDER BY at.sort_at, at.seq
        LIMIT $3 OFFSET $4
    ) AS p
) AS a ON true
ORDER BY a.sort_at, a.seq
