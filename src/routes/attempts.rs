//! `GET /v1/persons/{person_id}/signings/{signing_id}/idnow_attempts`: a signing's history.

use std::fmt::Write as _;

use actix_web::http::header::{HeaderName, HeaderValue, LINK};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::value::RawValue;
use tracing_actix_web::RootSpan;

use super::signing_path;
use crate::auth::Scope;
use crate::domain::{AttemptId, PageRequest, PersonId, SigningId};
use crate::error::{ApiError, DbResultExt as _};
use crate::persistence::attempts;
use crate::startup::AppState;

/// One attempt, as in the upstream API reference.
#[derive(Serialize)]
struct AttemptView {
    id: AttemptId,
    result: String,
    reason: Option<String>,
    /// The stored body, written out as it is: no re-parsing into a tree, no re-ordering.
    payload: Box<RawValue>,
}

pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
    span: RootSpan,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .api_keys
        .authorize(request.headers(), Scope::IdnowAttemptsRead)?;
    span.record("api_client", client);
    let (person_id, signing_id) = signing_path(&request)?;
    let page = PageRequest::from_query(request.query_string())
        .map_err(|e| ApiError::bad_request("invalid_pagination", e))?;

    let mut conn = state.connection().await?;
    let history = attempts::history(&mut conn, &person_id, &signing_id, page)
        .await
        .db_context("reading the attempt history")?
        .ok_or(ApiError::NotFound(
            "No such signing is registered for this person.",
        ))?;
    drop(conn);
    span.record("total", history.total);

    let views = history
        .attempts
        .into_iter()
        .map(|attempt| {
            Ok(AttemptView {
                id: attempt.id,
                result: attempt.result,
                reason: attempt.reason,
                payload: RawValue::from_string(attempt.payload)?,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| anyhow::Error::new(e).context("a stored payload is not JSON"))?;

    Ok(HttpResponse::Ok()
        .insert_header((
            LINK,
            link_header(&person_id, &signing_id, page, history.total),
        ))
        .insert_header((
            HeaderName::from_static("total"),
            HeaderValue::from(history.total),
        ))
        .insert_header((
            HeaderName::from_static("per-page"),
            HeaderValue::from(page.size()),
        ))
        .json(views))
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
