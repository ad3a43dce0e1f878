# Sourced by bench/run, bench/compare and bench/encryption (after scripts/lib/postgres.sh):
# the benchmark's throwaway PostgreSQL, and the settings every started service needs.
#
# BENCH_DURABLE=1 starts the cluster as production runs one: fsync, synchronous_commit and
# full_page_writes on (PostgreSQL's defaults), so that every commit waits for its WAL flush.
# Otherwise it is the tests' disposable cluster (durability off), as before.

bench_pg_start() {
    if [ "${BENCH_DURABLE:-0}" = 1 ]; then
        PG_DISPOSABLE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/idnow-attempts-pg.XXXXXX")
        trap 'pg_stop "$PG_DISPOSABLE_DIR"; rm -rf "$PG_DISPOSABLE_DIR"' EXIT
        pg_start "$PG_DISPOSABLE_DIR" -c fsync=on -c synchronous_commit=on \
            -c full_page_writes=on -c max_connections=200
    else
        pg_start_disposable
    fi
}

# One line for the reports: how the cluster was started.
bench_pg_durability() {
    if [ "${BENCH_DURABLE:-0}" = 1 ]; then
        echo "durable PostgreSQL (fsync, synchronous_commit, full_page_writes on)"
    else
        echo "disposable PostgreSQL (fsync, synchronous_commit, full_page_writes off)"
    fi
}

# PAYLOAD_ENCRYPTION_KEYS for every service and migrate this run starts: a fresh random key
# unless the caller set one. Builds from before encryption ignore the variable.
bench_payload_keys() {
    if [ -z "${PAYLOAD_ENCRYPTION_KEYS:-}" ]; then
        PAYLOAD_ENCRYPTION_KEYS="bench:$(head -c32 /dev/urandom | base64)"
    fi
    export PAYLOAD_ENCRYPTION_KEYS
}

# Whether BINARY seals payloads (has the `reencrypt` command).
bench_build_seals() {
    "$1" --help 2>/dev/null | grep -qw reencrypt
}
