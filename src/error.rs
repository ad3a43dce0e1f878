//! The one error type of the API and its JSON rendering.
//!
//! Every error answer, on every route, is
//! `{"errors":[{"id","status","code","title","detail"}]}`. Client errors explain themselves;
//! server errors say nothing of their cause, which is logged once at the request boundary
//! under the same `id`.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api_auth::Denied;
use crate::persistence::signings::ConflictReason;
use crate::persistence::Transient;
use crate::webhook_auth::BASIC_CHALLENGE;

/// Seconds a client is asked to wait when the database cannot take a request.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Every error the API answers. The `#[error]` text of a client error is the `detail` its
/// client reads; a server error's is a fixed text, and its cause (`source()`) is only logged.
#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("A valid bearer token is required.")]
    Unauthenticated,
    /// No enabled method accepted the webhook. Why is for the metrics and the log, never for
    /// the sender. `basic_challenge` when `basic` is enabled: the answer then says so in
    /// `WWW-Authenticate`. Its code, `invalid_signature`, is older than the methods without
    /// signatures; senders' alerting matches on it.
    #[error("The webhook's signature or credentials are missing, invalid or expired.")]
    WebhookUnauthenticated { basic_challenge: bool },
    /// A delivery from outside `WEBHOOK_ALLOWED_SOURCES`.
    #[error("Deliveries are not accepted from this address.")]
    ForbiddenSource,
    #[error("Unauthorized action is not allowed.")]
    Forbidden,
    #[error("{0}")]
    NotFound(&'static str),
    /// Carries the value of the `Allow` header.
    #[error("This route only takes {0}.")]
    MethodNotAllowed(&'static str),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Conflict(ConflictReason),
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
    /// The body's framing is broken (a malformed chunk): nothing after it on the connection
    /// can be read, so the answer ends the connection, and says so.
    #[error("The body could not be read.")]
    UnreadableBody,
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// The service cannot take the request now (database away, pool exhausted, request
    /// timeout, shutting down); the client should retry.
    #[error("The service cannot take the request right now; retry later.")]
    Unavailable(#[source] anyhow::Error),
    /// The process is stopping: readiness from SIGTERM on, at every roll-out, not a fault.
    #[error("The service cannot take the request right now; retry later.")]
    ShuttingDown,
    /// The process holds as many request body bytes, or listing answer bytes, as it allows
    /// itself (the body and page budgets): load shed, not a fault.
    #[error("The service cannot take the request right now; retry later.")]
    Overloaded,
    #[error("There was an error.")]
    Unexpected(#[from] anyhow::Error),
    /// An error answer the HTTP layer made itself, reshaped into the contract's (see
    /// `edge::contract_shape`); `cause` is what it said.
    #[error("{}", foreign_detail(*status))]
    Foreign {
        status: StatusCode,
        #[source]
        cause: anyhow::Error,
    },
}

/// The detail of a [`ApiError::Foreign`] answer.
fn foreign_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "No such route.",
        StatusCode::METHOD_NOT_ALLOWED => "The route does not take this method.",
        StatusCode::PAYLOAD_TOO_LARGE => "The body is too large.",
        status if status.is_server_error() => "There was an error.",
        _ => "The request is malformed.",
    }
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
    /// the client's mistake, load shed on purpose or a stop.
    pub fn is_fault(&self) -> bool {
        self.status_code().is_server_error()
            && !matches!(self, Self::Overloaded | Self::ShuttingDown)
    }

    /// The machine-readable `code` of the error body.
    pub fn code(&self) -> &'static str {
        self.kind().code
    }

    /// The one table of statuses, codes and titles.
    fn kind(&self) -> Kind {
        use StatusCode as S;
        let (status, code, title) = match self {
            Self::Unauthenticated => (S::UNAUTHORIZED, "unauthenticated", "Unauthenticated"),
            Self::WebhookUnauthenticated { .. } => {
                (S::UNAUTHORIZED, "invalid_signature", "Invalid Signature")
            }
            Self::ForbiddenSource => (S::FORBIDDEN, "forbidden_source", "Forbidden Source"),
            Self::Forbidden => (S::FORBIDDEN, "unauthorized_action", "Unauthorized Action"),
            Self::NotFound(_) => (S::NOT_FOUND, "not_found", "Not Found"),
            Self::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed",
            ),
            Self::BadRequest { code, .. } => (S::BAD_REQUEST, *code, "Bad Request"),
            Self::UnreadableBody => (S::BAD_REQUEST, "unreadable_body", "Bad Request"),
            Self::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
            Self::WebhookIdReused => (S::CONFLICT, "webhook_id_reused", "Conflict"),
            Self::PayloadTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload Too Large",
            ),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported Media Type",
            ),
            Self::UnsupportedContentEncoding => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_encoding",
                "Unsupported Media Type",
            ),
            Self::BodyTimeout(_) | Self::SlowReader => {
                (S::REQUEST_TIMEOUT, "request_timeout", "Request Timeout")
            }
            Self::HeadersTooLarge(_) => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
                "Request Header Fields Too Large",
            ),
            Self::Unprocessable { code, .. } => {
                (S::UNPROCESSABLE_ENTITY, *code, "Unprocessable Entity")
            }
            Self::Unavailable(_) | Self::ShuttingDown | Self::Overloaded => (
                S::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service Unavailable",
            ),
            Self::Unexpected(_) => (S::INTERNAL_SERVER_ERROR, "generic_error", "Generic Error"),
            Self::Foreign { status, .. } => match *status {
                S::NOT_FOUND => (S::NOT_FOUND, "not_found", "Not Found"),
                S::METHOD_NOT_ALLOWED => (
                    S::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "Method Not Allowed",
                ),
                S::PAYLOAD_TOO_LARGE => (
                    S::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Payload Too Large",
                ),
                status if status.is_server_error() => (status, "generic_error", "Generic Error"),
                status => (status, "bad_request", "Bad Request"),
            },
        };
        Kind {
            status,
            code,
            title,
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated => Self::Unauthenticated,
            Denied::Forbidden => Self::Forbidden,
        }
    }
}

