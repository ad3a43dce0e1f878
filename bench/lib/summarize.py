"""Figures of bench/run: pgbench's per-transaction logs to percentiles, and the final table."""

import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def pgbench(name, clients, stdout_path, log_dir):
    """One JSON line like wrk's: transactions, duration, p50/p99 from the transaction log."""
    stdout = Path(stdout_path).read_text()
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", stdout)
    latencies = []
    for log in Path(log_dir).iterdir():
        for line in log.read_text().splitlines():
            fields = line.split()
            latencies.append(int(fields[2]) / 1000)
    latencies.sort()
    print(json.dumps({
        "name": name, "connections": int(clients), "requests": len(latencies), "tps": tps,
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "p999_ms": percentile(latencies, 99.9), "max_ms": latencies[-1] if latencies else 0,
        "failed": int(failed.group(1)) if failed else 0,
    }))


def machine(pg_version):
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except OSError:
        mem_kib = 0
    return (f"{os.cpu_count()} × {cpu}, {mem_kib / 1024 / 1024:.0f} GiB RAM, "
            f"Linux {platform.release()}, {pg_version.strip()} (pgbench), wrk, bench/openloop")


def instruction_figures(instructions_path, baseline_path):
    """Per measure: the lowest window's instructions per request and every window's; and the
    reference build's figures from the baseline file's `# reference COMMIT name=value…`."""
    windows = {}
    path = Path(instructions_path)
    for line in (path.read_text().splitlines() if path.exists() else []):
        w = json.loads(line)
        windows.setdefault(w["measure"], []).append(w["instructions"] / w["requests"])
    reference, commit = {}, None
    path = Path(baseline_path)
    for line in (path.read_text().splitlines() if path.exists() else []):
        m = re.match(r"^#\s*reference\s+(\S+)\s+(.*)$", line)
        if m:
            commit = m.group(1)
            reference = {k: int(v) for k, v in re.findall(r"([a-z0-9-]+)=(\d+)", m.group(2))}
    return windows, commit, reference


