# Sourced by the scripts beside it: a throwaway PostgreSQL cluster for local runs and tests,
# for machines that have nothing but a Rust toolchain. Never touches a cluster it did not make.

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# Installs the server from Debian's packages when no initdb is found.
pg_ensure_installed() {
    if pg_bin_dir >/dev/null 2>&1; then
        return
    fi
    echo "PostgreSQL server not found; installing Debian's postgresql package..." >&2
    # Debian starts a cluster of its own after installing (where systemd runs); ours does not
    # depend on it.
    apt_install postgresql
    pg_bin_dir >/dev/null || {
        echo "error: Debian's postgresql package installed no initdb" >&2
        exit 1
    }
}

# The newest installed server's bin directory: the newest one with an initdb (a newer
# client-only version may sit beside the server).
pg_bin_dir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$dir/initdb" ]; then
            echo "$dir"
            return
        fi
    done
    if command -v initdb >/dev/null; then
        dirname "$(command -v initdb)"
    else
        return 1
    fi
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user the
# package created.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    local port
    for port in $(seq "${1:-54329}" 65000); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "error: no free TCP port for PostgreSQL" >&2
    exit 1
}

# pg_start DATA_DIR [extra server options...]: creates the cluster if DATA_DIR holds none,
# starts it on a free port of 127.0.0.1, and sets PG_URL. Trust auth, user postgres.
pg_start() {
    local data_dir=$1
    shift
    pg_ensure_installed
    local bin
    bin=$(pg_bin_dir)
    mkdir -p "$data_dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$data_dir"
    fi
    chmod 700 "$data_dir"
    if [ ! -f "$data_dir/PG_VERSION" ]; then
        pg_as_owner "$bin/initdb" -D "$data_dir" --auth=trust --username=postgres \
            --encoding=UTF8 --no-locale >/dev/null
    fi
    if pg_as_owner "$bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1; then
        PG_PORT=$(sed -n 4p "$data_dir/postmaster.pid")
    else
        PG_PORT=$(pg_free_port)
        pg_as_owner "$bin/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $data_dir $*" start >/dev/null
    fi
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

# pg_stop DATA_DIR: stops the cluster in DATA_DIR if one runs there. Quiet and never fails:
# the cleanup traps that call it must go on to remove DATA_DIR whatever happened.
pg_stop() {
    pg_stop_checked "$1" >/dev/null 2>&1 || true
}

# pg_stop_checked DATA_DIR: pg_stop for callers that tell a person what happened. Returns 0
# when it stopped the cluster, 3 (pg_ctl status' code) when none runs in DATA_DIR, else 1
# with pg_ctl's message on stderr.
pg_stop_checked() {
    local data_dir=$1 bin message status=0
    [ -f "$data_dir/PG_VERSION" ] || return 3
    bin=$(pg_bin_dir) || {
        echo "error: no PostgreSQL server installed to stop the cluster in $data_dir" >&2
        return 1
    }
    if message=$(pg_as_owner "$bin/pg_ctl" -D "$data_dir" -m fast -w stop 2>&1 >/dev/null); then
        return 0
    fi
    # pg_ctl stop fails alike when no server runs and when one would not stop: ask which.
    pg_as_owner "$bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1 || status=$?
    if [ "$status" -eq 3 ]; then
        return 3
    fi
    echo "$message" >&2
    return 1
}

# Starts a cluster that lives as long as the calling script, for tests: durability settings
# off (a test database is disposable) and room for the test harness' connections; extra
# arguments are more server options.
pg_start_disposable() {
    PG_DISPOSABLE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/idnow-attempts-pg.XXXXXX")
    trap 'pg_stop "$PG_DISPOSABLE_DIR"; rm -rf "$PG_DISPOSABLE_DIR"' EXIT
    pg_start "$PG_DISPOSABLE_DIR" -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=200 "$@"
}
