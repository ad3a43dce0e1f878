"""bench/retention's tables, from its windows (one JSON line each) and the R_* variables."""

import datetime
import json
import os
import re
import statistics
from pathlib import Path

env = os.environ
windows = [json.loads(line) for line in open(env["R_RESULTS"])]
settings = json.loads(env["R_SETTINGS"])
before, after = json.loads(env["R_COUNTS_BEFORE"]), json.loads(env["R_COUNTS_AFTER"])
sizes = json.loads(env["R_SIZES"])
claimed, recent = int(env["R_CLAIMED"]), int(env["R_RECENT"])
rest_rows, rest_seconds = int(env["R_REST_ROWS"]), float(env["R_REST_SECONDS"])
# The rest factor of the source the binary was built from (this checkout, as a rule).
rest = re.search(r"^const REST: u32 = (\d+);", (Path(__file__).resolve().parents[2] / "src/retention.rs").read_text(), re.M).group(1)
rest_before, rest_after = json.loads(env["R_REST_BEFORE"]), json.loads(env["R_REST_AFTER"])
live = json.loads(env["R_LIVE"])
modes = env["R_MODES"].split()
med = statistics.median
MIB = 2**20


def counted(dry_run):
    """The count lines of `purge --dry-run`'s output."""
    return [line for line in dry_run.splitlines() if line[:1].isdigit()]


def rate(w):
    return w["requests"] / w["seconds"]


def delta(w, key):
    return (w["after"][key] or 0) - (w["before"][key] or 0)


now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
print(f"`bench/retention`, {now} UTC, binary `{env['R_BINARY']}`. Machine: {env['R_CORES']} "
      f"cores, {env['R_MEMORY']} GiB RAM; PostgreSQL, the service, wrk and the purge share it. "
      f"{env['R_ROUNDS']} rounds of {env['R_SECONDS']} s windows: in each round and load, the "
      "listing alone and the listing while `idnow-attempts purge` runs (started at the window's "
      "start, stopped at its end; each resumes from the retention mark), which first alternates.")
print()
print(f"Data: {before['expired_unclaimed']:,} expired unclaimed attempts (received 100 days ago), "
      f"{before['expired_claimed']:,} expired claimed ones ({int(env['R_SIGNINGS']):,} signings, "
      f"interleaved in arrival order), {before['recent_unclaimed']:,} recent unclaimed ones, and the "
      f"listed signing's {before['live']}, delivered through the webhook. Every payload sealed, "
      f"{env['R_SEALED']} bytes, TOASTed: heap {sizes['heap'] / MIB:,.0f} MiB, TOAST "
      f"{sizes['toast'] / MIB:,.0f} MiB, indexes {sizes['indexes'] / MIB:,.0f} MiB; loaded in "
      f"{float(env['R_LOAD_SECONDS']):.0f} s. `purge --dry-run` before: "
      + " / ".join(counted(env["R_DUE_BEFORE"])) + ".")
print()
print("| load | measure | listing alone | listing + purge | ratio |")
print("|---|---|---|---|---|")
labels = {
    "paced": f"paced: {env['R_PACED_CONNECTIONS']} connections, "
             f"{env['R_PACED_DELAY']} ms pause after each answer",
    "saturated": f"closed loop, {env['R_SATURATED_CONNECTIONS']} connections (saturated)",
}
for mode in modes:
    runs = {p: [w for w in windows if w["mode"] == mode and w["purge"] == p] for p in (0, 1)}
    if not runs[0] or not runs[1]:
        continue
    n = len(runs[0])
    for name, f, fmt in [
        ("requests/s", rate, lambda v: f"{v:,.0f}/s"),
        ("p50", lambda w: w["p50_ms"], lambda v: f"{v:.2f} ms"),
        ("p99", lambda w: w["p99_ms"], lambda v: f"{v:.2f} ms"),
    ]:
        a, b = med(f(w) for w in runs[0]), med(f(w) for w in runs[1])
        spread = lambda p: f" ({fmt(min(f(w) for w in runs[p]))} to {fmt(max(f(w) for w in runs[p]))})"
        print(f"| {labels[mode]} | {name}, median of {n} (range) | {fmt(a)}{spread(0)} | "
              f"{fmt(b)}{spread(1)} | {b / a:.2f}× |")
    bad = sum(w["non_2xx"] + w["socket_errors"] for p in (0, 1) for w in runs[p])
    if bad:
        print(f"| {labels[mode]} | failed requests | {bad} in all | | |")
    purged = sum(w["purge_rows"] for w in runs[1])
    secs = sum(w["purge_seconds"] for w in runs[1])
    print(f"| {labels[mode]} | purge rate beside it | | {purged / secs:,.0f} rows/s "
          f"({purged:,} rows in {secs:.0f} s) | |")
