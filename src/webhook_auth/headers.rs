//! The request headers that authentication methods read, taken from the request once.

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};

use super::{AuthFailure, MethodName};

/// A header's bytes as they arrived: the `webhook-id` is signed as sent, whatever its
/// characters, and only judged once the signature is known to be the sender's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum SentHeader<'a> {
    #[default]
    Absent,
    One(&'a [u8]),
    /// Sent more than once: ambiguous, so it never verifies.
    Repeated,
}

impl<'a> SentHeader<'a> {
    /// The value of a header a method requires; `missing` when it was not sent.
    pub(super) fn bytes(self, missing: AuthFailure) -> Result<&'a [u8], AuthFailure> {
        match self {
            Self::Absent => Err(missing),
            Self::One(value) => Ok(value),
            Self::Repeated => Err(AuthFailure::Malformed),
        }
    }

    /// As [`SentHeader::bytes`], as text: for headers whose syntax is ASCII (timestamps,
    /// signatures).
    pub(super) fn text(self, missing: AuthFailure) -> Result<&'a str, AuthFailure> {
        std::str::from_utf8(self.bytes(missing)?).map_err(|_| AuthFailure::Malformed)
    }

    fn of(headers: &'a HeaderMap, name: &HeaderName) -> Self {
        let mut values = headers.get_all(name);
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(value), None) => Self::One(value.as_bytes()),
            (Some(_), Some(_)) => Self::Repeated,
        }
    }
}

/// What a delivery sent that any enabled method may read.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliveryHeaders<'a> {
    pub webhook_id: SentHeader<'a>,
    pub webhook_timestamp: SentHeader<'a>,
    pub webhook_signature: SentHeader<'a>,
    pub idnow_signature: SentHeader<'a>,
    /// The header `WEBHOOK_TOKEN_HEADER` names.
    pub token: SentHeader<'a>,
    pub authorization: SentHeader<'a>,
}

// Statics, so that the names are checked once, at compile time, not at every delivery.
static WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
static WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
static WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
static IDNOW_SIGNATURE: HeaderName = HeaderName::from_static("x-idnow-signature");

impl<'a> DeliveryHeaders<'a> {
    pub(super) fn of(headers: &'a HeaderMap, token_header: &HeaderName) -> Self {
        Self {
            webhook_id: SentHeader::of(headers, &WEBHOOK_ID),
            webhook_timestamp: SentHeader::of(headers, &WEBHOOK_TIMESTAMP),
            webhook_signature: SentHeader::of(headers, &WEBHOOK_SIGNATURE),
            idnow_signature: SentHeader::of(headers, &IDNOW_SIGNATURE),
            token: SentHeader::of(headers, token_header),
            authorization: SentHeader::of(headers, &AUTHORIZATION),
        }
    }
}

/// Trace context headers, W3C's and the common others' (Zipkin's B3, Jaeger's and
/// OpenTracing's, Datadog's, Envoy's, AWS's, Google Cloud's, Sentry's, New Relic's, Elastic's,
/// SkyWalking's, gRPC's, Application Insights'); lowercase, as `HeaderName` holds them.
const TRACING: [&str; 15] = [
    "tracestate",
    "baggage",
    "b3",
    "uber-trace-id",
    "jaeger-debug-id",
    "x-ot-span-context",
    "x-client-trace-id",
    "x-amzn-trace-id",
    "x-cloud-trace-context",
    "sentry-trace",
    "newrelic",
    "elastic-apm-traceparent",
    "grpc-trace-bin",
    "request-id",
    "request-context",
];

/// The same, by the prefix of a family of headers.
const TRACING_PREFIXES: [&str; 7] = [
    "x-b3-",
    "x-datadog-",
    "ot-tracer-",
    "ot-baggage-",
    "uberctx-",
    "x-envoy-",
    "sw8",
];

/// Headers that proxies, load balancers and CDNs set or overwrite on the way in, whatever the
/// sender put there: ingress-nginx sets `X-Real-IP` and the `X-Forwarded-*` family, Cloudflare
/// its `CF-*`, and many add to `Via`; affinity and caching read `Cookie`. A token there would
/// be lost on the way, and every delivery refused. Lowercase, as `HeaderName` holds them.
const PROXIED: [&str; 11] = [
    "via",
    "cookie",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-original-forwarded-for",
    "x-original-uri",
    "x-original-url",
    "x-scheme",
];

/// The same, by the prefix of a family of headers.
const PROXIED_PREFIXES: [&str; 2] = ["x-forwarded-", "cf-"];

/// Whether `token_header` is a header that something else uses: another of `methods` (one
/// header cannot carry two methods' credentials); HTTP and proxies, which strip, rewrite or
/// interpret it on the way (hop-by-hop and framing headers, `Expect`, `Forwarded`,
/// `Proxy-Authorization`, and [`PROXIED`], [`PROXIED_PREFIXES`]); the service's own logs and
/// answers, which would hold the token (`X-Request-Id` is logged and echoed, `traceparent`'s
/// trace id logged); or a tracing system, which proxies and meshes pass on and record
/// ([`TRACING`], [`TRACING_PREFIXES`]).
pub(super) fn is_read_by_others(token_header: &HeaderName, methods: &[MethodName]) -> bool {
    use actix_web::http::header::{
        CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, FORWARDED, HOST,
        PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
    };

    use crate::telemetry::{REQUEST_ID, TRACEPARENT};

    let others = [
        &WEBHOOK_ID,
        &WEBHOOK_TIMESTAMP,
        &WEBHOOK_SIGNATURE,
        &IDNOW_SIGNATURE,
        &CONNECTION,
        &CONTENT_ENCODING,
        &CONTENT_LENGTH,
        &CONTENT_TYPE,
        &EXPECT,
        &FORWARDED,
        &HOST,
        &PROXY_AUTHORIZATION,
        &REQUEST_ID,
        &TRACEPARENT,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ];
    let name = token_header.as_str();
    let named_in = |names: &[&str], prefixes: &[&str]| {
        names.contains(&name) || prefixes.iter().any(|prefix| name.starts_with(prefix))
    };
    others.contains(&token_header)
        || named_in(&TRACING, &TRACING_PREFIXES)
        || named_in(&PROXIED, &PROXIED_PREFIXES)
        || ["keep-alive", "proxy-connection"].contains(&name)
        || (*token_header == AUTHORIZATION && methods.contains(&MethodName::Basic))
}
