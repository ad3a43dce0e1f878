//! `POST /v1/webhooks/idnow`: IDnow's result webhook.
//!
//! The order of checks is the contract's: the source address (403), before anything else of
//! the request is read; content type and coding (415), size (413 by the declared length),
//! credentials (401: what the headers decide before the body is read, so that a delivery
//! without a signature that could verify gets its 401 before anything reading the body would
//! answer; a signature that could, once the body is read within its limits: 413, 503, 408,
//! 400), then `webhook-id` and shape (400/422), then the store (2xx; 409 for a reused `webhook-id`; 422
//! for a value the database refuses). What follows authentication is `ingest`'s, which
//! `rejected replay` runs too. Nothing is read as JSON before the sender is verified;
//! an authentic delivery that is refused is kept verbatim; a 2xx is sent only once the
//! attempt is committed. A delivery for an erased identification is answered 204 and neither
//! stored nor kept.

use std::time::SystemTime;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError as _};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::TransactionNumberText;
use crate::domain::{transaction_numbers_of, AttemptId, WebhookId, MAX_NAMED};
use crate::edge::body::check_body_head;
use crate::edge::client_address::peer_of;
use crate::error::{ApiError, DbResultExt as _, ErrorBody};
use crate::ingest::{self, Outcome};
use crate::persistence::rejected::{self, Kept, RejectedDelivery};
use crate::state::AppState;
use crate::telemetry::RequestLog;

/// The answer to a stored or duplicate delivery.
#[derive(Serialize, ToSchema)]
pub struct Acknowledgement {
    /// The attempt's id: the new one, or the original's for a duplicate.
    #[schema(value_type = String, pattern = "^[0-9a-f]{32}cida$", example = "e1eeb07262b695dc0ee5d4ab9350c12dcida")]
    id: AttemptId,
}

