//! PATCHED (idnow-attempts, vendor/README.md): the bodies of the answers the HTTP/1 dispatcher
//! gives by itself, before any service sees a request: 400 for a malformed request, 431 for a
//! head over its limits, 408 for a head that did not arrive in time, 500 for a stream the
//! decoder cannot follow. Unpatched, they have no body; an application whose every error
//! answer must carry a document of its own sets how they are worded, once per process.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header::CONTENT_TYPE, HeaderValue, StatusCode};

use crate::{ConnectionType, Response};

/// The content type and body of the dispatcher's own answer with the given status. Called
/// once per such answer, on the connection's worker; it should not block.
pub type OwnAnswerBody = fn(StatusCode) -> (HeaderValue, Bytes);

static OWN_ANSWER_BODY: OnceLock<OwnAnswerBody> = OnceLock::new();

/// Sets the bodies of the dispatcher's own answers for the whole process. The first call
/// wins: `false` when a body was set already (by this or another function).
pub fn set_own_answer_body(body: OwnAnswerBody) -> bool {
    OWN_ANSWER_BODY.set(body).is_ok()
}

/// `head` with the body set for its status (empty, as unpatched, when none was set), and
/// `Connection: close`: the dispatcher ends the connection after each of these answers.
pub(crate) fn own_answer(mut head: Response<()>) -> (Response<()>, Bytes) {
    head.head_mut().set_connection_type(ConnectionType::Close);
    match OWN_ANSWER_BODY.get() {
        Some(body) => {
            let (content_type, bytes) = body(head.status());
            head.headers_mut().insert(CONTENT_TYPE, content_type);
            (head, bytes)
        }
        None => (head, Bytes::new()),
    }
}
