//! Liveness and readiness for the orchestrator.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::persistence::{self, Readiness};
use crate::state::AppState;

/// 200 while the process serves requests.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 only when the database answers, every migration is applied and every key rows are
/// encrypted under is configured, and never again once the process has been asked to stop.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::Unavailable(anyhow::anyhow!("shutting down")));
    }
    match persistence::readiness(&state.database, &state.payload_keys).await {
        Ok(Readiness::Ready) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Ok(Readiness::MigrationsPending) => Err(ApiError::Unavailable(anyhow::anyhow!(
            "database migrations are pending"
        ))),
        // The request's log line carries this, with the ids (never key material).
        Ok(Readiness::KeysMissing(ids)) => Err(ApiError::Unavailable(anyhow::anyhow!(
            "rows are encrypted under key id(s) {}, which PAYLOAD_ENCRYPTION_KEYS does not list",
            ids.join(", ")
        ))),
        Err(error) => Err(ApiError::Unavailable(
            anyhow::Error::new(error).context("checking the database"),
        )),
    }
}
