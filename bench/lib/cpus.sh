# Sourced by bench/run: on a machine of 8 CPUs or more, PostgreSQL, the service and the load
# generators each on CPUs of their own (taskset), so that none takes another's; on fewer,
# they share the machine as before. Sets:
#   service_pin, load_pin   command prefixes (empty arrays when not pinned)
#   BENCH_PG_CPUS           PostgreSQL's CPU list, for bench_pin_postgres (empty when not)
#   BENCH_PINNING           one line for the report
# The service gets 2 CPUs (it runs 2 workers), the load generators a quarter of the CPUs
# (at least 2), PostgreSQL the rest: of 16, 2, 4 and 10. CPUs are taken in the order the
# kernel numbers them, among those this process may use; SMT siblings are not told apart.
bench_cpu_sets() {
    local sets
    sets=$(python3 -c 'import os
cpus = sorted(os.sched_getaffinity(0))
if len(cpus) >= 8:
    load = max(2, len(cpus) // 4)
    print(",".join(map(str, cpus[:2])), ",".join(map(str, cpus[2:2 + load])),
          ",".join(map(str, cpus[2 + load:])))
else:
    print(len(cpus))')
    service_pin=() load_pin=() BENCH_PG_CPUS=
    if [ "$(wc -w <<<"$sets")" = 1 ]; then
        BENCH_PINNING="not pinned: $sets CPUs, shared by the service, PostgreSQL and the load generators"
        return
    fi
    local service_cpus load_cpus
    read -r service_cpus load_cpus BENCH_PG_CPUS <<<"$sets"
    command -v taskset >/dev/null || { echo "error: pinning needs taskset (util-linux)" >&2; exit 1; }
    service_pin=(taskset -c "$service_cpus")
    load_pin=(taskset -c "$load_cpus")
    BENCH_PINNING="pinned (taskset): PostgreSQL on CPUs $BENCH_PG_CPUS, the service on $service_cpus, the load generators on $load_cpus"
}

# After the cluster started: the postmaster and every process it has on PostgreSQL's CPUs;
# the backends it forks later inherit them.
bench_pin_postgres() {
    [ -n "${BENCH_PG_CPUS:-}" ] || return 0
    local postmaster child
    postmaster=$(bench_pg_postmaster)
    taskset -apc "$BENCH_PG_CPUS" "$postmaster" >/dev/null
    for child in $(ps -o pid= --ppid "$postmaster"); do
        taskset -apc "$BENCH_PG_CPUS" "$child" >/dev/null
    done
}
