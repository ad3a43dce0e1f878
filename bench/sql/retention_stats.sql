-- bench/retention: the server's cumulative counters a window's figures are differences of,
-- and what is vacuuming now, as one JSON object.
SELECT json_build_object(
    'wal_bytes', w.wal_bytes, 'wal_fpi', w.wal_fpi, 'wal_sync', w.wal_sync,
    'wal_sync_ms', w.wal_sync_time, 'wal_write_ms', w.wal_write_time,
    'checkpoints', b.checkpoints_timed + b.checkpoints_req,
    'buffers_checkpoint', b.buffers_checkpoint, 'buffers_backend', b.buffers_backend,
    'buffers_clean', b.buffers_clean,
    'autovacuum_count', (SELECT sum(autovacuum_count) FROM pg_stat_all_tables
                         WHERE relid = 'attempts'::regclass
                            OR relid = (SELECT reltoastrelid FROM pg_class
                                        WHERE oid = 'attempts'::regclass)),
    'vacuuming', (SELECT count(*) FROM pg_stat_progress_vacuum)
) FROM pg_stat_wal w, pg_stat_bgwriter b;
