//! Reading request bodies at the edge, before anything knows who sent them.
//!
//! A webhook's signature can only be checked over its whole body, so a signed delivery's body
//! is read before the sender is known (a delivery without a signature is decided by its
//! headers first: `routes::webhooks`). What an unauthenticated client can make the process
//! hold is therefore bounded twice: each body by the body limit (413), and all bodies together by a
//! process-wide [`BodyBudget`] (503 with `Retry-After` beyond it), of which the bodies of one
//! client address may hold a share only. Buffers grow with the bytes that arrive, never with
//! what a `Content-Length` promises.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpRequest};
use futures_util::{Stream, StreamExt as _};
use prometheus::{IntCounterVec, Opts};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The body bytes that all requests of the process may hold at once, and the bodies of one
/// client address at most `per_client` of them.
///
/// Counted as bytes arrive, not as a `Content-Length` declares them: a sender that declares a
/// megabyte and sends nothing holds nothing, and one that sends takes its share only while
/// its request lasts (the body read timeout bounds that). Without the share per client, one
/// sender trickling bodies on many connections held the whole budget for as long as it kept
/// on, and every other sender's delivery was answered 503 (a red-team session: 15 of 32
/// signed deliveries, against 100 connections of one address sending 16 KiB every 0.45 s).
#[derive(Debug, Clone)]
pub struct BodyBudget {
    available: Arc<Semaphore>,
    total: usize,
    per_client: usize,
    by_client: ByClient,
    /// `http_request_bodies_refused_total`: bodies refused for want of room, by
    /// [`Refusal`] (clones count together).
    refused: IntCounterVec,
}

/// Bytes held by the bodies of each client now, by [`client_key`]; an entry lives while its
/// client holds any, so there are never more entries than connections held.
type ByClient = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Why a body found no room in the [`BodyBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The process holds the whole budget.
    Budget,
    /// The sender's client address holds its share.
    ClientShare,
}

impl Refusal {
    pub const ALL: [Self; 2] = [Self::Budget, Self::ClientShare];

    /// The `reason` label of `http_request_bodies_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Budget => "budget",
            Self::ClientShare => "client_share",
        }
    }
}

fn refusals_counter() -> IntCounterVec {
    let counter = IntCounterVec::new(
        Opts::new(
            "http_request_bodies_refused_total",
            "Request bodies answered 503 unread for want of room, by reason: the whole body \
             budget held (`budget`), or the sender's client address holding its share of it \
             (`client_share`).",
        ),
        &["reason"],
    )
    .expect("a valid metric definition");
    for refusal in Refusal::ALL {
        counter.with_label_values(&[refusal.as_str()]);
    }
    counter
}

