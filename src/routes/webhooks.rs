//! `POST /v1/webhooks/idnow`: IDnow's result webhook.
//!
//! The order of checks is the contract's: content type (415), size (413), signature (401),
//! then shape (400/422). Nothing is read as JSON before the sender is verified, and a 2xx is
//! sent only once the attempt is committed.

use std::time::SystemTime;

use actix_web::http::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use serde::Serialize;
use sqlx::PgConnection;

use super::{read_body, require_json};
use crate::domain::{AttemptId, Delivery, DeliveryError};
use crate::error::{ApiError, DbResultExt as _};
use crate::persistence::attempts::Stored;
use crate::persistence::rejected::{self, RejectedDelivery};
use crate::persistence::writer::NewAttempt;
use crate::startup::AppState;
use crate::telemetry::RequestLog;
use crate::webhook_signature::{HeaderValue, SignatureHeaders};

#[derive(Serialize)]
struct Acknowledgement {
    id: AttemptId,
}

pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    log: RequestLog,
) -> Result<HttpResponse, ApiError> {
    require_json(&request)?;
    let body = read_body(&request, payload, state.body_limit, state.body_read_timeout).await?;
    let verified = state
        .verifier
        .verify(
            signature_headers(request.headers()),
            &body,
            SystemTime::now(),
        )
        .map_err(|failure| {
            state.metrics.signature_failure(failure);
            ApiError::InvalidSignature(failure)
        })?;

    let delivery = match Delivery::parse(&body) {
        Ok(delivery) => delivery,
        Err(error) => {
            // Authentic but unusable: answer the sender, and keep the body for operators.
            let error = refusal(error);
            let mut conn = state.connection().await?;
            keep_rejected(&mut conn, &request, verified.webhook_id, &body, &error).await?;
            conn.release();
            state.metrics.rejected(error.code());
            log.outcome("rejected_kept");
            return Err(error);
        }
    };

    log.transaction_number(delivery.transaction_number.as_str());
    let stored = state
        .writer
        .store(NewAttempt::new(&delivery, verified.webhook_id))
        .await
        .db_context("storing the attempt")?;
    let (mut response, id, outcome) = match stored {
        Stored::New {
            id,
            signing_registered,
        } => {
            state.metrics.attempt_stored(&delivery.result);
            if signing_registered {
                (HttpResponse::Created(), id, "stored")
            } else {
                (HttpResponse::Accepted(), id, "stored_unregistered")
            }
        }
        Stored::Duplicate { id } => {
            state.metrics.duplicate();
            (HttpResponse::Ok(), id, "duplicate")
        }
    };
    log.attempt_id(id);
    log.outcome(outcome);
    Ok(response.json(Acknowledgement { id }))
}

fn refusal(error: DeliveryError) -> ApiError {
    match error {
        DeliveryError::NotJson(_) => {
            ApiError::bad_request("invalid_json", "The body is not valid JSON.")
        }
        DeliveryError::Unprocessable(detail) => {
            ApiError::unprocessable("invalid_webhook_payload", detail)
        }
    }
}

async fn keep_rejected(
    conn: &mut PgConnection,
    request: &HttpRequest,
    webhook_id: Option<&str>,
    body: &[u8],
    refusal: &ApiError,
) -> Result<(), ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    rejected::keep(
        conn,
        &RejectedDelivery {
            status: refusal.status_code().as_u16(),
            error_code: refusal.code(),
            webhook_id,
            content_type,
            body,
        },
    )
    .await
    .db_context("keeping a rejected delivery")?;
    Ok(())
}

fn signature_headers(headers: &HeaderMap) -> SignatureHeaders<'_> {
    let value = |name: &'static str| header_value(headers, &HeaderName::from_static(name));
    SignatureHeaders {
        webhook_id: value("webhook-id"),
        webhook_timestamp: value("webhook-timestamp"),
        webhook_signature: value("webhook-signature"),
        idnow_signature: value("x-idnow-signature"),
    }
}

/// A header sent twice, or with bytes that are not visible ASCII, is ambiguous: unusable.
fn header_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> HeaderValue<'a> {
    let mut values = headers.get_all(name);
    match (values.next(), values.next()) {
        (None, _) => HeaderValue::Absent,
        (Some(value), None) => value
            .to_str()
            .map_or(HeaderValue::Unusable, HeaderValue::One),
        (Some(_), Some(_)) => HeaderValue::Unusable,
    }
}
