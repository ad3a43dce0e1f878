//! `GET /v1/persons/{person_id}/signings/{signing_id}/idnow_attempts`: a signing's history.

use std::fmt::Write as _;

use actix_web::http::header::{HeaderName, HeaderValue, LINK};
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::ToSchema;

use super::extract::{Authorized, SigningPath};
use super::openapi::ResourceId;
use crate::api_auth::scopes;
use crate::at_rest::Binding;
use crate::domain::AttemptId;
use crate::domain::{PageRequest, PersonId, SigningId};
use crate::error::{ApiError, DbResultExt as _, ErrorBody};
use crate::persistence::attempts::{self, StoredAttempt};
use crate::state::AppState;
use crate::telemetry::RequestLog;

// Statics, so that the names are checked once, at compile time, not at every listing.
static TOTAL: HeaderName = HeaderName::from_static("total");
static PER_PAGE: HeaderName = HeaderName::from_static("per-page");

/// A signing's attempt history, oldest attempt first (by
/// `identificationprocess.identificationtime`, then by arrival).
#[utoipa::path(
    get,
    path = "/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts",
    tag = "attempts",
    operation_id = "list_idnow_attempts",
    params(
        ("person_id" = ResourceId, Path, description = "The person's id."),
        ("signing_id" = ResourceId, Path, description = "The signing's id."),
        ("page[number]" = Option<i64>, Query, minimum = 1, maximum = 4294967295.0, description = "The page, from 1. Default 1."),
        ("page[size]" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Attempts per page, 1 to 1000. Default 10."),
    ),
    responses(
        (status = 200, description = "The page; `[]` past the end.", body = [Attempt],
            headers(
                ("Link" = String, description = "RFC 8288 links to the `first`, `prev`, `next` and `last` pages, where they exist."),
                ("Total" = u64, description = "Attempts in the whole history."),
                ("Per-Page" = u32, description = "The page size used."),
            )),
        (status = 400, description = "`invalid_path_parameter` or `invalid_pagination`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no valid bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "`unauthorized_action`: the token lacks scope `idnow_attempts:read`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such signing is registered for this person.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the service cannot answer now (the database is away or slow, the request took longer than the request timeout, or the process is shutting down); retry.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearer" = ["idnow_attempts:read"])),
)]
pub async fn list(
    _client: Authorized<scopes::IdnowAttemptsRead>,
    SigningPath {
        person_id,
        signing_id,
    }: SigningPath,
    request: HttpRequest,
    state: web::Data<AppState>,
    log: RequestLog,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::from_query(request.query_string())
        .map_err(|e| ApiError::bad_request("invalid_pagination", e))?;

    let history = state
        .database
        .run(async |conn| attempts::history(conn, &person_id, &signing_id, page).await)
        .await
        .db_context("reading the attempt history")?;
    let history = history.ok_or(ApiError::NotFound(
        "No such signing is registered for this person.",
    ))?;
    log.total(history.total);

    let keys = &state.payload_keys;
    let transaction_number = &history.transaction_number;
    let attempts = history
        .attempts
        .into_iter()
        .map(
            |StoredAttempt {
                 id,
                 result,
                 reason,
                 payload,
             }| {
                let binding = Binding::Attempt {
                    id: id.as_uuid(),
                    transaction_number,
                };
                // A payload that does not open is never served in part or as garbage: the whole
                // answer is a 500, and the log names the attempt and why, not its bytes.
                let payload = payload.open(keys, binding).map_err(|error| {
                    anyhow::anyhow!("opening the payload of attempt {id}: {error}")
                })?;
                Ok(Listed {
                    id,
                    result,
                    reason,
                    payload,
                })
            },
        )
        .collect::<Result<Vec<_>, ApiError>>()?;
    let body = render(&attempts)
        .map_err(|e| anyhow::Error::new(e).context("serialising the attempt history"))?;

    Ok(HttpResponse::Ok()
        .insert_header((
            LINK,
            link_header(&person_id, &signing_id, page, history.total),
        ))
        .insert_header((TOTAL.clone(), HeaderValue::from(history.total)))
        .insert_header((PER_PAGE.clone(), HeaderValue::from(page.size())))
        .content_type(mime::APPLICATION_JSON)
        .body(body))
}

/// An attempt of a signing's history.
// Written by `render`, byte for byte; this is its description.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Attempt {
    #[schema(
        pattern = "^[0-9a-f]{32}cida$",
        example = "e1eeb07262b695dc0ee5d4ab9350c12dcida"
    )]
    id: String,
    /// `identificationprocess.result`, as sent.
    #[schema(example = "SUCCESS")]
    result: String,
    /// `identificationprocess.reason`, `null` when the attempt has none.
    #[schema(required = true)]
    reason: Option<String>,
    /// The webhook's JSON object as received: the same keys, values and key order.
    payload: Object,
}

/// Any JSON object.
type Object = serde_json::Map<String, serde_json::Value>;

/// An attempt of the page, its payload opened.
struct Listed {
    id: AttemptId,
    result: String,
    reason: Option<String>,
    /// The body as received.
    payload: Vec<u8>,
}

/// The page as the upstream API reference shows it: `[{"id", "result", "reason", "payload"}]`.
///
/// Written by hand so that each stored payload goes out as the bytes it is, without being
/// parsed again: it was parsed as JSON before it was stored, and AES-GCM proves these are the
/// bytes stored (a plain payload of before encryption sits in a `json` column). Validating
/// it once more cost a fifth of the listing's serialisation time for 3 KB payloads.
fn render(attempts: &[Listed]) -> Result<Vec<u8>, serde_json::Error> {
    let capacity = attempts
        .iter()
        .map(|attempt| attempt.payload.len() + 160)
        .sum::<usize>();
    let mut body = Vec::with_capacity(capacity + 2);
    body.push(b'[');
    for (n, attempt) in attempts.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(br#"{"id":"#);
        serde_json::to_writer(&mut body, &attempt.id)?;
        body.extend_from_slice(br#","result":"#);
        serde_json::to_writer(&mut body, &attempt.result)?;
        body.extend_from_slice(br#","reason":"#);
        serde_json::to_writer(&mut body, &attempt.reason)?;
        body.extend_from_slice(br#","payload":"#);
        // As received, less the whitespace around it (a body often ends in a newline).
        body.extend_from_slice(attempt.payload.trim_ascii());
        body.push(b'}');
    }
    body.push(b']');
    Ok(body)
}

/// RFC 8288 links, relative to this host, so that they hold behind any ingress. The ids are
/// URL-safe by construction; the brackets of the parameter names are escaped.
fn link_header(
    person_id: &PersonId,
    signing_id: &SigningId,
    page: PageRequest,
    total: u64,
) -> String {
    let mut header = String::new();
    for (rel, linked) in page.links(total) {
        if !header.is_empty() {
            header.push_str(", ");
        }
        let _ = write!(
            header,
            "</v1/persons/{person_id}/signings/{signing_id}/idnow_attempts?page%5Bnumber%5D={}&page%5Bsize%5D={}>; rel=\"{rel}\"",
            linked.number(),
            linked.size(),
        );
    }
    header
}
