//! The route table. What API routes take from their request is in `extract.rs`.

mod attempts;
mod extract;
mod health;
mod metrics;
pub mod openapi;
mod persons;
mod signings;
mod webhooks;

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{guard, web, HttpResponse, Resource, Route};

use crate::edge::limits::limit_request_time;
use crate::error::ApiError;
use crate::telemetry::RoutePattern;

/// Routes are tried in this order, each dynamic one by a regex: the busiest first. The API's
/// routes answer within `request_timeout` (503 beyond).
pub fn configure(cfg: &mut web::ServiceConfig, request_timeout: Duration) {
    let limit_time =
        || from_fn(move |request, next| limit_request_time(request_timeout, request, next));
    cfg.service(
        resource(
            "/v1/webhooks/idnow",
            "POST",
            web::post().to(webhooks::receive),
        )
        .wrap(limit_time()),
    )
    .service(
        resource(
            "/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts",
            READ,
            read().to(attempts::list),
        )
        .wrap(limit_time()),
    )
    .service(
        resource(
            "/v1/persons/{person_id}/signings/{signing_id}",
            "PUT",
            web::put().to(signings::register),
        )
        .wrap(limit_time()),
    )
    .service(
        resource(
            "/v1/persons/{person_id}",
            "DELETE",
            web::delete().to(persons::erase),
        )
        .wrap(limit_time()),
    )
    .service(resource("/health/live", READ, read().to(health::live)))
    .service(resource("/health/ready", READ, read().to(health::ready)))
    .service(resource("/metrics", READ, read().to(metrics::scrape)))
    .service(resource(
        "/openapi.json",
        READ,
        read().to(openapi::document),
    ));
}

/// The methods of a resource that is read: `GET`, and `HEAD`, which every general-purpose
/// server must serve where it serves `GET` (RFC 9110 §9.1). A `HEAD` runs the route as a `GET`
/// does; actix-http sends the answer's head alone, its `Content-Length` that of the body a
/// `GET` would get (§9.3.2).
const READ: &str = "GET, HEAD";

fn read() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The resource at `pattern`, served by `route`, which takes the method `allow` names: any
/// other method is answered 405 with that `Allow`. It names its pattern for the request's log
/// line and metrics: asking actix for the matched pattern runs the router's regexes again.
fn resource(pattern: &'static str, allow: &'static str, route: Route) -> Resource {
    web::resource(pattern)
        .app_data(RoutePattern(pattern))
        .route(route)
        .default_service(web::to(move || method_not_allowed(allow)))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such route."))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(allow))
}
