//! `DELETE /v1/persons/{person_id}`: erase everything held for a person.

use actix_web::{web, HttpResponse};

use super::extract::{Authorized, PersonPath};
use super::openapi::ResourceId;
use crate::api_auth::scopes;
use crate::error::{ApiError, DbResultExt as _, ErrorBody};
use crate::persistence::persons::{self, Erased};
use crate::state::AppState;

/// Erases everything held for the person: their signings, every attempt of those signings'
/// identifications and kept rejected deliveries of those identifications. The
/// identifications are remembered as SHA-256 digests only, so that late webhooks are answered
/// 204 and not stored again.
#[utoipa::path(
    delete,
    path = "/v1/persons/{person_id}",
    tag = "persons",
    operation_id = "erase_person",
    params(
        ("person_id" = ResourceId, Path, description = "The person's id."),
    ),
    responses(
        (status = 200, description = "Erased: what was; zeros when nothing is held (again).", body = Erased),
        (status = 400, description = "`invalid_path_parameter`.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no valid bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "`unauthorized_action`: the token lacks scope `persons:erase`.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the service cannot erase now (the database is away or slow, the erasure waited over 2 s for its lock, the request timeout passed, or the process is shutting down); retry.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearer" = ["persons:erase"])),
)]
pub async fn erase(
    _client: Authorized<scopes::PersonsErase>,
    PersonPath(person_id): PersonPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let erased = state
        .database
        .transaction(async |conn| persons::erase(conn, &person_id).await)
        .await
        .db_context("erasing a person")?;
    if erased.signings > 0 {
        state.metrics.erasure();
    }
    // The counts, never the ids: the log line of an erasure holds nothing of the person.
    tracing::info!(
        signings = erased.signings,
        attempts = erased.attempts,
        rejected_deliveries = erased.rejected_deliveries,
        "person erased"
    );
    Ok(HttpResponse::Ok().json(erased))
}
