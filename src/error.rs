//! The one error type of the API and its JSON rendering.
//!
//! Every error answer, on every route, is
//! `{"errors":[{"id","status","code","title","detail"}]}`. Client errors explain themselves;
//! server errors say nothing of their cause, which is logged once at the request boundary
//! under the same `id`.

use std::fmt;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use uuid::Uuid;

use crate::persistence::writer::WriteError;
use crate::webhook_signature::Failure;

/// Seconds a client is asked to wait when the database cannot take a request.
pub const RETRY_AFTER_SECONDS: u32 = 5;

#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("A valid bearer token is required.")]
    Unauthenticated,
    #[error("The webhook signature is not accepted: {0}.")]
    InvalidSignature(Failure),
    #[error("The API client lacks the required scope.")]
    Forbidden,
    #[error("{0}")]
    NotFound(&'static str),
    /// Carries the value of the `Allow` header.
    #[error("This route only takes {0}.")]
    MethodNotAllowed(&'static str),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Conflict(&'static str),
    #[error("The body is larger than {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("The declared content type is not JSON.")]
    UnsupportedMediaType,
    #[error("Only the identity content coding is accepted.")]
    UnsupportedContentEncoding,
    /// The `webhook-id` of an authentic delivery is stored already, for a different event.
    #[error("The webhook-id was already used for a different event.")]
    WebhookIdReused,
    /// The request's header fields, names and values together, exceed the limit.
    #[error("The request's header fields are larger than {0} bytes.")]
    HeadersTooLarge(usize),
    /// The client took longer than the body read timeout to send its body.
    #[error("The request body did not arrive within {0} ms.")]
    BodyTimeout(u128),
    /// The client took none of its answers within the send timeout; its connection is closed,
    /// so this answer is for the log only.
    #[error("The client did not read its answers in time.")]
    SlowReader,
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// The service cannot take the request now (database away, pool exhausted, request
    /// timeout, shutting down); the client should retry.
    #[error("The service is unavailable.")]
    Unavailable(#[source] anyhow::Error),
    /// The process holds as many request body bytes as it allows itself (the body budget):
    /// load shed before reading, not a fault.
    #[error("The service holds as many request bodies as it can.")]
    Overloaded,
    #[error("Unexpected error.")]
    Unexpected(#[from] anyhow::Error),
}

impl fmt::Debug for ApiError {
    /// The whole `source()` chain on one line: this is what the request log records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        let mut separator = " Caused by: ";
        while let Some(cause) = source {
            write!(f, "{separator}{cause}")?;
            separator = ": ";
            source = cause.source();
        }
        Ok(())
    }
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl ToString) -> Self {
        Self::BadRequest {
            code,
            detail: detail.to_string(),
        }
    }

    pub fn unprocessable(code: &'static str, detail: impl ToString) -> Self {
        Self::Unprocessable {
            code,
            detail: detail.to_string(),
        }
    }

    /// Whether this answer reports a fault of the service (a 5xx to investigate), rather than
    /// the client's mistake or load shed on purpose.
    pub fn is_fault(&self) -> bool {
        self.status_code().is_server_error() && !matches!(self, Self::Overloaded)
    }

    /// The machine-readable `code` of the error body.
    pub fn code(&self) -> &'static str {
        self.code_and_title().0
    }

    /// Machine-readable code and human title of this error.
    fn code_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthenticated => ("unauthenticated", "Unauthenticated"),
            Self::InvalidSignature(_) => ("invalid_signature", "Invalid Signature"),
            Self::Forbidden => ("unauthorized_action", "Unauthorized Action"),
            Self::NotFound(_) => ("not_found", "Not Found"),
            Self::MethodNotAllowed(_) => ("method_not_allowed", "Method Not Allowed"),
            Self::BadRequest { code, .. } => (code, "Bad Request"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::PayloadTooLarge { .. } => ("payload_too_large", "Payload Too Large"),
            Self::UnsupportedMediaType => ("unsupported_media_type", "Unsupported Media Type"),
            Self::UnsupportedContentEncoding => {
                ("unsupported_content_encoding", "Unsupported Media Type")
            }
            Self::WebhookIdReused => ("webhook_id_reused", "Conflict"),
            Self::BodyTimeout(_) | Self::SlowReader => ("request_timeout", "Request Timeout"),
            Self::HeadersTooLarge(_) => (
                "request_header_fields_too_large",
                "Request Header Fields Too Large",
            ),
            Self::Unprocessable { code, .. } => (code, "Unprocessable Entity"),
            Self::Unavailable(_) | Self::Overloaded => {
                ("service_unavailable", "Service Unavailable")
            }
            Self::Unexpected(_) => ("generic_error", "Generic Error"),
        }
    }

    /// What the client reads. Never the cause of a server error.
    fn detail(&self) -> String {
        match self {
            Self::Unauthenticated => "A valid bearer token is required.".to_owned(),
            Self::InvalidSignature(_) => {
                "The webhook signature is missing, invalid or expired.".to_owned()
            }
            Self::Forbidden => "Unauthorized action is not allowed.".to_owned(),
            Self::Unavailable(_) | Self::Overloaded => {
                "The service cannot take the request right now; retry later.".to_owned()
            }
            Self::Unexpected(_) => "There was an error.".to_owned(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::WebhookIdReused => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType | Self::UnsupportedContentEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::BodyTimeout(_) | Self::SlowReader => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (code, title) = self.code_and_title();
        let mut response = error_body(status, code, title, &self.detail());
        let headers = response.headers_mut();
        match self {
            Self::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unavailable(_) | Self::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            Self::UnsupportedContentEncoding => {
                // RFC 7694: what the server does accept.
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            }
            _ => {}
        }
        response
    }
}

#[derive(Serialize)]
struct ErrorDocument<'a> {
    errors: [ErrorObject<'a>; 1],
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    id: Uuid,
    status: &'a str,
    code: &'a str,
    title: &'a str,
    detail: &'a str,
}

/// The id and code of the error body a response carries, kept on the response for the
/// request's log line (see `telemetry::observe`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorAnswer {
    pub id: Uuid,
    pub code: &'static str,
}

