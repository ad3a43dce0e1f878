//! `GET /metrics`: the Prometheus text format.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::state::AppState;

/// Every metric of the process, in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "The Prometheus text format, version 0.0.4.", body = String, content_type = "text/plain; version=0.0.4")),
)]
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|error| anyhow::Error::new(error).context("encoding the metrics"))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, prometheus::TEXT_FORMAT))
        .body(text))
}
