//! Logs: JSON lines on stdout, one per request, with a request id.
//!
//! What goes into a log line is chosen here and in the `#[instrument]` fields of the handlers:
//! ids, results, status codes, error chains. Never bodies, headers' secrets or personal data.

use std::io;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage as _;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

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

struct RequestStart(Instant);

/// The root span of every request, and the one line logged when it ends.
#[derive(Debug)]
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request
            .extensions_mut()
            .insert(RequestStart(Instant::now()));
        // Fields the handlers fill in through `RootSpan`, so that the request's one log
        // line says what happened. Ids and outcomes only.
        tracing_actix_web::root_span!(
            request,
            error.id = tracing::field::Empty,
            error.code = tracing::field::Empty,
            api_client = tracing::field::Empty,
            transaction_number = tracing::field::Empty,
            attempt_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            total = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let _entered = span.enter();
        match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                let elapsed_ms = response
                    .request()
                    .extensions()
                    .get::<RequestStart>()
                    .map(|start| start.0.elapsed().as_secs_f64() * 1e3);
                if response.status().is_server_error() {
                    tracing::error!(status, elapsed_ms, "request failed");
                } else {
                    tracing::info!(status, elapsed_ms, "request completed");
                }
            }
            Err(error) => tracing::error!(error = %error, "request failed before a response"),
        }
    }
}