print(f"| none | purge rate alone (what was left) | | {rest_rows / max(rest_seconds, 1e-9):,.0f} rows/s "
      f"({rest_rows:,} rows in {rest_seconds:.0f} s) | |")
total_rows = sum(w["purge_rows"] for w in windows) + rest_rows
total_seconds = sum(w["purge_seconds"] for w in windows if w["purge"]) + rest_seconds
print(f"| all | the whole purge: time purging | | {total_seconds:.0f} s for {total_rows:,} rows, "
      f"{total_rows / total_seconds:,.0f} rows/s | |")
print()
gone = after["expired_unclaimed"] == 0
kept = (after["expired_claimed"] == claimed and after["recent_unclaimed"] == recent
        and after["live"] == 5 and len(live) == 5)
print(f"After: expired unclaimed {after['expired_unclaimed']:,} of {before['expired_unclaimed']:,} "
      f"({'all gone' if gone else '**NOT all gone**'}); expired claimed {after['expired_claimed']:,} "
      f"of {claimed:,}, recent {after['recent_unclaimed']:,} of {recent:,}, the listed signing's "
      f"{after['live']} of 5 ({'all kept' if kept else '**NOT all kept**'}), and its listing answers "
      f"{len(live)} attempts. `purge --dry-run` now: "
      + " / ".join(counted(env["R_DUE_AFTER"])) + ".")
print()
batch = env["R_BATCH"] or f"{env['R_DEFAULT_BATCH']} (the default, config/default.toml)"
options = f", with `{env['R_PG_OPTIONS']}`" if env["R_PG_OPTIONS"] else ""
overrides = (f" (**src/ names one: {env['R_OVERRIDES'].strip()}**)"
             if env["R_OVERRIDES"].strip() else "")
print("Durability: PostgreSQL " + ", ".join(f"{k} = {settings[k]}" for k in [
    "fsync", "synchronous_commit", "full_page_writes", "wal_level", "wal_sync_method"])
    + "; other settings at their defaults" + options + ": " + ", ".join(
    f"{k} = {settings[k]}" for k in [
        "shared_buffers", "max_wal_size", "checkpoint_timeout", "checkpoint_completion_target",
        "autovacuum", "autovacuum_vacuum_cost_delay", "autovacuum_vacuum_cost_limit"])
    + f" (PostgreSQL {settings['server_version']}). The service sets no durability setting on "
    f"its sessions{overrides}: every commit, each purge batch's included, waits for its WAL "
    f"flush. Retention: batch_size = {batch}, a rest of {rest}× each batch's time "
    "(`REST` in src/retention.rs).")
print()
print("Each window (WAL, fsync and checkpoint figures are the server's, over the window; "
      "vacuum: seconds a vacuum was seen running, sampled once a second; load average: the "
      "machine's 1-minute figure at the window's end, ours (~2-3) and whatever else ran):")
print()
print("| round | load | purge | requests/s | p50 | p99 | rows purged | WAL | full-page images "
      "| WAL fsyncs (time) | checkpoints (buffers written) | vacuum | load average |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for w in windows + [{"round": "rest", "mode": "none", "purge": 1, "purge_rows": rest_rows,
                     "purge_done": 1, "before": rest_before, "after": rest_after}]:
    traffic = (f"{rate(w):,.0f} | {w['p50_ms']:.2f} ms | {w['p99_ms']:.2f} ms"
               if "requests" in w else " | | ")
    print(f"| {w['round']} | {w['mode']} | {'yes' if w['purge'] else 'no'} | {traffic} | "
          f"{w['purge_rows']:,}{' (done)' if w['purge_done'] else ''} | "
          f"{delta(w, 'wal_bytes') / MIB:,.0f} MiB | {delta(w, 'wal_fpi'):,} | "
          f"{delta(w, 'wal_sync'):,} ({delta(w, 'wal_sync_ms') / 1000:.1f} s) | "
          f"{delta(w, 'checkpoints')} ({delta(w, 'buffers_checkpoint'):,}) | "
          + (f"{w['vacuum_seconds']} s | {w['loadavg']} |" if "vacuum_seconds" in w else " | |"))