/// A row of [`ApiError::kind`].
struct Kind {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().status
    }

    fn error_response(&self) -> HttpResponse {
        let Kind {
            status,
            code,
            title,
        } = self.kind();
        let mut response = error_body(status, code, title, &self.to_string());
        let headers = response.headers_mut();
        match self {
            Self::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::WebhookUnauthenticated {
                basic_challenge: true,
            } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(BASIC_CHALLENGE),
                );
            }
            Self::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unavailable(_) | Self::ShuttingDown | Self::Overloaded => {
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
        if matches!(self, Self::UnreadableBody) {
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        response
    }
}

/// How the API description names [`ErrorDocument`]: its borrows do not matter there.
pub type ErrorBody = ErrorDocument<'static>;

/// The body of every error answer, on every route.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"errors": [{"id": "a95f2aaf-4e0c-4d49-8021-8a16a884ed86", "status": "403", "code": "unauthorized_action", "title": "Unauthorized Action", "detail": "Unauthorized action is not allowed."}]}))]
pub struct ErrorDocument<'a> {
    /// Always exactly one.
    #[schema(value_type = Vec<ErrorObject<'static>>, min_items = 1, max_items = 1)]
    errors: [ErrorObject<'a>; 1],
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject<'a> {
    /// This answer's id, also on the request's log line.
    id: Uuid,
    /// The HTTP status, as a string.
    #[schema(pattern = "^[45][0-9]{2}$", example = "403")]
    status: &'a str,
    /// Machine-readable, snake_case: what clients match on.
    #[schema(pattern = "^[a-z][a-z0-9_]*$", example = "unauthorized_action")]
    code: &'a str,
    #[schema(example = "Unauthorized Action")]
    title: &'a str,
    /// For people; never reveals internals.
    detail: &'a str,
}

/// The id and code of the error body a response carries, kept on the response for the
/// request's log line (see `telemetry::observe`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorAnswer {
    pub id: Uuid,
    pub code: &'static str,
}

impl<'a> ErrorDocument<'a> {
    fn new(
        id: Uuid,
        status: &'a StatusCode,
        code: &'a str,
        title: &'a str,
        detail: &'a str,
    ) -> Self {
        Self {
            errors: [ErrorObject {
                id,
                status: status.as_str(),
                code,
                title,
                detail,
            }],
        }
    }
}

/// The contract's error body.
fn error_body(status: StatusCode, code: &'static str, title: &str, detail: &str) -> HttpResponse {
    let id = Uuid::new_v4();
    let mut response =
        HttpResponse::build(status).json(ErrorDocument::new(id, &status, code, title, detail));
    response.extensions_mut().insert(ErrorAnswer { id, code });
    response
}

/// The contract's error body, serialized, for an answer given where no `HttpResponse` is
/// made: actix-http's own answers (`edge::refusals::own_answer_body`).
pub fn error_document(status: StatusCode, code: &str, title: &str, detail: &str) -> Vec<u8> {
    let document = ErrorDocument::new(Uuid::new_v4(), &status, code, title, detail);
    // Strings and a UUID into a `Vec`: serde_json has no error to give for these.
    serde_json::to_vec(&document).expect("an error document serializes")
}

/// Maps database failures: those the client should retry (the database is down, restarting,
/// overloaded, or the pool is exhausted) to 503, all others to 500.
pub trait DbResultExt<T> {
    fn db_context(self, context: &'static str) -> Result<T, ApiError>;
}

impl<T, E: Transient> DbResultExt<T> for Result<T, E> {
    fn db_context(self, context: &'static str) -> Result<T, ApiError> {
        self.map_err(|error| ApiError::database(error, context))
    }
}

impl ApiError {
    /// A database failure, while doing `context`: 503 when a retry may succeed, else 500.
    pub fn database(error: impl Transient, context: &'static str) -> Self {
        let transient = error.is_transient();
        let error = anyhow::Error::new(error).context(context);
        if transient {
            Self::Unavailable(error)
        } else {
            Self::Unexpected(error)
        }
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
            "There was an error. Caused by: password authentication failed"
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
        assert_eq!(
            body["errors"][0]["detail"],
            "Unauthorized action is not allowed."
        );
    }

    #[test]
    fn pool_exhaustion_and_outages_are_retryable() {
        let unavailable = Err::<(), _>(sqlx::Error::PoolTimedOut).db_context("x");
        let response = unavailable.expect_err("error").error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECONDS))
        );
    }
}
