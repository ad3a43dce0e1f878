//! The route table, and what every route shares: reading bodies and path ids at the edge.

mod attempts;
mod health;
mod signings;
mod webhooks;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse, Resource};

use crate::domain::{IdError, PersonId, SigningId};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::telemetry::RoutePattern;

/// Routes are tried in this order, each dynamic one by a regex: the busiest first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/v1/webhooks/idnow")
            .wrap(from_fn(limit_request_time))
            .route(web::post().to(webhooks::receive))
            .default_service(web::to(|| method_not_allowed("POST"))),
    )
    .service(
        resource("/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts")
            .wrap(from_fn(limit_request_time))
            .route(web::get().to(attempts::list))
            .default_service(web::to(|| method_not_allowed("GET"))),
    )
    .service(
        resource("/v1/persons/{person_id}/signings/{signing_id}")
            .wrap(from_fn(limit_request_time))
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
            .route(web::get().to(crate::metrics::render))
            .default_service(web::to(|| method_not_allowed("GET"))),
    );
}

/// A resource that names its pattern for the request's log line and metrics: asking actix
/// for the matched pattern runs the router's regexes once more.
fn resource(pattern: &'static str) -> Resource {
    web::resource(pattern).app_data(RoutePattern(pattern))
}

/// Answers 503 with Retry-After for a request of the API that has not been answered within
/// the request timeout. On each resource rather than the whole app: routing must own the
/// request while it matches, and this keeps a handle on it.
///
/// Dropping the handler cancels it: a webhook whose INSERT was still running may commit
/// anyway, unacknowledged; its retry is then answered 200 with the original id.
async fn limit_request_time(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(timeout) = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.request_timeout)
    else {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let http_request = request.request().clone();
    match tokio::time::timeout(timeout, next.call(request)).await {
        Ok(response) => response.map(ServiceResponse::map_into_left_body),
        Err(_elapsed) => {
            let error = ApiError::Unavailable(anyhow::anyhow!(
                "no answer within the request timeout of {} ms",
                timeout.as_millis()
            ));
            // from_error keeps the error on the response, for the request's log line.
            let response = HttpResponse::from_error(error);
            Ok(ServiceResponse::new(http_request, response).map_into_right_body())
        }
    }
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("No such route."))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(allow))
}

/// The `{person_id}` and `{signing_id}` of a path, parsed.
fn signing_path(request: &HttpRequest) -> Result<(PersonId, SigningId), ApiError> {
    let segment = |name: &'static str| request.match_info().get(name).unwrap_or_default();
    let invalid = |name: &'static str| {
        move |e: IdError| ApiError::bad_request("invalid_path_parameter", format!("{name} {e}"))
    };
    Ok((
        PersonId::parse(segment("person_id")).map_err(invalid("person_id"))?,
        SigningId::parse(segment("signing_id")).map_err(invalid("signing_id"))?,
    ))
}
