# Sourced by bench/run, bench/compare, bench/encryption, bench/retention, bench/bigtable and
# bench/instructions (after scripts/lib/postgres.sh): the benchmark's throwaway PostgreSQL, and
# the settings every started service needs.
#
# The cluster runs as production runs one: fsync, synchronous_commit and full_page_writes on
# (PostgreSQL's defaults), so that every commit waits for its WAL flush, as the contract's 2xx
# promises. BENCH_DURABLE=0 starts the tests' disposable cluster instead (all three off): its
# figures measure commits that are not durable, and every report says so.
# BENCH_PG_OPTIONS adds server settings to either, as `-c name=value ...`, and the reports
# name them: e.g. `-c commit_delay=2000 -c commit_siblings=1` holds every commit's WAL flush
# back 2 ms, as a slower disk would, for runs where commit latency rather than CPU should set
# the rate.

bench_pg_start() {
    if bench_pg_durable; then
        PG_DISPOSABLE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/idnow-attempts-pg.XXXXXX")
        trap 'pg_stop "$PG_DISPOSABLE_DIR"; rm -rf "$PG_DISPOSABLE_DIR"' EXIT
        # shellcheck disable=SC2086 # settings, split on purpose
        pg_start "$PG_DISPOSABLE_DIR" -c fsync=on -c synchronous_commit=on \
            -c full_page_writes=on -c max_connections=200 ${BENCH_PG_OPTIONS:-}
    else
        pg_start_disposable ${BENCH_PG_OPTIONS:-}
    fi
}

bench_pg_durable() {
    case "${BENCH_DURABLE:-1}" in
        1) return 0 ;;
        0) return 1 ;;
        *) echo "error: BENCH_DURABLE is 1 (the default) or 0, not $BENCH_DURABLE" >&2; exit 2 ;;
    esac
}

# One line for the reports: how the cluster was started.
bench_pg_durability() {
    if bench_pg_durable; then
        echo "durable PostgreSQL (fsync, synchronous_commit, full_page_writes on${BENCH_PG_OPTIONS:+; $BENCH_PG_OPTIONS})"
    else
        echo "**NON-DURABLE** PostgreSQL (BENCH_DURABLE=0: fsync, synchronous_commit, full_page_writes off; not what production commits)"
    fi
}

# The postmaster's process id: its children are every other process of the cluster.
bench_pg_postmaster() {
    head -n 1 "$PG_DISPOSABLE_DIR/postmaster.pid"
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
