//! The request edge: what every request passes before, and while, a handler serves it, and
//! the limits that bound what any client, authenticated or not, can make the process hold.
//!
//! - [`client_address`]: who a request comes from, behind trusted proxies.
//! - [`listener`]: the socket, dual-stack on all interfaces.
//! - [`limits`]: the size of a request's headers (431) and the time to its answer (503).
//! - [`body`]: reading bodies within a size, a time and a process-wide byte budget (413, 408,
//!   503), and closing connections whose body was left unread.
//! - [`answers`]: the listings' answers within a process-wide byte budget (503), written in
//!   pieces that give their room back as they go out.
//! - [`connection`]: connections whose client takes no answers (closed after the send timeout).
//! - [`linger`]: a connection the service closes first is read on, within bounds, until its
//!   client closes too, so that a client still sending is not reset before it reads its answer.
//! - [`refusals`]: what actix-http refuses itself before any route, counted rather than logged.
//! - [`contract_shape`]: actix's own error answers in the contract's error body.

pub mod answers;
pub mod body;
pub mod client_address;
pub mod connection;
pub mod limits;
pub mod linger;
pub mod listener;
pub mod refusals;

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::HttpResponse;

use self::answers::PageBudget;
use self::body::{BodyBudget, BodyLimits};
use crate::configuration::HttpSettings;
use crate::error::ApiError;

/// The limits requests are served under (the `http.*` settings), as the handlers that read
/// bodies need them.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// Largest webhook body accepted (413 beyond).
    pub webhook_body: usize,
    /// Time a client has to send its body (408 beyond).
    pub body_read_timeout: Duration,
    /// The process' bound on request body bytes held at once, shared by every worker.
    pub body_budget: BodyBudget,
    /// The process' bound on listing answer bytes held at once, shared by every worker.
    pub page_budget: PageBudget,
}

impl EdgeLimits {
    pub fn new(http: &HttpSettings) -> Self {
        Self {
            webhook_body: http.body_limit,
            body_read_timeout: http.body_read_timeout,
            body_budget: BodyBudget::new(http.body_budget, http.body_budget_per_client),
            page_budget: PageBudget::new(http.page_budget),
        }
    }

    /// The limits a body of at most `size` bytes is read under.
    pub fn body(&self, size: usize) -> BodyLimits<'_> {
        BodyLimits {
            size,
            timeout: self.body_read_timeout,
            budget: &self.body_budget,
            client: None,
        }
    }
}

/// Safety net for error answers that did not come from an [`ApiError`] (actix's own, or a
/// future route that forgets): whatever their body, it becomes the contract's.
pub fn contract_shape<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_ours = response
        .response()
        .error()
        .is_some_and(|error| error.as_error::<ApiError>().is_some());
    if is_ours {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let cause = match response.response().error() {
        Some(error) => anyhow::anyhow!("{error}"),
        None => anyhow::anyhow!("answered {status} by the HTTP layer"),
    };
    // from_error keeps the error on the response, for the request's log line.
    let rendered = HttpResponse::from_error(ApiError::Foreign { status, cause });
    let (request, original) = response.into_parts();
    let mut rendered = rendered.map_into_boxed_body();
    // Keep headers such as `Allow` that the original answer carried.
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let response: ServiceResponse<BoxBody> = ServiceResponse::new(request, rendered);
    Ok(ErrorHandlerResponse::Response(
        response.map_into_right_body(),
    ))
}
