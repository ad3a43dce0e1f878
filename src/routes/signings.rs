//! `PUT /v1/persons/{person_id}/signings/{signing_id}`: which identification a signing uses.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::extract::{Authorized, SigningPath};
use crate::api_auth::scopes;
use crate::domain::TransactionNumber;
use crate::edge::body::read_json_body;
use crate::error::{ApiError, DbResultExt as _};
use crate::persistence::signings::{self, Registration};
use crate::state::AppState;
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
    _client: Authorized<scopes::SigningsWrite>,
    SigningPath {
        person_id,
        signing_id,
    }: SigningPath,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    log: RequestLog,
) -> Result<HttpResponse, ApiError> {
    let body = read_json_body(&request, payload, state.limits.body(BODY_LIMIT)).await?;
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

    let registration = state
        .database
        .run(async |conn| {
            signings::register(conn, &person_id, &signing_id, &identification_id).await
        })
        .await
        .db_context("registering the signing")?;
    let mut response = match registration {
        Registration::Created => HttpResponse::Created(),
        Registration::Unchanged => HttpResponse::Ok(),
        Registration::Conflict(reason) => return Err(ApiError::Conflict(reason)),
    };
    log.transaction_number(identification_id.as_str());
    Ok(response.json(RegistrationView {
        person_id: person_id.as_str(),
        signing_id: signing_id.as_str(),
        identification_id: identification_id.as_str(),
    }))
}
