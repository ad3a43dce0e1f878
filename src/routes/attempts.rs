//! `GET /v1/persons/{person_id}/signings/{signing_id}/idnow_attempts`: a signing's history.

use std::fmt::Write as _;
use std::pin::pin;

use actix_web::http::header::{HeaderName, HeaderValue, LINK};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt as _;
use utoipa::ToSchema;

use super::extract::{Authorized, SigningPath};
use super::openapi::ResourceId;
use crate::api_auth::scopes;
use crate::at_rest::{Binding, PayloadKeys};
use crate::domain::{PageRequest, PersonId, SigningId};
use crate::edge::answers::{Answer, AnswerBody, NoRoom, PageBudget};
use crate::edge::connection::PeerSocket;
use crate::error::{ApiError, ErrorBody};
use crate::persistence::attempts::{self, HistoryRow, StoredAttempt};
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
        (status = 400, description = "`invalid_path_parameter`, or `invalid_pagination`: a malformed or out-of-range parameter, or a page too large to answer (ask for fewer attempts per page).", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no valid bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "`unauthorized_action`: the token lacks scope `idnow_attempts:read`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such signing is registered for this person.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the service cannot answer now (the database is away or slow, other listings' answers hold the room for answers, the request took longer than the request timeout, or the process is shutting down); retry.", body = ErrorBody,
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

    // Rendered as the rows come: a page is never held whole twice.
    let keys = &state.payload_keys;
    let budget = &state.limits.page_budget;
    let rendered = state
        .database
        .run(async |conn| {
            let mut rows = pin!(attempts::history(conn, &person_id, &signing_id, page));
            let mut rendering: Option<Rendering> = None;
            while let Some(row) = rows.try_next().await? {
                let rendering = match &mut rendering {
                    Some(rendering) => rendering,
                    None => rendering.insert(Rendering::start(&row, page, budget)?),
                };
                if let Some(attempt) = row.attempt {
                    rendering.add(attempt, keys)?;
                }
            }
            Ok::<_, Failure>(rendering)
        })
        .await
        .map_err(|failure| match failure {
            Failure::Database(error) => ApiError::database(error, "reading the attempt history"),
            Failure::Answer(error) => error,
        })?;
    let rendering = rendered.ok_or(ApiError::NotFound(
        "No such signing is registered for this person.",
    ))?;
    let total = rendering.total;
    log.total(total);
    let mut body = rendering.finish()?;
    if let (Some(progress), Some(socket)) = (body.progress(), request.conn_data::<PeerSocket>()) {
        socket.close_if_stalled(progress);
    }

    Ok(HttpResponse::Ok()
        .insert_header((LINK, link_header(&person_id, &signing_id, page, total)))
        .insert_header((TOTAL.clone(), HeaderValue::from(total)))
        .insert_header((PER_PAGE.clone(), HeaderValue::from(page.size())))
        .content_type(mime::APPLICATION_JSON)
        .body(body))
}

/// Why a page was not rendered: its database work failed, or its answer could not be made.
enum Failure {
    Database(sqlx::Error),
    Answer(ApiError),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Answer(error)
    }
}

/// What each attempt of the answer adds beside its payload, result and reason: its id and
/// the object's keys (`{"id":"<36>","result":"","reason":null,"payload":}`, 82 bytes), and the
/// comma between attempts.
const PER_ATTEMPT: u64 = 83;

/// A page being written as the upstream API reference shows it: `[{"id", "result", "reason",
/// "payload"}]`, within the [`PageBudget`](crate::edge::answers::PageBudget).
///
/// Written by hand so that each stored payload goes out as the bytes it is, without being
/// parsed again: it was parsed as JSON before it was stored, and AES-GCM proves these are the
/// bytes stored (a plain payload of before encryption sits in a `json` column). Validating
/// it once more cost a fifth of the listing's serialisation time for 3 KB payloads.
struct Rendering {
    total: u64,
    transaction_number: String,
    answer: Answer,
    /// Each attempt's fields before its payload, reused.
    head: Vec<u8>,
    attempts: usize,
}

