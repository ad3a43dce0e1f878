//! What API routes take from their request before their own work: the scope their client
//! needs, and the ids of their path. Extractors run in the order of the handler's arguments,
//! so `Authorized` comes first: 401/403 before anything else is judged.

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::api_auth::{scopes, ApiKeys};
use crate::domain::{IdError, PersonId, SigningId};
use crate::error::ApiError;
use crate::telemetry::RequestLog;

/// Proof that the request's bearer token grants scope `S`: 401 for a missing or unknown
/// token, 403 for a known client without the scope. The client's name goes on the request's
/// log line.
#[derive(Debug)]
pub struct Authorized<S>(PhantomData<S>);

impl<S: scopes::Required> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(keys) = request.app_data::<web::Data<ApiKeys>>() else {
            return ready(Err(ApiError::Unexpected(anyhow::anyhow!(
                "the API keys are not registered with the application"
            ))));
        };
        let authorized = keys.authorize(request.headers(), S::SCOPE).map(|client| {
            RequestLog::of(request).api_client(client);
            Self(PhantomData)
        });
        ready(authorized.map_err(ApiError::from))
    }
}

/// The `{person_id}` and `{signing_id}` of a path, parsed: 400 `invalid_path_parameter`
/// for either that is not an id.
#[derive(Debug)]
pub struct SigningPath {
    pub person_id: PersonId,
    pub signing_id: SigningId,
}

impl FromRequest for SigningPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Self::parse(request))
    }
}

/// The `{person_id}` of a path, parsed: 400 `invalid_path_parameter` for one that is not an
/// id.
#[derive(Debug)]
pub struct PersonPath(pub PersonId);

impl FromRequest for PersonPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let segment = request.match_info().get("person_id").unwrap_or_default();
        ready(
            PersonId::parse(segment).map(Self).map_err(|e| {
                ApiError::bad_request("invalid_path_parameter", format!("person_id {e}"))
            }),
        )
    }
}

impl SigningPath {
    fn parse(request: &HttpRequest) -> Result<Self, ApiError> {
        let segment = |name: &'static str| request.match_info().get(name).unwrap_or_default();
        let invalid = |name: &'static str| {
            move |e: IdError| ApiError::bad_request("invalid_path_parameter", format!("{name} {e}"))
        };
        Ok(Self {
            person_id: PersonId::parse(segment("person_id")).map_err(invalid("person_id"))?,
            signing_id: SigningId::parse(segment("signing_id")).map_err(invalid("signing_id"))?,
        })
    }
}
