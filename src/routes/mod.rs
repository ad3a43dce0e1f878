//! The route table. What API routes take from their request is in [`extract`].

mod attempts;
pub mod extract;
mod health;
mod metrics;
mod signings;
mod webhooks;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse, Resource};

use crate::edge::limits::limit_request_time;
use crate::error::ApiError;
use crate::telemetry::RoutePattern;

/// Routes are tried in this order, each dynamic one by a regex: the busiest first. The API's
/// routes answer within `request_timeout` (503 beyond).
pub fn configure(cfg: &mut web::ServiceConfig, request_timeout: Duration) {
    let limit_time =
        || from_fn(move |request, next| limit_request_time(request_timeout, request, next));
    cfg.service(
        resource("/v1/webhooks/idnow")
            .wrap(limit_time())
            .route(web::post().to(webhooks::receive))
            .default_service(web::to(|| method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts")
            .wrap(limit_time())
            .route(web::get().to(attempts::list))
            .default_service(web::to(|| method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/persons/{person_id}/signings/{signing_id}")
            .wrap(limit_time())
            .route(web::put().to(signings::register))
            .default_service(web::to(|| method_not_allowed("PUT"))),
    )
    .service(
        resource("/health/live")
            .route(web::get().to(health::live))
            .default_service(web::to(|| method_not_allowed("GET"))),
    )
    .service(
        resource("/health/ready")
            .route(web::get().to(health::ready))
            .default_service(web::to(|| method_not_allowed("GET"))),
    )
    .service(
        resource("/metrics")
            .route(web::get().to(metrics::scrape))
            .default_service(web::to(|| method_not_allowed("GET"))),
    );
}

/// A resource that names its pattern for the request's log line and metrics: asking actix
/// for the matched pattern runs the router's regexes once more.
fn resource(pattern: &'static str) -> Resource {
    web::resource(pattern).app_data(RoutePattern(pattern))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such route."))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(allow))
}