def table(results_path, mode, small_attempts, full_attempts, pg_version, durability,
          plain_left, pinning, instructions_path, baseline_path):
    runs = {}
    for line in Path(results_path).read_text().splitlines():
        run = json.loads(line)
        runs[run["name"]] = run
    windows, reference_commit, reference = instruction_figures(instructions_path, baseline_path)
    instructions = {name: min(per) for name, per in windows.items()}

    def rate(run):
        if "tps" in run:
            return run["tps"]
        return run["requests"] / run["seconds"]

    def cpu_us(run, who):
        """CPU µs per request of `who` over the run; ingest counts stored webhooks."""
        answered = run.get("created") or run["requests"]
        return 1e6 * run[f"{who}_cpu_ticks"] / run["ticks_per_second"] / max(1, answered)

    def failed(run):
        """Requests of the run that got no 2xx answer. Such a run measured error answers as
        well as the service's work, so it meets no target."""
        return run.get("non_2xx", 0) + run.get("socket_errors", 0) + run.get("failed", 0)

    def verdict(met, *measured):
        failures = sum(failed(run) for run in measured)
        if failures:
            return f"**no**: {failures:,} failed"
        return "yes" if met else "**no**"

    rows = []

    def row(measure, service, baseline, ratio, target, met, *measured):
        rows.append(f"| {measure} | {service} | {baseline} | {ratio} | {target} | {verdict(met, *measured)} |")

    for c in (16, 64):
        s, b = runs[f"ingest-c{c}"], runs[f"pgbench-insert-c{c}"]
        # Only 201s count: every delivery is distinct, so anything else is a failure.
        service_rate = s["created"] / s["seconds"]
        ratio = service_rate / b["tps"]
        note = " (ran out of distinct deliveries)" if s.get("ran_out_of_deliveries") else ""
        row(f"ingest, {c} connections: stored webhooks/s{note}",
            f"{service_rate:,.0f}/s, p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms",
            f"{b['tps']:,.0f}/s, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms",
            f"{ratio:.2f}×", "≥ 0.8×", ratio >= 0.8, s, b)
    for attempts, label in ((5, "5 attempts"), (200, "200 attempts, page of 100")):
        s, b = runs[f"listing-{attempts}-c16"], runs[f"pgbench-listing-{attempts}-c16"]
        ratio = rate(s) / rate(b)
        p99_ratio = s["p99_ms"] / b["p99_ms"]
        row(f"listing, {label}, 16 connections: requests/s",
            f"{rate(s):,.0f}/s", f"{rate(b):,.0f}/s", f"{ratio:.2f}×", "≥ 0.7×", ratio >= 0.7, s, b)
        row(f"listing, {label}, 16 connections: p99 (p50)",
            f"{s['p99_ms']:.2f} ms ({s['p50_ms']:.2f} ms)",
            f"{b['p99_ms']:.2f} ms ({b['p50_ms']:.2f} ms)",
            f"{p99_ratio:.2f}×", "≤ 3×", p99_ratio <= 3, s, b)
    small, full = runs["scale-small"], runs["scale-full"]
    ratio = full["p50_ms"] / small["p50_ms"]
    row(f"listing p50, 1 connection: {int(full_attempts):,} vs {int(small_attempts):,} attempts",
        f"{full['p50_ms']:.3f} ms (p99 {full['p99_ms']:.3f})",
        f"{small['p50_ms']:.3f} ms (p99 {small['p99_ms']:.3f})",
        f"{ratio:.2f}×", "≤ 1.3×", ratio <= 1.3, small, full)
    service_runs = [r for r in runs.values() if "peak_rss_kib" in r and not r["name"].startswith("pgbench")]
    rss_mib = max(r["peak_rss_kib"] for r in service_runs) / 1024
    row("peak RSS of the service, highest of any run", f"{rss_mib:.1f} MiB", "", "",
        "≤ 64 MiB", rss_mib <= 64)

    # CPU per request, for every run of the service; PostgreSQL's for the same statement
    # when pgbench sends it, beside.
    open_listing, open_ingest = runs["open-listing"], runs["open-ingest"]
    cpu_rows = [
        ("ingest, 16 connections", "ingest-c16", "pgbench-insert-c16", "ingest", 0.4),
        ("ingest, 64 connections", "ingest-c64", "pgbench-insert-c64", "ingest", 0.4),
        ("listing, 5 attempts, 16 connections", "listing-5-c16", "pgbench-listing-5-c16",
         "listing", 0.5),
        ("listing, 200 attempts, page of 100, 16 connections", "listing-200-c16",
         "pgbench-listing-200-c16", "listing-100", None),
        (f"listing, 5 attempts, 1 connection, {int(small_attempts):,} attempts loaded",
         "scale-small", None, "listing", None),
        (f"listing, 5 attempts, 1 connection, {int(full_attempts):,} attempts loaded",
         "scale-full", None, "listing", None),
        (f"open loop: listing, 5 attempts, {open_listing['rate']:,.0f}/s",
         "open-listing", None, "listing", None),
        (f"open loop: ingest, {open_ingest['rate']:,.0f}/s", "open-ingest", None, "ingest", None),
    ]
    cpu_table = ["| run | answers/s | p99 | service CPU per request | PostgreSQL CPU per request "
                 "| service ÷ PostgreSQL | target | met | PostgreSQL CPU per request, pgbench "
                 "sending the same statement | service instructions per request | peak RSS |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, name, baseline, kind, target in cpu_rows:
        r = runs[name]
        answered = (r.get("created") if kind == "ingest" else None) or r["requests"]
        service, postgres = cpu_us(r, "service"), cpu_us(r, "postgres")
        ratio = service / postgres if postgres else float("nan")
        met = "" if target is None else verdict(ratio <= target, r)
        base = f"{cpu_us(runs[baseline], 'postgres'):.0f} µs" if baseline else ""
        instr = f"{instructions[kind]:,.0f}" if kind in instructions else "not counted"
        cpu_table.append(
            f"| {label} | {answered / r['seconds']:,.0f}/s | {r['p99_ms']:.2f} ms "
            f"| {service:.0f} µs | {postgres:.0f} µs | {ratio:.2f}× "
            f"| {'' if target is None else f'≤ {target}×'} | {met} | {base} | {instr} "
            f"| {r['peak_rss_kib'] / 1024:.1f} MiB |")

    instr_table = []
    if instructions:
        label = {"ingest": "ingest: a signed ~3 KB webhook, stored",
                 "listing": "listing, 5 attempts", "listing-100": "listing, page of 100 of 200"}
        instr_table = [f"| measure | this build | every window | {reference_commit or 'reference'} "
                       f"| this ÷ {reference_commit or 'reference'} | target | met |",
                       "|---|---|---|---|---|---|---|"]
        for name, per in windows.items():
            ref = reference.get(name)
            ratio = instructions[name] / ref if ref else None
            target = "≤ 0.5×" if name == "listing" else ""
            met = ("yes" if ratio is not None and ratio <= 0.5 else "**no**") if target else ""
            instr_table.append(
                f"| {label.get(name, name)} | {instructions[name]:,.0f} "
                f"| {', '.join(f'{p:,.0f}' for p in per)} | {f'{ref:,}' if ref else ''} "
                f"| {f'{ratio:.2f}×' if ratio else ''} | {target} | {met} |")

    open_table = ["| run | rate: half the closed-loop maximum | connections | answered | p50 "
                  "| p99 | p99.9 | max | p99 without the correction | target | met |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in (("listing, 5 attempts", open_listing), ("ingest, stored webhooks", open_ingest)):
        open_table.append(
            f"| {label} | {r['rate']:,.0f}/s | {r['connections']} | {r['requests']:,} "
            f"({r['requests'] / r['seconds']:,.0f}/s) | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
            f"| {r['p999_ms']:.2f} ms | {r['max_ms']:.2f} ms | {r['uncorrected_p99_ms']:.2f} ms "
            f"| p99 ≤ 5 ms | {verdict(r['p99_ms'] <= 5, r)} |")

    # Poisson arrivals at the same rates, against pgbench --rate on the same schedule.
    poisson_table = ["| run | rate | connections | service p50 | service p99 | service p99.9 "
                     "| pgbench p50 | pgbench p99 | pgbench p99.9 | p99 ÷ pgbench's |",
                     "|---|---|---|---|---|---|---|---|---|---|"]
    for label, service, baseline in (
            ("listing, 5 attempts", "open-listing-poisson", "pgbench-open-listing"),
            ("ingest, stored webhooks", "open-ingest-poisson", "pgbench-open-ingest")):
        if service not in runs or baseline not in runs:
            continue
        r, b = runs[service], runs[baseline]
        poisson_table.append(
            f"| {label} | {r['rate']:,.0f}/s | {r['connections']} | {r['p50_ms']:.2f} ms "
            f"| {r['p99_ms']:.2f} ms | {r['p999_ms']:.2f} ms | {b['p50_ms']:.2f} ms "
            f"| {b['p99_ms']:.2f} ms | {b['p999_ms']:.2f} ms | {r['p99_ms'] / b['p99_ms']:.2f}× |")

    errors = [f"{name}: {run.get('socket_errors', 0)} socket errors, {run.get('non_2xx', 0)} non-2xx"
              + (f", {run['failed']} failed" if run.get("failed") else "")
              for name, run in runs.items()
              if failed(run)]
    heading = "Benchmark results" + (" (smoke run: tiny data, not figures)" if mode == "smoke" else "")
    print(f"# {heading}\n")
    print(f"`bench/run`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {durability}. "
          f"Machine: {machine(pg_version)}; {pinning}. The service runs 2 HTTP workers.\n")
    print("| measure | service | baseline: pgbench, same statement | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("Ingest counts only 201 answers (each delivery is distinct and signed); its baseline is "
          "pgbench running the service's INSERT with the same payload at the same client count. "
          "Listing baselines run the service's SELECT with pgbench (-M prepared). "
          "Latencies are per request as the load generator saw them. "
          "Payloads are stored sealed (AES-256-GCM): the loaded history is sealed by "
          "`idnow-attempts reencrypt` before it is measured, and pgbench's INSERT stores a "
          "sealed value of the same size"
          + (f"; {int(plain_left):,} attempts were left in plaintext." if int(plain_left) else "."))
    print("\n## CPU per request\n")
    print("\n".join(cpu_table))
    print()
    print("CPU time from `/proc` over each run (utime + stime, in clock ticks): the service's "
          "process; PostgreSQL's is every process of the cluster: the postmaster, its live "
          "children (backends, WAL writer, checkpointer, …) and those it reaped during the run "
          "(the postmaster's cutime + cstime). Per answered request; ingest per stored webhook. "
          "The target column is issue 16's: the service's CPU per request against "
          "PostgreSQL's for the same requests in the same run. The pgbench column is "
          "PostgreSQL's CPU per transaction when pgbench sends the service's statement "
          "(ingest: one row per INSERT, where the service stores batches). Peak RSS is the "
          "service's VmHWM over that run (reset before it through `clear_refs`).")
    if instr_table:
        print("\n## Instructions per request\n")
        print("\n".join(instr_table))
        print()
        print("`bench/instructions`: the same binary under valgrind's callgrind with 2 "
              "workers, in a fresh database of the same cluster, sequential requests on one "
              "keep-alive connection (so one delivery per stored batch), counters zeroed after "
              "set-up and warm-up; each measure's lowest of its windows. Counts, not times: "
              "they repeat on a busy machine. The reference figures are the same harness on "
              f"{reference_commit}, from `bench/instructions.baseline`; issue 16's target is "
              "the listing at most half of them.")
    print("\n## Open loop\n")
    print("\n".join(open_table))
    print()
    print("`bench/openloop`: requests at a fixed rate whatever the answers do, each one's "
          "latency from when it was due, not from when its connection was free to send it "
          "(the correction for coordinated omission, as wrk2's and oha's "
          "`--latency-correction`); the uncorrected p99 is from sending to the answer. Ingest "
          "sends distinct signed deliveries, each once.")
    if len(poisson_table) > 2:
        print("\nThe same rates with Poisson arrivals (bursts, as independent senders make "
              "them), against PostgreSQL's own tail: pgbench `--rate` sending the service's "
              "statement on as many connections, one thread each, so that each connection of "
              "either has a Poisson schedule of its own; pgbench's latencies too run from when "
              "each transaction was due (ingest's baseline commits one row per transaction; "
              "the service batches).\n")
        print("\n".join(poisson_table))
    if errors:
        print("\nErrors: " + "; ".join(errors))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "pgbench":
        pgbench(*sys.argv[2:6])
    elif command == "table":
        table(*sys.argv[2:12])
    else:
        sys.exit(f"unknown command {command}")
