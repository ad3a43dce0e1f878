//! The route table, and what every route shares: reading bodies and path ids at the edge.

mod attempts;
mod health;
mod signings;
mod webhooks;

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, Resource};
use futures_util::StreamExt as _;

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

/// 415 for a declared content type that is not JSON (`application/json` or `*/*+json`). A
/// request that declares none is read as JSON.
fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    let mime = request
        .mime_type()
        .map_err(|_| ApiError::UnsupportedMediaType)?;
    match mime {
        None => Ok(()),
        Some(mime)
            if mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}

/// The body, at most `limit` bytes (413 beyond), within `timeout` (408 beyond): a client
/// that trickles its body must not hold a worker's attention, and later a database
/// connection, indefinitely.
async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::Bytes, ApiError> {
    tokio::time::timeout(timeout, read_body_within(request, payload, limit))
        .await
        .map_err(|_elapsed| ApiError::BodyTimeout(timeout.as_millis()))?
}

/// Reads the whole body, refusing (413) as soon as it is known to be larger than `limit`:
/// from `Content-Length` before reading anything, or from what has arrived so far.
async fn read_body_within(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::bad_request("unreadable_body", "The body could not be read."))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