/// The key a client's share is kept under: its address, or for IPv6 its /64, the block one
/// host or network is given (RFC 6177), so that one sender does not get a share for every
/// address of its block.
fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(address) => IpAddr::V6((u128::from(address) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

impl BodyBudget {
    pub fn new(total: usize, per_client: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            available: Arc::new(Semaphore::new(total)),
            total,
            per_client: per_client.min(total),
            by_client: Arc::default(),
            refused: refusals_counter(),
        }
    }

    /// `http_request_bodies_refused_total`, for the registry.
    pub fn refusals(&self) -> &IntCounterVec {
        &self.refused
    }

    /// The answer to a body that finds no room, counted.
    fn refuse(&self, refusal: Refusal) -> ApiError {
        self.refused.with_label_values(&[refusal.as_str()]).inc();
        ApiError::Overloaded
    }

    /// Whether `bytes` more fit now, in the budget and in `share`'s client's share: checked,
    /// not taken.
    fn fits(&self, share: &Share, bytes: usize) -> Result<(), ApiError> {
        if let Some(client) = &share.client {
            // Checked only: the lock goes at once.
            drop(self.room_of(client, bytes)?);
        }
        if bytes > self.free() {
            return Err(self.refuse(Refusal::Budget));
        }
        Ok(())
    }

    /// Body bytes held by requests right now.
    pub fn in_use(&self) -> usize {
        self.total - self.free()
    }

    fn free(&self) -> usize {
        self.available.available_permits()
    }

    /// A share of nothing yet, for a body from `client` (when it is known).
    fn share(&self, client: Option<IpAddr>) -> Share {
        Share {
            permit: None,
            counted: 0,
            client: client.map(|client| (client_key(client), self.by_client.clone())),
        }
    }

    /// The clients' counts, locked, and the bytes `client` holds now, when `bytes` more fit
    /// its share.
    fn room_of<'c>(
        &self,
        (key, by_client): &'c (IpAddr, ByClient),
        bytes: usize,
    ) -> Result<(MutexGuard<'c, HashMap<IpAddr, usize>>, usize), ApiError> {
        let held = by_client.lock().unwrap_or_else(PoisonError::into_inner);
        let of_client = held.get(key).copied().unwrap_or(0);
        if of_client + bytes > self.per_client {
            return Err(self.refuse(Refusal::ClientShare));
        }
        Ok((held, of_client))
    }

    /// Takes `bytes` more for `share`, or refuses at once: a request never waits for memory.
    fn take(&self, share: &mut Share, bytes: usize) -> Result<(), ApiError> {
        // The client's count stays locked until the budget has given the bytes too.
        let room = share
            .client
            .as_ref()
            .map(|client| self.room_of(client, bytes))
            .transpose()?;
        let taken = u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.available.clone().try_acquire_many_owned(bytes).ok())
            .ok_or_else(|| self.refuse(Refusal::Budget))?;
        if let (Some((mut held, of_client)), Some((key, _))) = (room, &share.client) {
            held.insert(*key, of_client + bytes);
        }
        match &mut share.permit {
            Some(permit) => permit.merge(taken),
            None => share.permit = Some(taken),
        }
        share.counted += bytes;
        Ok(())
    }
}

/// What one body holds of the [`BodyBudget`]: given back when it is dropped.
#[derive(Debug)]
struct Share {
    permit: Option<OwnedSemaphorePermit>,
    counted: usize,
    client: Option<(IpAddr, ByClient)>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let Some((client, by_client)) = &self.client else {
            return;
        };
        if self.counted == 0 {
            return;
        }
        let mut held = by_client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(of_client) = held.get_mut(client) {
            *of_client = of_client.saturating_sub(self.counted);
            if *of_client == 0 {
                held.remove(client);
            }
        }
    }
}

/// A request body, holding its share of the [`BodyBudget`] until it is dropped.
#[derive(Debug)]
pub struct Body {
    bytes: web::Bytes,
    _share: Share,
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The limits a body is read under.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits<'a> {
    /// Largest body accepted (413 beyond).
    pub size: usize,
    /// Time the client has to send it (408 beyond).
    pub timeout: Duration,
    pub budget: &'a BodyBudget,
    /// The sender's address, whose bodies together hold at most the budget's share per
    /// client; `None` when unknown (then the whole budget bounds it).
    pub client: Option<IpAddr>,
}

impl BodyLimits<'_> {
    /// These limits, for a body from `client`.
    #[must_use]
    pub fn from_client(self, client: Option<IpAddr>) -> Self {
        Self { client, ..self }
    }
}

/// The whole body of a JSON request, read within `limits`.
///
/// Before anything is read: 415 for a declared content type that is not JSON or a content
/// coding other than `identity`, 413 for a declared length over the limit, 503 when the
/// budget cannot hold the declared length now. While reading: 413 as soon as the body
/// outgrows the limit, 503 as soon as the budget runs out, 408 when the client is too slow.
pub async fn read_json_body(
    request: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits<'_>,
) -> Result<Body, ApiError> {
    check_body_head(request, limits)?.read(payload).await
}

