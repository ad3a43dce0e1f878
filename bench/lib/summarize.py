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
            f"Linux {platform.release()}, {pg_version.strip()} (pgbench), wrk; service, "
            "PostgreSQL and the load generators share the machine")


def table(results_path, mode, small_attempts, full_attempts, peak_rss_kib, pg_version,
          durability="disposable PostgreSQL", plain_left="0"):
    runs = {}
    for line in Path(results_path).read_text().splitlines():
        run = json.loads(line)
        runs[run["name"]] = run

    def rate(run):
        if "tps" in run:
            return run["tps"]
        return run["requests"] / run["seconds"]

    rows = []

    def row(measure, service, baseline, ratio, target, met):
        rows.append(f"| {measure} | {service} | {baseline} | {ratio} | {target} | {'yes' if met else '**no**'} |")

    for c in (16, 64):
        s, b = runs[f"ingest-c{c}"], runs[f"pgbench-insert-c{c}"]
        # Only 201s count: every delivery is distinct, so anything else is a failure.
        service_rate = s["created"] / s["seconds"]
        ratio = service_rate / b["tps"]
        note = " (ran out of distinct deliveries)" if s.get("ran_out_of_deliveries") else ""
        row(f"ingest, {c} connections: stored webhooks/s{note}",
            f"{service_rate:,.0f}/s, p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms",
            f"{b['tps']:,.0f}/s, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms",
            f"{ratio:.2f}×", "≥ 0.8×", ratio >= 0.8)
    for attempts, label in ((5, "5 attempts"), (200, "200 attempts, page of 100")):
        s, b = runs[f"listing-{attempts}-c16"], runs[f"pgbench-listing-{attempts}-c16"]
        ratio = rate(s) / rate(b)
        p99_ratio = s["p99_ms"] / b["p99_ms"]
        row(f"listing, {label}, 16 connections: requests/s",
            f"{rate(s):,.0f}/s", f"{rate(b):,.0f}/s", f"{ratio:.2f}×", "≥ 0.7×", ratio >= 0.7)
        row(f"listing, {label}, 16 connections: p99 (p50)",
            f"{s['p99_ms']:.2f} ms ({s['p50_ms']:.2f} ms)",
            f"{b['p99_ms']:.2f} ms ({b['p50_ms']:.2f} ms)",
            f"{p99_ratio:.2f}×", "≤ 3×", p99_ratio <= 3)
    small, full = runs["scale-small"], runs["scale-full"]
    ratio = full["p50_ms"] / small["p50_ms"]
    row(f"listing p50, 1 connection: {int(full_attempts):,} vs {int(small_attempts):,} attempts",
        f"{full['p50_ms']:.3f} ms (p99 {full['p99_ms']:.3f})",
        f"{small['p50_ms']:.3f} ms (p99 {small['p99_ms']:.3f})",
        f"{ratio:.2f}×", "≤ 1.3×", ratio <= 1.3)
    rss_mib = int(peak_rss_kib) / 1024
    row("peak RSS of the service, whole run", f"{rss_mib:.1f} MiB", "", "", "≤ 64 MiB", rss_mib <= 64)

    errors = [f"{name}: {run.get('socket_errors', 0)} socket errors, {run.get('non_2xx', 0)} non-2xx"
              for name, run in runs.items()
              if run.get("socket_errors") or run.get("non_2xx") or run.get("failed")]
    heading = "Benchmark results" + (" (smoke run: tiny data, not figures)" if mode == "smoke" else "")
    print(f"# {heading}\n")
    print(f"`bench/run`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {durability}. "
          f"Machine: {machine(pg_version)}.\n")
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
    if errors:
        print("\nErrors: " + "; ".join(errors))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "pgbench":
        pgbench(*sys.argv[2:6])
    elif command == "table":
        table(*sys.argv[2:10])
    else:
        sys.exit(f"unknown command {command}")