/// The contract's error body.
fn error_body(status: StatusCode, code: &'static str, title: &str, detail: &str) -> HttpResponse {
    let id = Uuid::new_v4();
    let mut response = HttpResponse::build(status).json(ErrorDocument {
        errors: [ErrorObject {
            id,
            status: status.as_str(),
            code,
            title,
            detail,
        }],
    });
    response.extensions_mut().insert(ErrorAnswer { id, code });
    response
}

/// Safety net for error answers that did not come from an [`ApiError`] (actix's own, or a
/// future route that forgets): whatever their body, it becomes the contract's.
pub fn render_foreign_error<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_ours = response
        .response()
        .error()
        .is_some_and(|error| error.as_error::<ApiError>().is_some());
    if is_ours {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (code, title, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "Not Found", "No such route."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "Method Not Allowed",
            "The route does not take this method.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "Payload Too Large",
            "The body is too large.",
        ),
        status if status.is_server_error() => {
            ("generic_error", "Generic Error", "There was an error.")
        }
        _ => ("bad_request", "Bad Request", "The request is malformed."),
    };
    let rendered = error_body(status, code, title, detail);
    let (request, original) = response.into_parts();
    let mut rendered = rendered.map_into_boxed_body();
    // Keep headers such as `Allow` that the original answer carried.
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let response: ServiceResponse<BoxBody> = ServiceResponse::new(request, rendered);
    Ok(ErrorHandlerResponse::Response(
        response.map_into_right_body(),
    ))
}

/// Maps database failures: those the client should retry (the database is down, restarting,
/// overloaded, or the pool is exhausted) to 503, all others to 500.
pub trait DbResultExt<T> {
    fn db_context(self, context: &'static str) -> Result<T, ApiError>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn db_context(self, context: &'static str) -> Result<T, ApiError> {
        self.map_err(|error| database_error(is_transient(&error), error, context))
    }
}

impl<T> DbResultExt<T> for Result<T, WriteError> {
    fn db_context(self, context: &'static str) -> Result<T, ApiError> {
        self.map_err(|error| database_error(error.is_transient(), error, context))
    }
}

fn database_error(
    transient: bool,
    error: impl std::error::Error + Send + Sync + 'static,
    context: &'static str,
) -> ApiError {
    let error = anyhow::Error::new(error).context(context);
    if transient {
        ApiError::Unavailable(error)
    } else {
        ApiError::Unexpected(error)
    }
}

/// Whether the database refused a value of the row itself, so that no retry could store it:
/// a data exception (SQLSTATE class 22, e.g. a NUL character in `text`), a NOT NULL or CHECK
/// violation, or a value too large for an index row (54000). By SQLSTATE, as below.
pub fn is_unstorable(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| {
            code.starts_with("22") || matches!(code.as_ref(), "23502" | "23514" | "54000")
        })
}

/// By SQLSTATE class, never by message text.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources; 57P: shutdown or
            // start-up; 57014: statement timeout; 40001/40P01: serialization failure and
            // deadlock; 25006: read-only transaction (a failover in progress); 42P01:
            // undefined table, i.e. migrations not yet applied during a roll-out.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(
                    code.as_ref(),
                    "57014" | "40001" | "40P01" | "25006" | "42P01"
                )
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.error_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body()).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[actix_web::test]
    async fn server_errors_reveal_nothing() {
        let error = ApiError::Unexpected(anyhow::anyhow!("password authentication failed"));
        assert_eq!(
            format!("{error:?}"),
            "Unexpected error. Caused by: password authentication failed"
        );
        let (status, body) = body_of(error).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let object = &body["errors"][0];
        assert_eq!(object["status"], "500");
        assert_eq!(object["code"], "generic_error");
        assert_eq!(object["title"], "Generic Error");
        assert_eq!(object["detail"], "There was an error.");
        assert!(Uuid::parse_str(object["id"].as_str().expect("id")).is_ok());
    }

    #[actix_web::test]
    async fn forbidden_has_the_upstream_shape() {
        let (status, body) = body_of(ApiError::Forbidden).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["errors"][0]["code"], "unauthorized_action");
        assert_eq!(body["errors"][0]["title"], "Unauthorized Action");
    }

    #[test]
    fn pool_exhaustion_and_outages_are_retryable() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        let unavailable = Err::<(), _>(sqlx::Error::PoolTimedOut).db_context("x");
        let response = unavailable.expect_err("error").error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECONDS))
        );
    }
}