/// What [`read_json_body`] refuses by the request's head alone, before the body: 415 for a
/// declared content type that is not JSON or a content coding other than `identity`, 413 for
/// a declared length over the limit. For a caller with checks of its own to make between
/// these and the body's reading, which [`CheckedHead::read`] does.
pub fn check_body_head<'a>(
    request: &HttpRequest,
    limits: BodyLimits<'a>,
) -> Result<CheckedHead<'a>, ApiError> {
    require_identity_encoding(request)?;
    require_json(request)?;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    match declared {
        Some(declared) if declared > limits.size => {
            Err(ApiError::PayloadTooLarge { limit: limits.size })
        }
        _ => Ok(CheckedHead { declared, limits }),
    }
}

/// A request whose head [`check_body_head`] let through: its body is still to read.
#[derive(Debug)]
pub struct CheckedHead<'a> {
    /// Its `Content-Length`, within the limit.
    declared: Option<usize>,
    limits: BodyLimits<'a>,
}

impl CheckedHead<'_> {
    /// The whole body, read within the limits: 503 when the budget cannot hold the declared
    /// length now; then 413 as soon as the body outgrows the limit, 503 as soon as the budget
    /// runs out, 408 when the client is too slow.
    pub async fn read(self, payload: web::Payload) -> Result<Body, ApiError> {
        let timeout = self.limits.timeout;
        tokio::time::timeout(timeout, read_within(self, payload))
            .await
            .map_err(|_elapsed| ApiError::BodyTimeout(timeout.as_millis()))?
    }
}

async fn read_within(head: CheckedHead<'_>, mut payload: web::Payload) -> Result<Body, ApiError> {
    let CheckedHead { declared, limits } = head;
    let mut held = Held {
        budget: limits.budget,
        share: limits.budget.share(limits.client),
    };
    if let Some(declared) = declared {
        // Checked, not taken: what is taken is what arrives.
        limits.budget.fits(&held.share, declared)?;
    }
    // The body while it is a single chunk, as small bodies arrive: kept without a copy.
    let mut single: Option<web::Bytes> = None;
    let mut joined = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::UnreadableBody)?;
        let received = single.as_ref().map_or(joined.len(), web::Bytes::len) + chunk.len();
        if received > limits.size {
            return Err(ApiError::PayloadTooLarge { limit: limits.size });
        }
        if joined.is_empty() && single.is_none() {
            held.grow_to(chunk.len())?;
            single = Some(chunk);
            continue;
        }
        if received > joined.capacity() {
            // Doubling keeps the copies few; never past the limit, and counted before the
            // memory is taken. Allocated at exactly that size: `reserve` may double past it,
            // and past the limit (a review: 1,280,000 bytes held for a 1,040,000-byte body
            // in chunks of 10,000, charged to a share that may be the limit itself).
            let capacity = received.max(joined.capacity() * 2).min(limits.size);
            held.grow_to(capacity)?;
            let mut grown = web::BytesMut::with_capacity(capacity);
            grown.extend_from_slice(&joined);
            joined = grown;
        }
        if let Some(first) = single.take() {
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes: single.unwrap_or_else(|| joined.freeze()),
        _share: held.share,
    })
}

/// The share of the budget one body holds, as its buffers grow.
struct Held<'a> {
    budget: &'a BodyBudget,
    share: Share,
}

impl Held<'_> {
    /// Holds `bytes` in all (more if it holds more already), or refuses at once: a request
    /// never waits for memory.
    fn grow_to(&mut self, bytes: usize) -> Result<(), ApiError> {
        let more = bytes.saturating_sub(self.share.counted);
        if more > 0 {
            self.budget.take(&mut self.share, more)?;
        }
        Ok(())
    }
}

