//! Logs: JSON lines on stdout, one per request, with a request id.
//!
//! The request id is the client's `X-Request-Id` when it is a short visible-ASCII token (a
//! gateway's or a caller's id, so that one id follows a request across services), else a
//! fresh UUID; it goes back in the answer's `X-Request-Id`. A W3C `traceparent` contributes
//! its trace id. Both are on the request's line, at the top level, and on every line logged
//! while the request runs (in its span).
//!
//! What goes into a log line is chosen here and in what handlers tell through [`RequestLog`]:
//! ids, results, status codes, error chains. Never bodies, headers' secrets or personal data.

use std::cell::RefCell;
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use tracing::field::{debug, display};
use tracing::Level;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use crate::domain::AttemptId;
use crate::edge::refusals::ProtocolRefusals;
use crate::error::{ApiError, ErrorAnswer};
use crate::metrics::Metrics;
use crate::webhook_auth::{ForbiddenSource, MethodName, Refused};

mod json_lines;
mod stdout;

use json_lines::{JsonLines, RequestSpan};
pub use stdout::batch_on_this_thread as batch_log_lines_on_this_thread;

/// Installs the global subscriber: JSON to stdout, filtered by `filter` (`RUST_LOG` syntax);
/// on the HTTP workers, written in batches ([`batch_log_lines_on_this_thread`]).
pub fn init(filter: &str) -> anyhow::Result<()> {
    init_with_writer(filter, stdout::BatchedStdout)
}

pub fn init_with_writer<W>(filter: &str, writer: W) -> anyhow::Result<()>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("RUST_LOG is not a valid log filter: {e}"))?;
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
        .with(ProtocolRefusals)
        .try_init()
        .map_err(|e| anyhow::anyhow!("a log subscriber is already installed: {e}"))
}

/// What a handler tells of its request for the request's log line: the ids it touched and
/// what came of it. An extractor; [`observe`] writes it out.
///
/// Written on the request's last line only, not on every line logged during the request as
/// the ids are: these are known as the handler goes, and are what came of the request.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Rc<RefCell<Reported>>);

/// What the handler reported, for the request's log line.
#[derive(Debug, Default)]
struct Reported {
    api_client: Option<String>,
    /// The first 16 hex digits of the transaction number's SHA-256.
    identification: Option<String>,
    attempt_id: Option<AttemptId>,
    outcome: Option<&'static str>,
    total: Option<u64>,
    auth_method: Option<&'static str>,
    auth_failure: Option<&'static str>,
    client_address: Option<IpAddr>,
    client_peer: Option<IpAddr>,
}

impl RequestLog {
    /// The log of `request`, which [`observe`] opened; outside it, one that nobody reads.
    pub fn of(request: &HttpRequest) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_default()
    }

    /// The authenticated API client's name.
    pub fn api_client(&self, name: &str) {
        self.0.borrow_mut().api_client = Some(name.to_owned());
    }

    /// The identification the request touched, by its transaction number's SHA-256
    /// (`TransactionNumber::digest`), logged as the digest's first 16 hex digits
    /// (`transaction_number_sha256`), never as the number: the number is the payload's, it
    /// points to a person at IDnow, and after an erasure the service keeps only its digest
    /// (`erased_identifications`), which the logs must not undo. An operator finds an
    /// identification's lines by the same digest: `printf %s "$number" | sha256sum | cut -c1-16`.
    pub fn identification(&self, digest: &[u8; 32]) {
        self.0.borrow_mut().identification = Some(hex::encode(&digest[..8]));
    }

    pub fn attempt_id(&self, id: AttemptId) {
        self.0.borrow_mut().attempt_id = Some(id);
    }

    pub fn outcome(&self, outcome: &'static str) {
        self.0.borrow_mut().outcome = Some(outcome);
    }

    /// The method that accepted a webhook.
    pub fn admitted_by(&self, method: MethodName) {
        self.0.borrow_mut().auth_method = Some(method.as_str());
    }

    /// Why no method accepted a webhook: the one that refused it (none when it sent no
    /// enabled method's credentials) and its reason. Never what it sent.
    pub fn refused(&self, refused: Refused) {
        let mut reported = self.0.borrow_mut();
        reported.auth_method = refused.method.map(MethodName::as_str);
        reported.auth_failure = Some(refused.failure.as_str());
    }

    /// A sender the source gate refused: why, the client address when it could be told, and
    /// the TCP peer's (a trusted proxy's, when it forwarded an unparsable chain).
    pub fn refused_source(&self, refused: ForbiddenSource, peer: Option<IpAddr>) {
        let mut reported = self.0.borrow_mut();
        reported.auth_failure = Some(refused.reason());
        reported.client_address = refused.client();
        reported.client_peer = peer;
    }

    /// How many items the whole listing has.
    pub fn total(&self, total: u64) {
        self.0.borrow_mut().total = Some(total);
    }
}

impl FromRequest for RequestLog {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(request)))
    }
}

