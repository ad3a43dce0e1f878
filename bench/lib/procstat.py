"""CPU time of bench/run's processes, from /proc, in clock ticks (`getconf CLK_TCK`).

  procstat.py sample SERVICE_PID POSTMASTER_PID
      prints `SERVICE POSTGRES CHILDREN`: the service's utime + stime (every thread), and
      PostgreSQL's: the postmaster's own utime + stime, plus cutime + cstime (the processes it
      has reaped: backends of connections that closed, autovacuum workers that finished),
      plus utime + stime of each live child (backends, checkpointer, WAL writer, …); and how
      many children live. The difference of two samples is what each spent in between.
"""

import sys
from pathlib import Path


def stat(pid):
    """The fields of /proc/PID/stat after the command name, which may hold spaces: index 0
    is field 3 (state), so field n is at n - 3."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu(fields, children=False):
    ticks = int(fields[14 - 3]) + int(fields[15 - 3])
    if children:
        ticks += int(fields[16 - 3]) + int(fields[17 - 3])
    return ticks


def reaped(fields):
    return int(fields[16 - 3]) + int(fields[17 - 3])


def sample(service_pid, postmaster_pid):
    service = cpu(stat(service_pid)) if service_pid != "0" else 0
    # A child reaped between reading the postmaster and reading the children would count in
    # neither: read again until the postmaster reaped nothing meanwhile.
    for _ in range(10):
        postmaster = stat(postmaster_pid)
        postgres, live = cpu(postmaster, children=True), 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = stat(entry.name)
            except (OSError, ValueError):
                continue  # gone meanwhile
            if fields[4 - 3] == postmaster_pid:
                postgres += cpu(fields)
                live += 1
        if reaped(stat(postmaster_pid)) == reaped(postmaster):
            break
    print(service, postgres, live)


if __name__ == "__main__":
    if sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