impl Rendering {
    /// From the page's first row, with room for as many attempts as the page holds, each
    /// the size of the first, as far as the budget has it now: more is taken as it is written,
    /// if need be. (PostgreSQL could tell the page's size up front, with a window over the
    /// page: that cost it 30 % more time per listing, measured with pgbench.)
    fn start(first: &HistoryRow, page: PageRequest, budget: &PageBudget) -> Result<Self, ApiError> {
        let offset = u64::try_from(page.offset()).unwrap_or_default();
        let rows = u64::from(page.size()).min(first.total.saturating_sub(offset));
        let each = first.attempt.as_ref().map_or(0, |attempt| {
            attempt.payload.stored_len()
                + attempt.result.len()
                + attempt.reason.as_ref().map_or(0, String::len)
        });
        // A quarter more: the other attempts' results, reasons and payloads may be longer than
        // the first's, and a piece that has to grow is copied whole (callgrind counted 11 %
        // more instructions for the 5-attempt listing when it did). What is not written goes
        // back when the answer is done.
        let expected = u64::try_from(each)
            .unwrap_or(u64::MAX)
            .saturating_add(PER_ATTEMPT)
            .saturating_mul(rows)
            .saturating_mul(5)
            / 4
            + 2;
        let expected = usize::try_from(expected)
            .unwrap_or(usize::MAX)
            .min(budget.free());
        let answer = budget.answer(expected).map_err(no_room)?;
        let mut rendering = Self {
            total: first.total,
            transaction_number: first.transaction_number.clone(),
            answer,
            head: Vec::with_capacity(128),
            attempts: 0,
        };
        rendering.write(b"[")?;
        Ok(rendering)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.answer.write(bytes).map_err(no_room)
    }

    fn add(&mut self, attempt: StoredAttempt, keys: &PayloadKeys) -> Result<(), ApiError> {
        let StoredAttempt {
            id,
            result,
            reason,
            mut payload,
        } = attempt;
        let binding = Binding::Attempt {
            id: id.as_uuid(),
            transaction_number: &self.transaction_number,
        };
        // A payload that does not open is never served in part or as garbage: the whole
        // answer is a 500, and the log names the attempt and why, not its bytes.
        let payload = payload
            .open_where_it_lies(keys, binding)
            .map_err(|error| anyhow::anyhow!("opening the payload of attempt {id}: {error}"))?;
        let head = &mut self.head;
        head.clear();
        if self.attempts > 0 {
            head.push(b',');
        }
        head.extend_from_slice(br#"{"id":"#);
        json_string(head, &id)?;
        head.extend_from_slice(br#","result":"#);
        json_string(head, &result)?;
        head.extend_from_slice(br#","reason":"#);
        json_string(head, &reason)?;
        head.extend_from_slice(br#","payload":"#);
        self.answer.write(&self.head).map_err(no_room)?;
        // As received, less the whitespace around it (a body often ends in a newline).
        self.write(payload.trim_ascii())?;
        self.write(b"}")?;
        self.attempts += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<AnswerBody, ApiError> {
        self.write(b"]")?;
        Ok(self.answer.finish())
    }
}

fn json_string(out: &mut Vec<u8>, value: &impl serde::Serialize) -> Result<(), ApiError> {
    serde_json::to_writer(out, value).map_err(|e| {
        anyhow::Error::new(e)
            .context("serialising the attempt history")
            .into()
    })
}

/// A page for which there is no room: refused when it could never fit (the client asks for a
/// smaller one), answered 503 when other answers hold the room now.
fn no_room(no_room: NoRoom) -> ApiError {
    match no_room {
        NoRoom::TooLarge => ApiError::bad_request(
            "invalid_pagination",
            "This page of the history is too large to answer; ask for fewer attempts per page \
             (page[size]).",
        ),
        NoRoom::Full => ApiError::Overloaded,
    }
}

/// An attempt of a signing's history.
// Written by `Rendering`, byte for byte; this is its description.
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
