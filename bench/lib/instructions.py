"""Drives the service that bench/instructions runs under callgrind: sets up what the listings
read through the API itself (so that any build, older schema or not, stores its own rows),
warms up, then counts each measure's instructions over windows of N sequential requests on
one keep-alive connection: counters zeroed before a window (`callgrind_control --zero`) and
dumped after it (`--dump`), so that start-up, set-up and warm-up never count.

Sequential requests make each window nearly the same work every time: one delivery per stored
batch, the same bodies' sizes in the same order. What still varies is how often a request's
connection is polled (wake-ups as PostgreSQL's answer arrives in one read or several, timers):
about 3 polls per request, each costing actix-http's decoder a ~3 KB memset of its header
array among the rest, a few percent of the 5-attempt listing from window to window. The lowest
window of a measure is its figure.

  instructions.py PORT PID OUT_DIR SECRET TOKEN REQUESTS ROUNDS PAUSE_MS
      -> one JSON line per window
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import payloads  # noqa: E402

# The listed signings: 5 attempts (the listing), and 200 read as a page of 100.
LISTINGS = {"listing": ("instr-person", "instr-sig-5", "instr-tn-5", 5, ""),
            "listing-100": ("instr-person", "instr-sig-200", "instr-tn-200", 200,
                            "?page%5Bsize%5D=100")}
# Ingest stores deliveries for a registered signing (201), as bench/run's do.
INGEST = ("instr-person", "instr-sig-ingest", "instr-tn-ingest", 0)
WARM_UP = 40


class Service:
    """One keep-alive connection; each request goes out in one write, after a pause that lets
    the service finish the previous one and go idle: how a request's bytes and PostgreSQL's
    answers fall into reads then varies less, and with it how often the service is polled."""

    def __init__(self, port, secret, token, pause):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.socket.makefile("rb")
        self.secret, self.token, self.pause = secret, token, pause
        self.deliveries = 0

    def request(self, method, path, body=b"", headers=None, expect=(200, 201)):
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        time.sleep(self.pause)
        self.socket.sendall(head.encode() + b"\r\n" + body)
        status = int(self.reader.readline().split()[1])
        length = 0
        while (line := self.reader.readline().strip()):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                sys.exit("instructions.py: a chunked answer; this client reads Content-Length only")
        data = self.reader.read(length)
        if status not in expect:
            sys.exit(f"instructions.py: {method} {path}: {status} {data[:300]!r}")
        return data

    def deliver(self, transaction_number):
        # Payload n of a cycle of 8 results: windows of a multiple of 8 requests send bodies
        # of the same sizes in the same order.
        body = payloads.payload(transaction_number, self.deliveries)
        self.deliveries += 1
        self.request("POST", "/v1/webhooks/idnow", body.encode(), {
            "Content-Type": "application/json",
            "X-Idnow-Signature": payloads.sign(self.secret, body)}, expect=(201,))

    def list(self, name):
        person, signing, _, _, query = LISTINGS[name]
        return self.request("GET", f"/v1/persons/{person}/signings/{signing}/idnow_attempts{query}",
                            headers={"Authorization": f"Bearer {self.token}"}, expect=(200,))


def callgrind(pid, *args):
    return subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                          capture_output=True, text=True).stdout


def window_instructions(out_dir, pid, before):
    """The instructions of the dump written since `before` (the files then present)."""
    new = sorted(set(Path(out_dir).glob(f"callgrind.out.{pid}.*")) - before,
                 key=lambda p: int(p.name.rsplit(".", 1)[1]))
    if len(new) != 1:
        sys.exit(f"instructions.py: expected one new dump, found {[p.name for p in new]}")
    for line in new[0].read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    sys.exit(f"instructions.py: no totals in {new[0]}")


def main():
    port, pid, out_dir, secret, token = sys.argv[1:6]
    requests, rounds, pause_ms = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
    if requests % 8:
        sys.exit("instructions.py: REQUESTS must be a multiple of 8 (the payloads' cycle)")
    service = Service(int(port), secret, token, pause_ms / 1000)
    signings = [(person, signing, tn, attempts) for person, signing, tn, attempts, _
                in LISTINGS.values()]
    for person, signing, tn, attempts in signings + [INGEST]:
        service.request("PUT", f"/v1/persons/{person}/signings/{signing}",
                        json.dumps({"identification_id": tn}).encode(),
                        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        for _ in range(attempts):
            service.deliver(tn)
    for name, (_, _, _, attempts, _) in LISTINGS.items():
        listed = len(json.loads(service.list(name)))
        if listed != min(attempts, 100):
            sys.exit(f"instructions.py: {name} listed {listed} attempts, not {min(attempts, 100)}")

    # Requests per window: the page of 100 costs ten times the others, and varies less.
    measures = {
        "ingest": (lambda: service.deliver(INGEST[2]), requests),
        "listing": (lambda: service.list("listing"), requests),
        "listing-100": (lambda: service.list("listing-100"), max(8, requests // 4)),
    }
    for send, _ in measures.values():
        for _ in range(WARM_UP):
            send()
    for round_ in range(rounds):
        for name, (send, count) in measures.items():
            before = set(Path(out_dir).glob(f"callgrind.out.{pid}.*"))
            started = time.monotonic()
            callgrind(pid, "--zero")
            for _ in range(count):
                send()
            callgrind(pid, f"--dump={name}")
            total = window_instructions(out_dir, pid, before)
            print(json.dumps({"measure": name, "round": round_ + 1, "requests": count,
                              "instructions": total,
                              "seconds": round(time.monotonic() - started, 2)}), flush=True)


if __name__ == "__main__":
    main()