/// Stores one attempt of an IDnow identification.
///
/// Checked in this order: the sender's address (403), the declared content type and coding
/// (415), the declared size (413), the credentials (401; a delivery without a signature that
/// could verify is refused before its body is read, a signed one once it is read within
/// the limits), then the body (400/422), then the store. An authentic delivery that is
/// refused (400, 409, 422) is kept verbatim for operators. Any one of the methods
/// `WEBHOOK_AUTH` enables suffices; with `source` enabled, a delivery from inside
/// `WEBHOOK_ALLOWED_SOURCES` needs no credentials at all.
#[utoipa::path(
    post,
    path = "/v1/webhooks/idnow",
    tag = "webhooks",
    operation_id = "receive_idnow_webhook",
    request_body(content = IdnowWebhook, content_type = "application/json"),
    responses(
        (status = 200, description = "A duplicate delivery of a stored attempt: nothing new is stored; the original attempt's id.", body = Acknowledgement),
        (status = 201, description = "A new attempt stored (durably committed).", body = Acknowledgement),
        (status = 202, description = "Stored, but no signing is registered yet for its transaction number; it joins the signing's history when one is.", body = Acknowledgement),
        (status = 204, description = "The identification was erased: acknowledged, nothing stored."),
        (status = 400, description = "`invalid_json`: the body is not JSON; `invalid_webhook_id`: an unusable `webhook-id`.", body = ErrorBody),
        (status = 401, description = "`invalid_signature`: no enabled method accepted the delivery.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"idnow-webhooks\"` when `basic` is enabled."))),
        (status = 403, description = "`forbidden_source`: sent from outside `WEBHOOK_ALLOWED_SOURCES`.", body = ErrorBody),
        (status = 409, description = "`webhook_id_reused`: the `webhook-id` is stored already for a different event.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over the limit (1 MiB by default).", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a declared content type that is not JSON; `unsupported_content_encoding`: a content coding other than identity.", body = ErrorBody,
            headers(("Accept-Encoding" = String, description = "`identity`, when a content coding was refused."))),
        (status = 422, description = "`invalid_webhook_payload`: JSON that is not a storable attempt (no `identificationprocess.result` or `.transactionnumber`, a value the store cannot hold, nesting over 32 levels).", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the service cannot take the delivery now (the database is away or slow, the process holds as many request bodies as it allows itself, the request timeout passed, or the process is shutting down); retry.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("standardWebhooks" = []), ("hmac" = []), ("token" = []), ("basic" = [])),
)]
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    log: RequestLog,
) -> Result<HttpResponse, ApiError> {
    let auth = &state.webhook_auth;
    let client = state.trusted_proxies.client_of(&request);
    let admitted = auth.admit(client).map_err(|refused| {
        state.metrics.forbidden_source(refused);
        log.refused_source(refused, peer_of(&request));
        ApiError::ForbiddenSource
    })?;
    let limits = &state.limits;
    // The sender's share of the body budget is its address's, the one the source check reads
    // (admitted, so known).
    let body_limits = limits.body(limits.webhook_body).from_client(client);
    let unauthenticated = |refused| {
        state.metrics.auth_failure(refused);
        log.refused(refused);
        ApiError::WebhookUnauthenticated {
            basic_challenge: auth.challenges_basic(),
        }
    };
    let headers = auth.headers(request.headers());
    let head = check_body_head(&request, body_limits)?;
    let verified_early = admitted
        .verify_before_body(headers, SystemTime::now())
        .transpose()
        .map_err(unauthenticated)?;
    let body = head.read(payload).await?;
    let verified = match verified_early {
        Some(verified) => verified,
        None => admitted
            .verify(headers, &body, SystemTime::now())
            .map_err(unauthenticated)?,
    };
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
        |identification| log.identification(identification),
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
    /// IDnow sent is lost); 204 when it belongs to an erased identification. A body naming
    /// more identifications than erasure could afford to look for (`domain::MAX_NAMED`;
    /// IDnow's name one) is not kept: answered with `refusal`, and logged.
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
        let Some(transaction_numbers) = transaction_numbers_of(self.body) else {
            tracing::warn!(
                code = refusal.code(),
                "a refused delivery names more than {MAX_NAMED} identifications: not kept"
            );
            self.log.outcome("rejected_not_kept");
            return Err(refusal);
        };
        let rejected = RejectedDelivery {
            status: refusal.status_code().as_u16(),
            error_code: refusal.code(),
            webhook_id: webhook_id.map(WebhookId::as_str),
            content_type,
            transaction_numbers,
            body: self.body,
        };
        let keys = &self.state.payload_keys;
        let kept = self
            .state
            .database
            .run(async |conn| rejected::keep(conn, keys, &rejected).await)
            .await
            .db_context("keeping a rejected delivery")?;
        match kept {
            Kept::Erased => return Ok(self.erased()),
            Kept::Kept(_) => self.log.outcome("rejected_kept"),
            // A retry: refused as before, and not kept twice.
            Kept::Before => self.log.outcome("rejected_kept_before"),
        }
        self.state.metrics.rejected(refusal.code());
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

/// IDnow's result webhook, as the service reads it. Only `identificationprocess.result` and
/// `identificationprocess.transactionnumber` are required; every other key (`customdata`,
/// `contactdata`, `userdata`, `identificationdocument`, `attachments`, ...) is stored as sent,
/// in its order. Nesting over 32 levels is refused with 422.
#[derive(ToSchema)]
#[schema(example = json!({"identificationprocess": {"result": "SUCCESS", "transactionnumber": "b2d949eb12ecd6798fa8e2ae66fc4a5acidt", "id": "TST-EABTZ", "identificationtime": "2019-03-27T16:47:59+01:00"}}))]
#[allow(dead_code)] // A description of the body, never built.
pub struct IdnowWebhook {
    identificationprocess: IdentificationProcess,
}

/// The fields of `identificationprocess` the service reads; others are kept as sent.
#[derive(ToSchema)]
#[allow(dead_code)] // A description of the body, never built.
pub struct IdentificationProcess {
    /// Stored as sent: IDnow adds values over time. Not empty; no NUL character.
    #[schema(min_length = 1, pattern = r"^[^\x00]*$", example = "SUCCESS")]
    result: String,
    #[schema(value_type = TransactionNumberText)]
    transactionnumber: String,
    /// IDnow's ident code. No NUL character.
    #[schema(pattern = r"^[^\x00]*$", example = "TST-EABTZ")]
    id: Option<String>,
    /// Why the attempt was aborted. No NUL character.
    #[schema(pattern = r"^[^\x00]*$")]
    reason: Option<String>,
    /// RFC 3339; attempts are ordered by it. Any other string is kept and sorts by arrival.
    #[schema(example = "2019-03-27T16:47:59+01:00")]
    identificationtime: Option<String>,
}
