//! `DELETE /v1/persons/{person_id}`: erase everything held for a person.

use actix_web::{web, HttpResponse};

use super::extract::{Authorized, PersonPath};
use crate::api_auth::scopes;
use crate::error::{ApiError, DbResultExt as _};
use crate::persistence::persons;
use crate::state::AppState;

/// `200 {"signings","attempts","rejected_deliveries"}`, zeros when nothing is held (again).
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
