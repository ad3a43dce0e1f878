//! `PUT /v1/persons/{person_id}/signings/{signing_id}`: which identification a signing uses.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::signing_path;
use crate::auth::Scope;
use crate::body::read_json_body;
use crate::domain::TransactionNumber;
use crate::error::{ApiError, DbResultExt as _};
use crate::persistence::signings::{self, Registration};
use crate::startup::AppState;
use crate::telemetry::RequestLog;

/// A registration is a few dozen bytes; nothing larger is read.
const BODY_LIMIT: usize = 16 * 1024;

#[derive(Deserialize)]
struct RegistrationBody {
    identification_id: String,
}

#[derive(Serialize)]
struct RegistrationView<'a> {
    person_id: &'a str,
    signing_id: &'a str,
    identification_id: &'a str,
}

pub async fn register(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    log: RequestLog,
) -> Result<HttpResponse, ApiError> {
    let client = state
        .api_keys
        .authorize(request.headers(), Scope::SigningsWrite)?;
    log.api_client(client);
    let (person_id, signing_id) = signing_path(&request)?;
    let body = read_json_body(&request, payload, state.body_limits(BODY_LIMIT)).await?;
    let registration: RegistrationBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable(
                "invalid_registration",
                "The body must be an object with a string identification_id.",
            )
        } else {
            ApiError::bad_request("invalid_json", "The body is not valid JSON.")
        }
    })?;
    let identification_id =
        TransactionNumber::parse(&registration.identification_id).map_err(|e| {
            ApiError::unprocessable("invalid_registration", format!("identification_id {e}"))
        })?;

    let mut conn = state.connection().await?;
    let registration = signings::register(&mut conn, &person_id, &signing_id, &identification_id)
        .await
        .db_context("registering the signing")?;
    conn.release();
    let mut response = match registration {
        Registration::Created => HttpResponse::Created(),
        Registration::Unchanged => HttpResponse::Ok(),
        Registration::Conflict(reason) => return Err(ApiError::Conflict(reason.as_detail())),
    };
    log.transaction_number(identification_id.as_str());
    Ok(response.json(RegistrationView {
        person_id: person_id.as_str(),
        signing_id: signing_id.as_str(),
        identification_id: identification_id.as_str(),
    }))
}
