//! Limits of a request as a whole: its headers' size and the time to its answer.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use crate::error::ApiError;

/// 431 for requests whose header fields, names and values together, exceed `limit`.
///
/// actix-http itself refuses more than 96 header fields and heads beyond its read buffer
/// (431, before any route, with the body of `refusals::own_answer_body`); this is the tighter
/// limit the service chooses.
pub async fn limit_header_size(
    limit: usize,
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > limit {
        let (request, _payload) = request.into_parts();
        return Ok(answer(request, ApiError::HeadersTooLarge(limit)));
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Answers 503 with Retry-After for a request of the API that has not been answered within
/// `timeout`. On each resource rather than the whole app: routing must own the request while
/// it matches, and this keeps a handle on it.
///
/// Dropping the handler cancels it: a webhook whose INSERT was still running may commit
/// anyway, unacknowledged; its retry is then answered 200 with the original id.
pub async fn limit_request_time(
    timeout: Duration,
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let http_request = request.request().clone();
    match tokio::time::timeout(timeout, next.call(request)).await {
        Ok(response) => response.map(ServiceResponse::map_into_left_body),
        Err(_elapsed) => Ok(answer(
            http_request,
            ApiError::Unavailable(anyhow::anyhow!(
                "no answer within the request timeout of {} ms",
                timeout.as_millis()
            )),
        )),
    }
}

/// The answer to `request` is `error`. `from_error` keeps the error on the response, for the
/// request's log line and the error renderer alike.
fn answer<B>(request: actix_web::HttpRequest, error: ApiError) -> ServiceResponse<EitherBody<B>> {
    ServiceResponse::new(request, HttpResponse::from_error(error)).map_into_right_body()
}
