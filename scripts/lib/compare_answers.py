"""The same requests, in the same order, to two builds of the service, each on a fresh
database of the PostgreSQL at ADMIN_URL; their answers (status, headers but Date and
Content-Length, body) compared with ids masked. For refactorings that must not change what
clients see. Prints one line a request, then the count of differences; exits 1 if any.

    python3 scripts/lib/compare_answers.py ADMIN_URL BINARY_A BINARY_B
(scripts/compare-answers starts a throwaway PostgreSQL for it.)"""
import base64, hashlib, hmac, json, os, re, socket, subprocess, sys, time, urllib.request
from pathlib import Path

ADMIN_URL, BUILDS = sys.argv[1], sys.argv[2:4]
SECRET = "diff-secret"
TOKEN_READ, TOKEN_WRITE, TOKEN_NONE = "read-token", "write-token", "scopeless"
def digest(t): return hashlib.sha256(t.encode()).hexdigest()
KEYS = json.dumps([
    {"name": "reader", "sha256": digest(TOKEN_READ), "scopes": ["idnow_attempts:read"]},
    {"name": "writer", "sha256": digest(TOKEN_WRITE), "scopes": ["signings:write"]},
    {"name": "none", "sha256": digest(TOKEN_NONE), "scopes": []},
])
FIXTURE = (Path(__file__).resolve().parents[2] / "tests/fixtures/success.json").read_bytes()

def start(binary, db):
    subprocess.run(["psql", ADMIN_URL, "-X", "-q", "-c", f"DROP DATABASE IF EXISTS {db}",
                    "-c", f"CREATE DATABASE {db}"], check=True)
    database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + db
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    env = dict(os.environ, DATABASE_URL=database_url, PORT=str(port),
               IDNOW_WEBHOOK_SECRETS=SECRET, API_KEYS=KEYS, RUST_LOG="warn",
               # Read by builds with encryption at rest, ignored by older ones.
               PAYLOAD_ENCRYPTION_KEYS="compare:" + base64.b64encode(b"k" * 32).decode())
    p = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live"); break
        except Exception: time.sleep(0.1)
    return p, port

def raw(port, method, path, headers=None, body=b""):
    """One request on its own connection; returns (status, headers dict lower, body)."""
    s = socket.create_connection(("127.0.0.1", port))
    lines = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close"]
    hs = dict(headers or {})
    if body or method in ("POST", "PUT"):
        hs.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in hs.items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    h = {}
    for line in header_lines:
        k, _, v = line.partition(":"); h[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), h, rest

