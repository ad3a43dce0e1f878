//! Logs: JSON lines on stdout, one per request, with a request id.
//!
//! What goes into a log line is chosen here and in the `#[instrument]` fields of the handlers:
//! ids, results, status codes, error chains. Never bodies, headers' secrets or personal data.

use std::future::{ready, Ready};
use std::io;
use std::ops::Deref;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage as _, HttpRequest};
use tracing::field::Empty;
use tracing::{Instrument as _, Span};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use crate::startup::AppState;

/// Installs the global subscriber: JSON to stdout, filtered by `filter` (`RUST_LOG` syntax).
pub fn init(filter: &str) -> anyhow::Result<()> {
    init_with_writer(filter, io::stdout)
}

pub fn init_with_writer<W>(filter: &str, writer: W) -> anyhow::Result<()>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("RUST_LOG is not a valid log filter: {e}"))?;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("a log subscriber is already installed: {e}"))
}

/// The span of a request. Handlers record on it what they touched; its fields go on every
/// line logged while the request runs, and on the one line that ends it.
#[derive(Debug, Clone)]
pub struct RequestSpan(Span);

impl Deref for RequestSpan {
    type Target = Span;

    fn deref(&self) -> &Span {
        &self.0
    }
}

impl FromRequest for RequestSpan {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    /// The span [`observe`] opened; a disabled one outside it.
    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let span = request.extensions().get::<Self>().cloned();
        ready(Ok(span.unwrap_or_else(|| Self(Span::none()))))
    }
}

/// The pattern of the resource that served a request, as its resource declares it.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// Middleware, outermost: opens the request's span, and once the answer is known, counts and
/// times it in the metrics and logs its one line. Timing stops at the response head, before
/// the body is streamed.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // Ids and outcomes only; the handlers fill in the empty fields, and the route is known
    // once routing is done.
    let span = tracing::info_span!(
        "HTTP request",
        request_id = %Uuid::new_v4(),
        http.method = %request.method(),
        http.route = Empty,
        api_client = Empty,
        transaction_number = Empty,
        attempt_id = Empty,
        outcome = Empty,
        total = Empty,
        error.id = Empty,
        error.code = Empty,
    );
    request.extensions_mut().insert(RequestSpan(span.clone()));
    let state = request.app_data::<web::Data<AppState>>().cloned();

    let outcome = next.call(request).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let _entered = span.enter();
    match &outcome {
        Ok(response) => {
            // Requests that match no route share one label, so a scan of random paths adds
            // no series.
            let route = response
                .request()
                .app_data::<RoutePattern>()
                .map_or("unmatched", |pattern| pattern.0);
            span.record("http.route", route);
            let status = response.status();
            if let Some(state) = state {
                state
                    .metrics
                    .observe(route, status.as_str(), elapsed.as_secs_f64());
            }
            let (status, elapsed_ms) = (status.as_u16(), elapsed.as_secs_f64() * 1e3);
            if response.status().is_server_error() {
                tracing::error!(status, elapsed_ms, "request failed");
            } else {
                tracing::info!(status, elapsed_ms, "request completed");
            }
        }
        Err(error) => tracing::error!(error = %error, "request failed before a response"),
    }
    outcome
}
