//! Limits of a request as a whole: its headers' size and the time to its answer.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HOST;
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use crate::error::ApiError;

/// 431 for requests whose header fields, names and values together, exceed `limit`; 400
/// `malformed_request` for a `Host` that is not one (RFC 9112 §3.2: a server MUST).
///
/// actix-http itself refuses more than 96 header fields and heads beyond its read buffer
/// (431, before any route, with the body of `refusals::own_answer_body`), and a missing or
/// repeated `Host`; this is the tighter limit the service chooses, and the check of the
/// `Host` value actix-http does not make.
pub async fn check_head(
    limit: usize,
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let refusal = if size > limit {
        Some(ApiError::HeadersTooLarge(limit))
    } else if !request
        .headers()
        .get(HOST)
        .is_none_or(|host| is_host(host.as_bytes()))
    {
        Some(ApiError::bad_request(
            "malformed_request",
            "The Host header is not a host and port.",
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        let (request, _payload) = request.into_parts();
        return Ok(answer(request, refusal));
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Whether `value` is a `Host` field value: `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986
/// §3.2.2), or empty. An IP literal in brackets is an IPv6 address; a name is unreserved
/// characters, percent-encodings and sub-delimiters; a port is digits. No user info.
fn is_host(value: &[u8]) -> bool {
    let (host_is_valid, port) = match value.strip_prefix(b"[") {
        Some(literal) => {
            let Some(end) = literal.iter().position(|&byte| byte == b']') else {
                return false;
            };
            let address = std::str::from_utf8(&literal[..end]).ok();
            let is_ipv6 = address.is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
            (is_ipv6, &literal[end + 1..])
        }
        None => match value.iter().rposition(|&byte| byte == b':') {
            // No `http` URI has an empty host (RFC 9110 §4.2.1), so no port goes without one.
            Some(colon) => {
                let (host, port) = value.split_at(colon);
                (!host.is_empty() && is_reg_name(host), port)
            }
            None => (is_reg_name(value), &[][..]),
        },
    };
    let port_is_digits = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_is_valid && port_is_digits
}

/// RFC 3986's `reg-name`, which an IPv4 address also is: `*( unreserved / pct-encoded /
/// sub-delims )`.
fn is_reg_name(name: &[u8]) -> bool {
    let mut rest = name;
    while let Some((&byte, after)) = rest.split_first() {
        rest = match byte {
            b'%' => match after {
                [high, low, after @ ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                    after
                }
                _ => return false,
            },
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => after,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => after,
            _ => return false,
        };
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_a_name_or_address_and_a_port() {
        for host in [
            "",
            "idnow",
            "idnow-attempts.idnow-attempts.svc.cluster.local",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[2001:db8::1]",
            "a.b-c_d~e",
            "x:",
            "x%41y",
            "x,y",
        ] {
            assert!(is_host(host.as_bytes()), "{host:?}");
        }
        for host in [
            "a b", "u@x", "x:abc", "x:-1", "[::1", "[::1]x", "[x]:80", "x/y", "\"x\"", "x, y",
            "x%zz", "x%4", ":80:80", "x\u{e9}", ":80", ":",
        ] {
            assert!(!is_host(host.as_bytes()), "{host:?}");
        }
    }
}