/// Middleware: a request whose body was not read to its end ends its connection after the
/// answer.
///
/// actix-http 3 drains a chunked body that its handler dropped, with no limit of time or
/// size, to keep the connection alive: a client trickling a body after an early answer (401,
/// 413, 415, a full body budget, a route that reads no body) would hold one of the process'
/// connections as long as it liked. When the payload is still alive as the answer ends,
/// actix-http closes the connection instead: so the answer's body keeps it alive.
pub async fn close_on_unread_body(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, KeepingPayload>>, actix_web::Error> {
    let payload = request.take_payload();
    if matches!(payload, Payload::None) {
        // Nothing to read, nothing to keep: the answer as it is.
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let payload = Rc::new(RefCell::new(payload));
    request.set_payload(Payload::Stream {
        payload: Box::pin(SharedPayload(payload.clone())),
    });
    let response = next.call(request).await?;
    Ok(response
        .map_body(move |_, body| KeepingPayload {
            body: body.boxed(),
            _payload: payload,
        })
        .map_into_right_body())
}

/// The request's payload, read through by the handler and kept alive by the response.
struct SharedPayload(Rc<RefCell<Payload>>);

impl Stream for SharedPayload {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.borrow_mut().poll_next_unpin(cx)
    }
}

/// A response body that keeps the request's payload until it has been sent; see
/// [`close_on_unread_body`].
pub struct KeepingPayload {
    body: BoxBody,
    _payload: Rc<RefCell<Payload>>,
}

impl std::fmt::Debug for KeepingPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepingPayload").finish_non_exhaustive()
    }
}

