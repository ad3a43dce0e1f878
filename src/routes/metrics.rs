//! `GET /metrics`: the Prometheus text format.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::state::AppState;

/// Gathers and encodes every metric of the process.
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|error| anyhow::Error::new(error).context("encoding the metrics"))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, prometheus::TEXT_FORMAT))
        .body(text))
}
