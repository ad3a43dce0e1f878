-- One batch of retention over attempts: walks up to $2 attempts received more than $1 days
-- ago, in arrival order from where the last batch stopped, deletes those no signing has
-- claimed, and moves the mark past all it walked. Run under the retention lock.
--
-- The mark goes in as scalar subqueries, so that it bounds the index scan: joined, it would
-- only filter what a scan from the start of the index returns, and every batch would read
-- again every claimed attempt the mark has passed.
WITH walked AS (
    SELECT a.id, a.received_at, a.seq,
           EXISTS (SELECT 1 FROM signings s
                   WHERE s.identification_id = a.transaction_number) AS claimed
    FROM attempts a
    WHERE (a.received_at, a.seq) > (
              (SELECT received_at FROM retention_marks WHERE name = 'attempts'),
              (SELECT seq FROM retention_marks WHERE name = 'attempts'))
      AND a.received_at < now() - make_interval(days => $1)
    ORDER BY a.received_at, a.seq
    LIMIT $2
),
deleted AS (
    DELETE FROM attempts d USING walked w
    WHERE d.id = w.id AND NOT w.claimed
    RETURNING 1
),
moved AS (
    UPDATE retention_marks r SET received_at = last.received_at, seq = last.seq
    FROM (SELECT received_at, seq FROM walked ORDER BY received_at DESC, seq DESC LIMIT 1) last
    WHERE r.name = 'attempts'
)
SELECT (SELECT count(*) FROM walked) AS "walked!",
       (SELECT count(*) FROM deleted) AS "deleted!"