impl MessageBody for KeepingPayload {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// 415 `unsupported_content_encoding` for a body in any content coding but `identity`: the
/// service decodes none, and a compressed body must not be verified and parsed as if it
/// were the JSON itself.
fn require_identity_encoding(request: &HttpRequest) -> Result<(), ApiError> {
    let identity = request.headers().get_all(CONTENT_ENCODING).all(|value| {
        value.to_str().is_ok_and(|codings| {
            codings
                .split(',')
                .map(str::trim)
                .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
        })
    });
    if identity {
        Ok(())
    } else {
        Err(ApiError::UnsupportedContentEncoding)
    }
}

/// 415 for a declared content type that is not JSON (`application/json` or `*/*+json`). A
/// request that declares none is read as JSON; one that declares two, as neither.
fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    // A single-value field sent twice (RFC 9110 §5.3) declares no one type: read by its first
    // value here and by its last at a proxy, one body would be two things.
    if request.headers().get_all(CONTENT_TYPE).nth(1).is_some() {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mime = request
        .mime_type()
        .map_err(|_| ApiError::UnsupportedMediaType)?;
    match mime {
        None => Ok(()),
        Some(mime)
            if mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_budget_counts_what_is_held_and_refuses_beyond_it() {
        let budget = BodyBudget::new(100, 100);
        let mut first = budget.share(None);
        budget.take(&mut first, 60).expect("fits");
        budget.take(&mut first, 30).expect("fits");
        assert_eq!(budget.in_use(), 90);
        let mut second = budget.share(None);
        assert!(matches!(
            budget.take(&mut second, 11),
            Err(ApiError::Overloaded)
        ));
        budget.take(&mut second, 10).expect("fits exactly");
        drop(first);
        assert_eq!(budget.in_use(), 10);
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn one_client_holds_its_share_at_most_and_others_the_rest() {
        let budget = BodyBudget::new(100, 40);
        let [one, other, other_too]: [IpAddr; 3] = [
            [192, 0, 2, 1].into(),
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1].into(),
            // Of the same /64: the same client.
            [0x2001, 0xdb8, 0, 0, 0xffff, 0, 0, 7].into(),
        ];
        let mut first = budget.share(Some(one));
        budget.take(&mut first, 30).expect("fits");
        let mut second = budget.share(Some(one));
        budget
            .take(&mut second, 10)
            .expect("fits the share exactly");
        let mut third = budget.share(Some(one));
        assert!(matches!(
            budget.take(&mut third, 1),
            Err(ApiError::Overloaded)
        ));
        // Another client, and a body of no known client, take from the rest.
        let mut others = budget.share(Some(other));
        budget.take(&mut others, 40).expect("its own share");
        let mut same_block = budget.share(Some(other_too));
        assert!(budget.fits(&same_block, 1).is_err());
        assert!(matches!(
            budget.take(&mut same_block, 1),
            Err(ApiError::Overloaded)
        ));
        let mut unknown = budget.share(None);
        budget.take(&mut unknown, 20).expect("the rest");
        assert_eq!(budget.in_use(), 100);
        let refused = |refusal: Refusal| {
            budget
                .refusals()
                .with_label_values(&[refusal.as_str()])
                .get()
        };
        assert_eq!(refused(Refusal::ClientShare), 3);
        assert_eq!(refused(Refusal::Budget), 0);
        // What a body held is given back to its client's share too, entry and all.
        drop(first);
        budget.take(&mut third, 30).expect("fits again");
        drop((second, third, others, same_block, unknown));
        assert_eq!(budget.in_use(), 0);
        assert!(budget.by_client.lock().expect("not poisoned").is_empty());
    }

    /// A body that arrives in pieces holds no more of the budget than the body limit: its
    /// buffer grows by doubling, but to the size counted and never past the limit (`reserve`
    /// doubled past both, and a 1,040,000-byte body in pieces was refused by a budget and
    /// share of 1 MiB, found by a review).
    #[actix_web::test]
    async fn a_body_in_pieces_holds_its_limit_at_most() {
        use actix_web::FromRequest as _;

        const LIMIT: usize = 1 << 20;
        let budget = BodyBudget::new(LIMIT, LIMIT);
        let mut pieces = vec![web::Bytes::from(vec![b' '; 65_535])];
        let mut sent = 65_535;
        while sent < 1_040_000 {
            let piece = (1_040_000 - sent).min(10_000);
            pieces.push(web::Bytes::from(vec![b' '; piece]));
            sent += piece;
        }
        let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, PayloadError>));
        let (request, _) = TestRequest::post().to_http_parts();
        let mut payload = Payload::from(
            Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<web::Bytes, PayloadError>>>>
        );
        let payload = web::Payload::from_request(&request, &mut payload)
            .await
            .expect("a payload");
        let limits = BodyLimits {
            size: LIMIT,
            timeout: Duration::from_secs(5),
            budget: &budget,
            client: Some([192, 0, 2, 1].into()),
        };
        let body = read_json_body(&request, payload, limits)
            .await
            .expect("a body within the limit fits a budget and share of the limit");
        assert_eq!(body.len(), 1_040_000);
        assert!(budget.in_use() <= LIMIT, "{}", budget.in_use());
        drop(body);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_client_is_its_address_or_its_ipv6_64() {
        let key = |text: &str| client_key(text.parse().expect("an address"));
        // IPv4, also written as IPv4-mapped IPv6, is itself: each address its own client.
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert!(key("::ffff:192.0.2.1").is_ipv4());
        assert_ne!(key("::ffff:192.0.2.1"), key("::ffff:192.0.2.2"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn only_the_identity_coding_is_read() {
        for accepted in [
            None,
            Some("identity"),
            Some("IDENTITY"),
            Some(""),
            Some(" identity , "),
        ] {
            let mut request = TestRequest::default();
            if let Some(coding) = accepted {
                request = request.insert_header((CONTENT_ENCODING, coding));
            }
            assert!(
                require_identity_encoding(&request.to_http_request()).is_ok(),
                "{accepted:?}"
            );
        }
        for refused in [
            "gzip",
            "br",
            "identity, gzip",
            "deflate",
            "x-gzip",
            "compress",
        ] {
            let request = TestRequest::default()
                .insert_header((CONTENT_ENCODING, refused))
                .to_http_request();
            assert!(
                matches!(
                    require_identity_encoding(&request),
                    Err(ApiError::UnsupportedContentEncoding)
                ),
                "{refused}"
            );
        }
        let twice = TestRequest::default()
            .append_header((CONTENT_ENCODING, "identity"))
            .append_header((CONTENT_ENCODING, "gzip"))
            .to_http_request();
        assert!(require_identity_encoding(&twice).is_err());
    }
}
