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
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "tests/fixtures/success.json"

RESULTS = ["SUCCESS", "ABORTED", "ABORTED", "REVIEW_PENDING", "SUCCESS_DATA_CHANGED",
           "FRAUD_SUSPICION_PENDING", "CANCELED", "ABORTED"]
REASONS = {"ABORTED": "TECH_DISCONNECTED_VIDEO", "CANCELED": "USER_CANCELLATION"}


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


if __name__ == "__main__":
    # deliveries SECRET COUNT SIGNINGS OUT RUN: one `signature<TAB>body` line per distinct
    # delivery, spread over the loaded signings' transaction numbers; RUN keeps the
    # deliveries of different runs apart.
    # template OUT: the SQL template.
    command = sys.argv[1]
    if command == "deliveries":
        secret, count, signings, out = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        run = int(sys.argv[6])
        with open(out, "w") as f:
            for n in range(count):
                body = payload(f"bench-tn-{(n * 7919) % signings}", (run + 1) * 10_000_000 + n)
                f.write(f"{sign(secret, body)}\t{body}\n")
    elif command == "template":
        Path(sys.argv[2]).write_text(sql_template())
    elif command == "pgbench-insert":
        # pgbench-insert SCRIPT PAYLOAD: the single-row form of the service's INSERT (it
        # stores batches of such rows: src/persistence/writer.rs, keep in step) with a fresh id
        # and dedup key per transaction and the
        # transaction number of a loaded signing (-D signings=N); the ~3 KB payload goes to
        # PAYLOAD, for `-D payload="$(cat PAYLOAD)"`: a bound parameter, as the service sends it.
        Path(sys.argv[2]).write_text("""\\set tn random(0, :signings - 1)
WITH inserted AS (
    INSERT INTO attempts
        (id, transaction_number, ident_id, result, reason, identified_at,
         webhook_id, dedup_key, payload)
    VALUES (gen_random_uuid(), 'bench-tn-' || :tn::text, 'BEN-pgbench', 'ABORTED',
            'TECH_DISCONNECTED_VIDEO', now(), NULL,
            sha256(convert_to(gen_random_uuid()::text, 'UTF8')), :payload::text::json)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM signings WHERE identification_id = 'bench-tn-' || :tn::text)
FROM inserted;
""")
        Path(sys.argv[3]).write_text(payload("bench-tn-0", 7))
    else:
        sys.exit(f"unknown command {command}")
