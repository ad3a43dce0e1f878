//! `POST /v1/webhooks/idnow`: IDnow's result webhook.
//!
//! The order of checks is the contract's: the source address (403), before anything else of
//! the request is read; content type and coding (415), size (413), credentials (401), then
//! `webhook-id` and shape (400/422), then the store (2xx; 409 for a reused `webhook-id`; 422
//! for a value the database refuses). What follows authentication is `ingest`'s, which
//! `rejected replay` runs too. Nothing is read as JSON before the sender is verified;
//! an authentic delivery that is refused is kept verbatim; a 2xx is sent only once the
//! attempt is committed. A delivery for an erased identification is answered 204 and neither
//! stored nor kept.

use std::time::SystemTime;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use serde::Serialize;

use crate::domain::{transaction_number_of, AttemptId, WebhookId};
use crate::edge::body::read_json_body;
use crate::edge::client_address::peer_of;
use crate::error::{ApiError, DbResultExt as _};
use crate::ingest::{self, Outcome};
use crate::persistence::rejected::{self, Kept, RejectedDelivery};
use crate::state::AppState;
use crate::telemetry::RequestLog;

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
    let auth = &state.webhook_auth;
    let admitted = auth
        .admit(state.trusted_proxies.client_of(&request))
        .map_err(|refused| {
            state.metrics.forbidden_source(refused);
            log.refused_source(refused, peer_of(&request));
            ApiError::ForbiddenSource
        })?;
    let limits = &state.limits;
    let body = read_json_body(&request, payload, limits.body(limits.webhook_body)).await?;
    let verified = admitted
        .verify(auth.headers(request.headers()), &body, SystemTime::now())
        .map_err(|refused| {
            state.metrics.auth_failure(refused);
            log.refused(refused);
            ApiError::WebhookUnauthenticated {
                basic_challenge: auth.challenges_basic(),
            }
        })?;
    log.admitted_by(verified.method);
    // From here on the delivery is authentic: whatever is refused is kept for operators.
    let authentic = Authentic {
        state: &state,
        request: &request,
        log: &log,
        body: &body,
    };

    let outcome = ingest::authentic(
        &state.writer,
        &state.payload_keys,
        verified.webhook_id,
        &body,
        |transaction_number| log.transaction_number(transaction_number.as_str()),
    )
    .await
    .db_context("storing the attempt")?;
    let (mut response, id, outcome) = match outcome {
        Outcome::Stored {
            id,
            signing_registered,
            result,
        } => {
            state.metrics.attempt_stored(&result);
            if signing_registered {
                (HttpResponse::Created(), id, "stored")
            } else {
                (HttpResponse::Accepted(), id, "stored_unregistered")
            }
        }
        Outcome::Duplicate { id } => {
            state.metrics.duplicate();
            (HttpResponse::Ok(), id, "duplicate")
        }
        Outcome::Refused(refusal) => {
            if let Some(holder) = refusal.holder {
                log.attempt_id(holder);
            }
            return authentic
                .refuse(refusal.webhook_id.as_ref(), refusal.error)
                .await;
        }
        Outcome::Erased => return Ok(authentic.erased()),
    };
    log.attempt_id(id);
    log.outcome(outcome);
    Ok(response.json(Acknowledgement { id }))
}

/// An authentic delivery, kept verbatim if it is refused.
struct Authentic<'a> {
    state: &'a AppState,
    request: &'a HttpRequest,
    log: &'a RequestLog,
    body: &'a [u8],
}

impl Authentic<'_> {
    /// Keeps the delivery as refused with `refusal` and returns the answer for its sender:
    /// `refusal` itself; 503 when it could not be kept (the sender retries, so that nothing
    /// IDnow sent is lost); 204 when it belongs to an erased identification.
    async fn refuse(
        &self,
        webhook_id: Option<&WebhookId>,
        refusal: ApiError,
    ) -> Result<HttpResponse, ApiError> {
        let content_type = self
            .request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        let rejected = RejectedDelivery {
            status: refusal.status_code().as_u16(),
            error_code: refusal.code(),
            webhook_id: webhook_id.map(WebhookId::as_str),
            content_type,
            transaction_number: transaction_number_of(self.body),
            body: self.body,
        };
        let keys = &self.state.payload_keys;
        let kept = self
            .state
            .database
            .run(async |conn| rejected::keep(conn, keys, &rejected).await)
            .await
            .db_context("keeping a rejected delivery")?;
        if kept == Kept::Erased {
            return Ok(self.erased());
        }
        self.state.metrics.rejected(refusal.code());
        self.log.outcome("rejected_kept");
        Err(refusal)
    }

    /// The answer to a delivery of an erased identification: acknowledged, so that the
    /// sender stops retrying, and nothing stored.
    fn erased(&self) -> HttpResponse {
        self.state.metrics.erased_delivery();
        self.log.outcome("erased");
        HttpResponse::NoContent().finish()
    }
}
