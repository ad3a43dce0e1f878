"""Schemathesis hooks for idnow-attempts (loaded by scripts/check-openapi): the credentials.

The webhook route admits only authentic deliveries, so generated bodies would all end as 401
and the route's real behaviour would go untested. This signs each generated body as a signing
gateway in front of IDnow does (`WEBHOOK_AUTH=hmac`): `X-Idnow-Signature: sha256=<hex
HMAC-SHA256 of the raw body>`. It is registered as an auth provider, not a request hook, so
that schemathesis knows these credentials are explicit: its `ignored_auth` check then
removes or spoils them and expects 401, which tests the verification too.
"""

import hashlib
import hmac
import json
import os

import schemathesis
from schemathesis.core import NOT_SET

SECRET = os.environ["SCHEMATHESIS_WEBHOOK_SECRET"].encode()
# An API client holding every scope. Given here rather than as `[auth.openapi.bearer]` in
# schemathesis.toml: configured auth takes precedence over these providers, on every route.
TOKEN = os.environ["SCHEMATHESIS_API_TOKEN"]


def sent_body(case):
    """The bytes the body goes out as. The body stays as generated, so that schemathesis can
    still tell a negative case that serialisation made valid (an integer key, say), and is
    serialised here as `requests` serialises it (`json.dumps(..., allow_nan=False)`, UTF-8)."""
    if case.body is NOT_SET:
        return b""
    if isinstance(case.body, bytes):
        return case.body
    try:
        return json.dumps(case.body, allow_nan=False).encode()
    except (TypeError, ValueError):
        # Not sendable as JSON at all: schemathesis reports that itself.
        return b""


@schemathesis.auth().apply_to(path="/v1/webhooks/idnow")
class WebhookSignature:
    def get(self, case, context):
        return SECRET

    def set(self, case, secret, context):
        signature = hmac.new(secret, sent_body(case), hashlib.sha256).hexdigest()
        case.headers = {**(case.headers or {}), "X-Idnow-Signature": f"sha256={signature}"}


@schemathesis.auth().apply_to(path_regex="^/v1/persons/")
class BearerToken:
    def get(self, case, context):
        return TOKEN

    def set(self, case, token, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