def sig(body): return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
def std(id_, ts, body):
    mac = hmac.new(SECRET.encode(), f"{id_}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()

def body_with(**process):
    d = json.loads(FIXTURE); d["identificationprocess"].update(process); return json.dumps(d).encode()

def requests():
    tn = "a" * 32 + "cidt"
    good = body_with(transactionnumber=tn)
    now = str(int(time.time()))
    J = {"Content-Type": "application/json"}
    A = lambda t: {"Authorization": f"Bearer {t}"}
    listing = f"/v1/persons/per-1/signings/sig-1/idnow_attempts"
    yield "PUT", "/v1/persons/per-1/signings/sig-1", {**J, **A(TOKEN_WRITE)}, json.dumps({"identification_id": tn}).encode()
    yield "PUT", "/v1/persons/per-1/signings/sig-1", {**J, **A(TOKEN_WRITE)}, json.dumps({"identification_id": tn}).encode()
    yield "PUT", "/v1/persons/per-2/signings/sig-1", {**J, **A(TOKEN_WRITE)}, json.dumps({"identification_id": tn}).encode()
    yield "PUT", "/v1/persons/per-1/signings/sig-9", {**J, **A(TOKEN_WRITE)}, json.dumps({"identification_id": tn}).encode()
    yield "PUT", "/v1/persons/per-1/signings/sig-1", {**J, **A(TOKEN_WRITE)}, json.dumps({"identification_id": "b" * 32 + "cidt"}).encode()
    yield "PUT", "/v1/persons/per-1/signings/sig-2", {**J, **A(TOKEN_WRITE)}, b"{"
    yield "PUT", "/v1/persons/per-1/signings/sig-2", {**J, **A(TOKEN_WRITE)}, b'{"identification_id":5}'
    yield "PUT", "/v1/persons/per-1/signings/sig-2", {**J, **A(TOKEN_READ)}, b"{}"
    yield "PUT", "/v1/persons/per-1/signings/sig-2", J, b"{}"
    yield "PUT", "/v1/persons/p%20x/signings/sig-2", {**J, **A(TOKEN_WRITE)}, b"{}"
    yield "POST", "/v1/webhooks/idnow", J, good
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": "sha256=00"}, good
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": "md5=00"}, good
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": sig(good)}, good
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": sig(good)}, good
    b2 = body_with(transactionnumber=tn, result="ABORTED", reason="TECH")
    yield "POST", "/v1/webhooks/idnow", {**J, "webhook-id": "msg_1", "webhook-timestamp": now, "webhook-signature": std("msg_1", now, b2)}, b2
    b3 = body_with(transactionnumber=tn, result="CANCELED")
    yield "POST", "/v1/webhooks/idnow", {**J, "webhook-id": "msg_1", "webhook-timestamp": now, "webhook-signature": std("msg_1", now, b3)}, b3
    yield "POST", "/v1/webhooks/idnow", {**J, "webhook-id": "msg_2", "webhook-timestamp": "1", "webhook-signature": std("msg_2", "1", b3)}, b3
    bad = b"not json"
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": sig(bad)}, bad
    b4 = b'{"identificationprocess":{"result":"SUCCESS"}}'
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": sig(b4)}, b4
    b5 = body_with(transactionnumber="c" * 32 + "cidt", result="A\\u0000B")
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": sig(b5)}, b5
    yield "POST", "/v1/webhooks/idnow", {"Content-Type": "text/plain", "X-Idnow-Signature": sig(good)}, good
    yield "POST", "/v1/webhooks/idnow", {**J, "Content-Encoding": "gzip", "X-Idnow-Signature": sig(good)}, good
    big = b" " * (1024 * 1024 + 1)
    yield "POST", "/v1/webhooks/idnow", J, big
    b6 = body_with(transactionnumber="d" * 32 + "cidt")
    yield "POST", "/v1/webhooks/idnow", {**J, "X-Idnow-Signature": sig(b6)}, b6
    yield "GET", "/v1/webhooks/idnow", {}, b""
    yield "GET", listing, A(TOKEN_READ), b""
    yield "GET", listing + "?page[size]=1&page[number]=2", A(TOKEN_READ), b""
    yield "GET", listing + "?page[size]=0", A(TOKEN_READ), b""
    yield "GET", listing + "?page[size]=abc", A(TOKEN_READ), b""
    yield "GET", listing, A(TOKEN_WRITE), b""
    yield "GET", listing, A(TOKEN_NONE), b""
    yield "GET", listing, A("wrong"), b""
    yield "GET", listing, {}, b""
    yield "GET", listing, {"Authorization": "Basic eDp5"}, b""
    yield "GET", "/v1/persons/per-1/signings/nope/idnow_attempts", A(TOKEN_READ), b""
    yield "GET", "/v1/persons/p%00/signings/sig-1/idnow_attempts", A(TOKEN_READ), b""
    yield "GET", "/v1/persons/p%00/signings/sig-1/idnow_attempts", {}, b""
    yield "DELETE", listing, A(TOKEN_READ), b""
    yield "GET", "/nowhere", {}, b""
    yield "POST", "/health/live", {}, b""
    yield "GET", "/health/live", {}, b""
    yield "GET", "/health/ready", {}, b""
    yield "GET", "/v1/webhooks/idnow", {"X-Big": "x" * 17000}, b""

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ATTEMPT = re.compile(rb"[0-9a-f]{32}cida")
def mask(b): return ATTEMPT.sub(b"<attempt>", UUID.sub(b"<uuid>", b))
IGNORED = {"date", "content-length"}

procs = [start(b, f"compare_answers_{i}") for i, b in enumerate(BUILDS)]
try:
    reqs = list(requests())
    diffs = 0
    for n, (m, p, h, body) in enumerate(reqs):
        answers = []
        for _, port in procs:
            st, hd, bd = raw(port, m, p, h, body)
            hd = {k: mask(v.encode()).decode() for k, v in hd.items() if k not in IGNORED}
            answers.append((st, hd, mask(bd)))
        if answers[0] != answers[1]:
            diffs += 1
            print(f"#{n} {m} {p[:60]}:\n  A {answers[0]}\n  B {answers[1]}")
        else:
            print(f"#{n} {m} {p[:60]} -> {answers[0][0]} same")
    print(f"{len(reqs)} requests, {diffs} differences")
finally:
    for p, _ in procs: p.terminate()
sys.exit(1 if diffs else 0)
