//! A lingering close: a connection the service ends before its client does is read on for a
//! moment, and what arrives thrown away, before the socket is closed.
//!
//! Linux resets a connection that is closed with received bytes unread, or that receives bytes
//! after it was closed (RFC 2525, 2.17), and a client that is still writing its request then
//! fails on its write, and often never reads the answer that was sent to it: the `431` for a
//! head of megabytes, the `400` for a malformed head with a body behind it, the `413` for a
//! body sent on past its limit. Measured against the release build before this module:
//! Python's `http.client` sending a 4 MB header field got `ConnectionResetError` instead of
//! the `431` (a 1 MB one still fit the socket buffers and got it). So, as nginx's
//! `lingering_close` does: the service's side is shut down (the client reads the answer and
//! then the end of the stream), and whatever the client still sends is read and dropped until
//! it closes its side too, for [`LINGER_FOR`] and [`LINGER_BYTES`] at most. Whether the client
//! still sends cannot be told from the socket as it closes (the rest of a request may be on
//! its way), so every connection the service closes first lingers, unless its client's end
//! of stream has already arrived; a client that closes once it has its answer, as clients do,
//! ends the linger within a round trip.
//!
//! What anyone can make the process hold or spend here stays bounded: at most
//! [`MAX_LINGERING`] connections linger at once, each with a read buffer of
//! [`DISCARD_BUFFER`] bytes, for at most [`LINGER_FOR`] and [`LINGER_BYTES`]; beyond that a
//! connection is closed at once, as without this module. Reads go through Tokio's
//! cooperative budget, so a client that sends without pause cannot keep its worker from the
//! requests it serves.

use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

/// Longest a closing connection is read on: megabytes at the speed of a slow link, and no
/// longer than a request head may take to arrive.
pub const LINGER_FOR: Duration = Duration::from_secs(5);

/// Most bytes read and thrown away per connection: far more than any request this service
/// takes (bodies are refused beyond `http.body_limit_bytes`, 1 MiB by default), and little
/// work (a few milliseconds of reads).
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;

/// Connections lingering at once, in the whole process.
pub const MAX_LINGERING: usize = 64;

/// Bytes read and thrown away per read.
const DISCARD_BUFFER: usize = 8 * 1024;

static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Called as the last handle on a connection's socket goes: unless the client has closed its
/// side already, the socket is shut for writing and kept open a moment longer, read to its
/// end (on the current Tokio runtime). Outside a runtime, or with [`MAX_LINGERING`]
/// connections already lingering, the socket closes at once, as it would have.
pub fn close_lingering(socket: &OwnedFd) {
    if !client_may_send(socket) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(slot) = LingerSlot::take() else {
        return;
    };
    let Ok(socket) = socket.try_clone() else {
        return;
    };
    // The answer is in the socket's send queue already; the end of the stream follows it. An
    // error here means the connection is gone (reset): nothing to linger for.
    let socket = std::net::TcpStream::from(socket);
    if socket.shutdown(Shutdown::Write).is_err() {
        return;
    }
    runtime.spawn(async move {
        let _slot = slot;
        // Ends at the client's end of stream, at an error (a reset), at the byte limit or at
        // the deadline; then the socket closes.
        let _ = tokio::time::timeout(LINGER_FOR, discard(socket)).await;
    });
}

/// Whether the client may still send: bytes of it wait unread, or nothing does and its end
/// of stream has not arrived either.
fn client_may_send(socket: &OwnedFd) -> bool {
    let mut byte = [MaybeUninit::uninit()];
    // Non-blocking: Tokio set the socket so.
    match socket2::SockRef::from(socket).peek(&mut byte) {
        Ok(read) => read > 0,
        Err(error) => error.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Reads the client's bytes and drops them, until its end of stream, an error, or
/// [`LINGER_BYTES`].
async fn discard(socket: std::net::TcpStream) -> io::Result<()> {
    let socket = tokio::net::TcpStream::from_std(socket)?;
    let mut rest = socket.take(LINGER_BYTES);
    let mut discard = [0; DISCARD_BUFFER];
    while rest.read(&mut discard).await? > 0 {}
    Ok(())
}

/// One of the [`MAX_LINGERING`] places, given back when dropped.
struct LingerSlot;

impl LingerSlot {
    fn take() -> Option<Self> {
        LINGERING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |lingering| {
                (lingering < MAX_LINGERING).then_some(lingering + 1)
            })
            .ok()
            .map(|_| Self)
    }
}

impl Drop for LingerSlot {
    fn drop(&mut self) {
        LINGERING.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_max_lingering_connections_linger_at_once() {
        let taken: Vec<_> = std::iter::from_fn(LingerSlot::take)
            .take(MAX_LINGERING + 1)
            .collect();
        assert_eq!(taken.len(), MAX_LINGERING);
        assert!(LingerSlot::take().is_none());
        drop(taken);
        assert!(LingerSlot::take().is_some());
    }
}
