//! Liveness and readiness for the orchestrator.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// 200 while the process serves requests.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 only when the database answers and every migration is applied, and never again once
/// the process has been asked to stop.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::Unavailable(anyhow::anyhow!("shutting down")));
    }
    match crate::persistence::is_ready(&state.database).await {
        Ok(true) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Ok(false) => Err(ApiError::Unavailable(anyhow::anyhow!(
            "database migrations are pending"
        ))),
        Err(error) => Err(ApiError::Unavailable(
            anyhow::Error::new(error).context("checking the database"),
        )),
    }
}
