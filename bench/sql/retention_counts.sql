-- bench/retention: the rows of each kind bench/sql/retention_load.sql made, and the live
-- signing's, as one JSON object. Each count is a range scan of the history index.
SELECT json_build_object(
    'expired_unclaimed', (SELECT count(*) FROM attempts
                          WHERE transaction_number LIKE 'ret-unclaimed-%'),
    'expired_claimed', (SELECT count(*) FROM attempts
                        WHERE transaction_number LIKE 'ret-claimed-%'),
    'recent_unclaimed', (SELECT count(*) FROM attempts
                         WHERE transaction_number LIKE 'ret-recent-%'),
    'live', (SELECT count(*) FROM attempts WHERE transaction_number = 'ret-live-tn'),
    'all', (SELECT count(*) FROM attempts)
);
