//! What actix-http refuses itself, before any route sees a request: answered in the
//! contract's error body like every other error, counted, and logged at DEBUG rather than
//! ERROR, so that no client can fill the error log.

use std::sync::LazyLock;

use actix_web::http::header::HeaderValue;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use prometheus::{IntCounterVec, Opts};
use tracing::Level;
use tracing_subscriber::layer::{Context, Layer};

use crate::error::error_document;

/// Exchanges that actix-http refused or lost before any route saw a request, by kind:
/// malformed requests (a bad request line or header, `Content-Length` beside
/// `Transfer-Encoding`, obs-fold, a URI over 64 KiB) and connections broken by the client.
/// Process-wide, as the log subscriber that counts them is; registered by every
/// application's `Metrics`. Counted while `RUST_LOG` lets actix-http's errors through (any
/// filter of `info` or `error` does).
pub static PROTOCOL_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "http_protocol_refusals_total",
            "Malformed or broken HTTP exchanges ended by the HTTP layer before routing, by kind.",
        ),
        &["kind"],
    )
    .expect("a valid metric definition");
    for (_, kind) in CLIENT_DISPATCH_ERRORS {
        counter.with_label_values(&[kind]);
    }
    counter
});

/// The body of an answer actix-http's HTTP/1 dispatcher gives by itself, before any route
/// sees the request: the contract's error document, as on every other error answer.
/// Unpatched, these answers have no body; `vendor/actix-http` calls this for each one once
/// [`actix_http::h1::set_own_answer_body`] has set it (see vendor/README.md).
pub fn own_answer_body(status: StatusCode) -> (HeaderValue, Bytes) {
    let (code, title, detail) = match status {
        StatusCode::BAD_REQUEST => (
            "malformed_request",
            "Bad Request",
            "The request is not well-formed HTTP/1: its request line, a header field or its \
             framing could not be read.",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "request_header_fields_too_large",
            "Request Header Fields Too Large",
            "The request's head has more than 96 header fields or 128 KiB or more.",
        ),
        StatusCode::URI_TOO_LONG => (
            "uri_too_long",
            "URI Too Long",
            "The request's target is longer than 65,534 bytes.",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "Request Timeout",
            "The request's head did not arrive in time.",
        ),
        status if status.is_server_error() => {
            ("generic_error", "Generic Error", "There was an error.")
        }
        _ => ("bad_request", "Bad Request", "The request was refused."),
    };
    (
        HeaderValue::from_static("application/json"),
        Bytes::from(error_document(status, code, title, detail)),
    )
}

/// actix-http's reports (`stream error: <DispatchError>`) that tell of the client, not of
/// us, by the start of their text, and the kind each is counted as. Read off actix-http
/// 3.20's dispatcher, where only parse, I/O and internal errors reach that report (a head
/// timeout is answered 408 without one); the internal ones stay at ERROR.
const CLIENT_DISPATCH_ERRORS: [(&str, &str); 2] = [
    ("stream error: request parse error", "malformed_request"),
    ("stream error: I/O error", "connection_error"),
];

/// actix-http reports every request it refuses itself at ERROR, one line each: anyone could
/// fill the error log with malformed requests. This layer takes those reports out of the
/// log, counts them in [`PROTOCOL_REFUSALS`] and logs them at DEBUG instead; ERROR stays for
/// faults of ours, and actix-http's other reports pass as they are.
#[derive(Debug)]
pub struct ProtocolRefusals;

impl<S: tracing::Subscriber> Layer<S> for ProtocolRefusals {
    fn event_enabled(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() != Level::ERROR || metadata.target() != "actix_http::h1::dispatcher" {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let Some((_, kind)) = CLIENT_DISPATCH_ERRORS
            .iter()
            .find(|(start, _)| message.0.starts_with(start))
        else {
            return true;
        };
        PROTOCOL_REFUSALS.with_label_values(&[kind]).inc();
        // Dispatched from within this one: with the global subscriber, it is logged (when
        // DEBUG is on), and it is not one of the reports above.
        tracing::debug!(target: "idnow_attempts::http", kind, "HTTP exchange refused before routing");
        false
    }
}

/// The `message` of an event, as text.
#[derive(Default)]
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
