//! Liveness and readiness for the orchestrator.

use actix_web::{web, HttpResponse};
use serde_json::json;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::persistence::{self, Readiness};
use crate::state::AppState;

/// Whether the process runs: 200 while it serves requests.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    operation_id = "live",
    responses((status = 200, description = "The process runs.", body = Status, example = json!({"status": "ok"}))),
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Whether to send traffic here: 200 only when the database answers, every migration is
/// applied and every key rows are encrypted under is configured; 503 otherwise, and once the
/// process has been asked to stop.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready.", body = Status, example = json!({"status": "ready"})),
        (status = 503, description = "`service_unavailable`: not ready; the log says why.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before asking again."))),
    ),
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    match persistence::readiness(&state.database, &state.payload_keys).await {
        Ok(Readiness::Ready) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Ok(Readiness::MigrationsPending) => Err(ApiError::Unavailable(anyhow::anyhow!(
            "database migrations are pending"
        ))),
        // The request's log line carries this, with the ids (never key material). The rows
        // may all be gone by now (retention, erasure): once a look has found so and
        // unregistered the ids, a later probe is ready.
        Ok(Readiness::KeysMissing(ids)) => {
            state.unused_keys.look();
            Err(ApiError::Unavailable(anyhow::anyhow!(
                "rows are encrypted under key id(s) {}, which PAYLOAD_ENCRYPTION_KEYS does not \
                 list (unless they have all been deleted since: a look for them runs in the \
                 background)",
                ids.join(", ")
            )))
        }
        Err(error) => Err(ApiError::Unavailable(
            anyhow::Error::new(error).context("checking the database"),
        )),
    }
}

/// A health answer.
#[derive(ToSchema)]
#[allow(dead_code)] // A description of the answers, which `json!` writes.
pub struct Status {
    #[schema(example = "ok")]
    status: String,
}
