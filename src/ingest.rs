//! What becomes of an authentic delivery: its `webhook-id` and body parsed, its attempt
//! stored, and the outcome or the refusal.
//!
//! One path for the webhook route and for `idnow-attempts rejected replay`, so that a kept
//! body replayed is judged exactly as it would be if it arrived now. What only one of them
//! does stays with it: the route keeps refused deliveries, counts them in the metrics and
//! answers over HTTP; the replay prints what became of each kept body and keeps nothing.

use actix_web::ResponseError as _;

use crate::at_rest::PayloadKeys;
use crate::domain::{AttemptId, Delivery, DeliveryError, WebhookId};
use crate::error::ApiError;
use crate::persistence::attempts::{NewAttempt, Stored};
use crate::persistence::writer::{AttemptWriter, WriteError};

/// What became of an authentic delivery the store could judge.
#[derive(Debug)]
pub enum Outcome {
    /// A new attempt. `result` is its `identificationprocess.result`, as metrics count
    /// attempts by it.
    Stored {
        id: AttemptId,
        signing_registered: bool,
        result: String,
    },
    /// The same event is stored already, as `id`.
    Duplicate { id: AttemptId },
    /// Its identification was erased: nothing is stored.
    Erased,
    /// Refused: nothing is stored.
    Refused(Refusal),
}

/// Why an authentic delivery was refused, as its sender is told.
#[derive(Debug)]
pub struct Refusal {
    pub error: ApiError,
    /// The delivery's `webhook-id`, when it sent one fit to store.
    pub webhook_id: Option<WebhookId>,
    /// For a reused `webhook-id`: the attempt that holds it.
    pub holder: Option<AttemptId>,
}

impl Refusal {
    /// The HTTP status its sender is answered.
    pub fn status(&self) -> u16 {
        self.error.status_code().as_u16()
    }

    /// The error code its sender is answered.
    pub fn code(&self) -> &'static str {
        self.error.code()
    }
}

/// Parses and stores an authentic delivery: its `webhook-id` as its authentication vouched
/// for it (Standard Webhooks only), and its body as received. `parsed` is told the SHA-256 of
/// the delivery's transaction number (the digest the attempt is stored with, and erasure
/// remembers) once the body has parsed, before the store is waited for.
///
/// `Err` when the store failed for a reason of its own (the database away, a row deleted
/// under the insert): nothing is judged of the delivery, and it is to be tried again.
pub async fn authentic(
    writer: &AttemptWriter,
    keys: &PayloadKeys,
    webhook_id: Option<&[u8]>,
    body: &[u8],
    parsed: impl FnOnce(&[u8; 32]),
) -> Result<Outcome, WriteError> {
    let refused = |error, webhook_id| {
        Ok(Outcome::Refused(Refusal {
            error,
            webhook_id,
            holder: None,
        }))
    };
    let webhook_id = match webhook_id.map(WebhookId::parse).transpose() {
        Ok(webhook_id) => webhook_id,
        Err(error) => {
            let error = ApiError::bad_request("invalid_webhook_id", format!("webhook-id {error}"));
            return refused(error, None);
        }
    };
    let delivery = match Delivery::parse(body) {
        Ok(delivery) => delivery,
        Err(error) => return refused(refusal(error), webhook_id),
    };
    let attempt = NewAttempt::new(&delivery, webhook_id.as_ref(), keys);
    parsed(&attempt.identification);
    let stored = writer.store(attempt).await;
    match stored {
        Err(error) if error.is_unstorable() => {
            // The parser refuses every value known to fail the store; this is the net for
            // one it does not know, so that the delivery is kept and its sender told.
            let (sqlstate, constraint) = error.refusal().unzip();
            tracing::warn!(
                sqlstate,
                constraint = constraint.flatten(),
                "the database refused a value of an authentic delivery"
            );
            Ok(Outcome::Refused(Refusal {
                error: ApiError::unprocessable(
                    "invalid_webhook_payload",
                    "The delivery holds a value that cannot be stored.",
                ),
                webhook_id,
                holder: None,
            }))
        }
        Err(error) => Err(error),
        Ok(Stored::New {
            id,
            signing_registered,
        }) => Ok(Outcome::Stored {
            id,
            signing_registered,
            result: delivery.result,
        }),
        Ok(Stored::Duplicate { id }) => Ok(Outcome::Duplicate { id }),
        Ok(Stored::WebhookIdReused { holder }) => Ok(Outcome::Refused(Refusal {
            error: ApiError::WebhookIdReused,
            webhook_id,
            holder: Some(holder),
        })),
        Ok(Stored::Erased) => Ok(Outcome::Erased),
    }
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