/// Taken from the caller, logged and echoed: no header to carry a secret in.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Its trace id is logged: no header to carry a secret in.
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The longest client-given request id taken: a UUID is 36 characters, a trace id 32.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id: the client's `X-Request-Id` when it is 1 to 128 visible ASCII characters
/// (sent once), else a new UUID. Anything else a client sends is replaced, never logged.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(&REQUEST_ID);
    if let (Some(id), None) = (sent.next(), sent.next()) {
        let bytes = id.as_bytes();
        if (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
        {
            return id.clone();
        }
    }
    let mut buffer = Uuid::encode_buffer();
    let generated = Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(generated).unwrap_or_else(|_| unreachable!("a UUID is a header value"))
}

/// The trace id of a valid W3C `traceparent` (`{version}-{trace id}-{parent id}-{flags}`, in
/// lowercase hex; an all-zero id or version `ff` is invalid), sent once.
fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let mut sent = headers.get_all(&TRACEPARENT);
    let (Some(value), None) = (sent.next(), sent.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let lower_hex = |field: &str, len: usize| {
        field.len() == len
            && field
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let mut fields = value.split('-');
    let (version, trace, parent, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    // Version 00 has exactly four fields; later versions may append more.
    let valid = lower_hex(version, 2)
        && version != "ff"
        && (version != "00" || fields.next().is_none())
        && lower_hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && lower_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2);
    valid.then_some(trace)
}

/// The pattern of the resource that served a request, as its resource declares it.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// Middleware, outermost: opens the request's span, and once the answer is known, counts and
/// times it in `metrics` and logs its one line. Timing stops at the response head, before
/// the body is streamed.
pub async fn observe(
    metrics: Rc<Metrics>,
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // On every line logged while the request runs; what came of it goes on its last line.
    let span = Rc::new(RequestSpan {
        request_id: request_id(request.headers()),
        trace_id: trace_id(request.headers()).map(Box::from),
        method: json_lines::logged_method(request.method()),
    });
    let log = RequestLog::default();
    request.extensions_mut().insert(log.clone());

    let mut outcome = span.clone().scope(next.call(request)).await;
    if let Ok(response) = &mut outcome {
        response
            .headers_mut()
            .insert(REQUEST_ID.clone(), span.request_id.clone());
    }
    let elapsed = started.elapsed();
    span.clone()
        .sync_scope(|| log_request(&metrics, &span, &log, &outcome, elapsed));
    outcome
}

/// The request's one line, and its count and time in `metrics`.
fn log_request(
    metrics: &Metrics,
    span: &RequestSpan,
    log: &RequestLog,
    outcome: &Result<ServiceResponse<impl MessageBody>, actix_web::Error>,
    elapsed: Duration,
) {
    let response = match outcome {
        Ok(response) => response,
        // A client's doing (the only one today: a client that read no answers within the
        // send timeout, edge::connection::pace) is no error of the service, and anyone can
        // cause it at will: not worth an ERROR line each.
        Err(error) if !error.as_response_error().status_code().is_server_error() => {
            tracing::debug!(error = %error, "request ended before a response");
            return;
        }
        Err(error) => {
            tracing::error!(error = %error, "request failed before a response");
            return;
        }
    };
    // Requests that match no route share one label, so a scan of random paths adds no series.
    let route = response
        .request()
        .app_data::<RoutePattern>()
        .map_or("unmatched", |pattern| pattern.0);
    let status = response.status();
    metrics.observe(route, status.as_str(), elapsed.as_secs_f64());
    // Visible ASCII, checked or generated: always a str.
    let id = span.request_id.to_str().unwrap_or_default();
    let reported = log.0.borrow();
    let error = response
        .response()
        .extensions()
        .get::<ErrorAnswer>()
        .copied();
    let (error_id, error_code) = (error.map(|e| display(e.id)), error.map(|e| e.code));
    let attempt_id = reported.attempt_id.map(display);
    let (client_address, client_peer) = (
        reported.client_address.map(display),
        reported.client_peer.map(display),
    );
    // One line, at the level the status calls for: its fields, then what the caller adds.
    macro_rules! request_line {
        ($level:expr, $($rest:tt)*) => {
            tracing::event!(
                $level,
                request_id = %id,
                trace_id = span.trace_id.as_deref(),
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                http.route = route,
                api_client = reported.api_client.as_deref(),
                transaction_number_sha256 = reported.identification.as_deref(),
                attempt_id,
                outcome = reported.outcome,
                total = reported.total,
                auth.method = reported.auth_method,
                auth.failure = reported.auth_failure,
                client.address = client_address,
                client.peer = client_peer,
                error.id = error_id,
                error.code = error_code,
                $($rest)*
            )
        };
    }
    // ERROR is for faults of ours; load shed on purpose is not one.
    let fault = response
        .response()
        .error()
        .and_then(|error| error.as_error::<ApiError>())
        .map_or(status.is_server_error(), ApiError::is_fault);
    if fault {
        // The cause, never shown to the client, is for the operator: the error's whole
        // `source()` chain, under the id the client was given.
        let cause = response.response().error().map(debug);
        request_line!(Level::ERROR, error.cause = cause, "request failed");
    } else {
        request_line!(Level::INFO, "request completed");
    }
}
