"""Real-shaped IDnow payloads for the benchmark, from the shared fixture `success.json`.

Every payload is about 3 KB: the fixture (2.1 KB) plus the custom data a bank typically
attaches. The same template feeds the SQL history load, the signed deliveries for wrk and
the pgbench INSERT, so that all of them write the same bytes.
"""

import copy
import functools
import hashlib
import hmac
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests/fixtures/success.json"
# The service's statements, one file each: the benchmark runs the very text it sends.
STATEMENTS = REPO / "src/persistence/sql"

RESULTS = ["SUCCESS", "ABORTED", "ABORTED", "REVIEW_PENDING", "SUCCESS_DATA_CHANGED",
           "FRAUD_SUSPICION_PENDING", "CANCELED", "ABORTED"]
REASONS = {"ABORTED": "TECH_DISCONNECTED_VIDEO", "CANCELED": "USER_CANCELLATION"}

# The loaded signings below this number are listed, never written to: neither the service's
# ingest runs nor pgbench's INSERT add to them, so that a listing measured after those runs
# still lists the 5 attempts it is named after. (pgbench's rows hold random bytes, not a
# payload sealed for its row: listed, such a row is a 500, and an open-loop run once
# measured nothing but 500s.)
LISTED = 10


def template() -> dict:
    return copy.deepcopy(_template())


@functools.cache
def _template() -> dict:
    payload = json.loads(FIXTURE.read_text())
    payload["customdata"] = {
        "custom1": "loan-application",
        "custom2": "x" * 400,
        "custom3": "retail-banking/consumer-credit/online",
        "custom4": "y" * 400,
        "custom5": None,
    }
    return payload


def payload(transaction_number: str, n: int) -> str:
    """The n-th distinct delivery for a transaction number, as compact JSON."""
    body = template()
    process = body["identificationprocess"]
    process["transactionnumber"] = transaction_number
    process["result"] = RESULTS[n % len(RESULTS)]
    if process["result"] in REASONS:
        process["reason"] = REASONS[process["result"]]
    process["id"] = f"BEN-{n:08d}"
    process["identificationtime"] = f"2026-10-{1 + n % 28:02d}T09:{n % 60:02d}:{(n // 60) % 60:02d}+02:00"
    return json.dumps(body, separators=(",", ":"))


def sign(secret: str, body: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def sql_template() -> str:
    """The template with placeholders the history load replaces in SQL."""
    body = template()
    process = body["identificationprocess"]
    process.update(transactionnumber="@TN@", result="@RESULT@", id="@IDENT@",
                   identificationtime="@TIME@")
    return json.dumps(body, separators=(",", ":"))


def statement(name: str, parameters: dict) -> str:
    """The service's statement NAME as a pgbench script: each `$n` becomes parameters[n], a
    pgbench variable (sent as a bound parameter with -M prepared) or an SQL expression."""
    text = (STATEMENTS / f"{name}.sql").read_text()
    return re.sub(r"\$(\d+)", lambda m: parameters[int(m.group(1))], text).rstrip() + ";\n"


if __name__ == "__main__":
    # deliveries SECRET COUNT SIGNINGS OUT RUN: one `signature<TAB>body` line per distinct
    # delivery, spread over the loaded signings' transaction numbers from LISTED up; RUN
    # keeps the deliveries of different runs apart.
    # template OUT: the SQL template.
    # pgbench-history, pgbench-insert: the service's statements as pgbench scripts (below).
    command = sys.argv[1]
    if command == "deliveries":
        secret, count, signings, out = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        if signings <= LISTED:
            sys.exit(f"deliveries need more than {LISTED} signings (the first {LISTED} are listed)")
        run = int(sys.argv[6])
        with open(out, "w") as f:
            for n in range(count):
                tn = LISTED + (n * 7919) % (signings - LISTED)
                body = payload(f"bench-tn-{tn}", (run + 1) * 10_000_000 + n)
                f.write(f"{sign(secret, body)}\t{body}\n")
    elif command == "template":
        Path(sys.argv[2]).write_text(sql_template())
    elif command == "pgbench-history":
        # pgbench-history SCRIPT: the listing's statement, for -D signing= -D person=
        # -D limit= -D offset=.
        Path(sys.argv[2]).write_text(statement("history", {
            1: ":signing", 2: ":person", 3: ":limit", 4: ":offset"}))
    elif command == "pgbench-insert":
        # pgbench-insert SCRIPT SEALED: the service's batch INSERT with one attempt per
        # transaction: a fresh id and dedup key each, the transaction number of a loaded
        # signing from LISTED up (-D signings=N) and its SHA-256 as the identification digest, under key id
        # `bench`. SEALED gets what the service would store for a ~3 KB payload, as bytea
        # text (`\x…`): format byte, nonce, ciphertext and tag, 1 + 12 + len(payload) + 16
        # random bytes (incompressible, as ciphertext is), for `-D sealed="$(cat SEALED)"`: a
        # bound parameter, as the service sends it.
        one = lambda expression: f"ARRAY[{expression}]"
        Path(sys.argv[2]).write_text(f"\\set tn random({LISTED}, :signings - 1)\n" + statement("insert", {
            1: one("gen_random_uuid()"),
            2: one("'bench-tn-' || :tn::text"),
            3: one("'BEN-pgbench'"),
            4: one("'ABORTED'"),
            5: one("'TECH_DISCONNECTED_VIDEO'"),
            6: one("now()"),
            7: one("NULL::text"),
            8: one("sha256(convert_to(gen_random_uuid()::text, 'UTF8'))"),
            9: one(":sealed::bytea"),
            10: one("'bench'"),
            11: one("sha256(convert_to('bench-tn-' || :tn::text, 'UTF8'))"),
        }))
        sealed = os.urandom(1 + 12 + len(payload("bench-tn-0", 7).encode()) + 16)
        Path(sys.argv[3]).write_text("\\x" + sealed.hex())
    else:
        sys.exit(f"unknown command {command}")
