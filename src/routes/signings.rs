//! `PUT /v1/persons/{person_id}/signings/{signing_id}`: which identification a signing uses.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::extract::{Authorized, SigningPath};
use super::openapi::{ResourceId, TransactionNumberText};
use crate::api_auth::scopes;
use crate::domain::TransactionNumber;
use crate::edge::body::read_json_body;
use crate::error::{ApiError, DbResultExt as _, ErrorBody};
use crate::persistence::signings::{self, Registration};
use crate::state::AppState;
use crate::telemetry::RequestLog;

/// A registration is a few dozen bytes; nothing larger is read.
const BODY_LIMIT: usize = 16 * 1024;

/// Which identification a signing uses.
#[derive(Deserialize, ToSchema)]
pub struct RegistrationBody {
    /// The IDnow transaction number.
    #[schema(value_type = TransactionNumberText)]
    identification_id: String,
}

impl RegistrationBody {
    /// `400 invalid_json` for a body that is not JSON; `422 invalid_registration` for JSON that
    /// is not an object with a string `identification_id`. The object is checked for first:
    /// serde's derived `Deserialize` also reads a struct from an array (`["tn"]`), and calls an
    /// array too long for it a syntax error.
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let not_a_registration = || {
            ApiError::unprocessable(
                "invalid_registration",
                "The body must be an object with a string identification_id.",
            )
        };
        let json: &RawValue = serde_json::from_slice(body)
            .map_err(|_| ApiError::bad_request("invalid_json", "The body is not valid JSON."))?;
        if !json.get().starts_with('{') {
            return Err(not_a_registration());
        }
        serde_json::from_str(json.get()).map_err(|_| not_a_registration())
    }
}

/// The registration as it stands.
#[derive(Serialize, ToSchema)]
pub struct RegistrationView<'a> {
    person_id: &'a str,
    signing_id: &'a str,
    identification_id: &'a str,
}

/// How the API description names [`RegistrationView`].
type Registered = RegistrationView<'static>;

/// Registers which identification (IDnow transaction number) a signing uses. Attempts that
/// arrived before join the signing at once.
#[utoipa::path(
    put,
    path = "/v1/persons/{person_id}/signings/{signing_id}",
    tag = "signings",
    operation_id = "register_signing",
    params(
        ("person_id" = ResourceId, Path, description = "The person's id."),
        ("signing_id" = ResourceId, Path, description = "The signing's id."),
    ),
    request_body(content = RegistrationBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The same registration again: nothing changed.", body = Registered,
            links(
                ("ListIdnowAttempts" = (operation_id = "list_idnow_attempts", parameters(("person_id" = "$request.path.person_id"), ("signing_id" = "$request.path.signing_id")))),
                ("ErasePerson" = (operation_id = "erase_person", parameters(("person_id" = "$request.path.person_id")))),
            )),
        (status = 201, description = "Registered.", body = Registered,
            links(
                ("ListIdnowAttempts" = (operation_id = "list_idnow_attempts", parameters(("person_id" = "$request.path.person_id"), ("signing_id" = "$request.path.signing_id")))),
                ("ErasePerson" = (operation_id = "erase_person", parameters(("person_id" = "$request.path.person_id")))),
            )),
        (status = 400, description = "`invalid_path_parameter`, or `invalid_json`: the body is not JSON.", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no valid bearer token.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`."))),
        (status = 403, description = "`unauthorized_action`: the token lacks scope `signings:write`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the signing is registered with another identification, or the identification belongs to another signing.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 16 KiB.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a declared content type that is not JSON.", body = ErrorBody),
        (status = 422, description = "`invalid_registration`: not an object with a valid string `identification_id`.", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the service cannot take the request now (the database is away or slow, the process holds as many request bodies as it allows itself, the request timeout passed, or the process is shutting down); retry.", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearer" = ["signings:write"])),
)]
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
    let registration = RegistrationBody::parse(&body)?;
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
    log.identification(&identification_id.digest());
    Ok(response.json(RegistrationView {
        person_id: person_id.as_str(),
        signing_id: signing_id.as_str(),
        identification_id: identification_id.as_str(),
    }))
}
