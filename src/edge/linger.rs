//! A lingering close: a connection that ends while its client is still sending is read on for
//! a moment, and what arrives thrown away, before the socket is closed.
//!
//! Linux resets a connection that is closed with received bytes unread (RFC 2525, 2.17), and a
//! client that is still writing its request then fails on its write, and often never reads the
//! answer that was sent to it: the `431` for a head of megabytes, the `400` for a malformed
//! one sent in full, an answer to a body sent on past its limit. Measured against the release
//! build before this module: Python's `http.client` sending a 4 MB header field got
//! `ConnectionResetError` instead of the `431` (a 1 MB one still fit the socket buffers and got
//! it). So, as nginx's `lingering_close` does: the service's side is shut down (the client
//! reads the answer and then the end of it), and the rest of the request is read and dropped
//! until the client stops sending, or for [`LINGER_FOR`] at most.
//!
//! What anyone can make the process hold here stays bounded: at most [`MAX_LINGERING`]
//! connections linger at once, each with a read buffer of [`DISCARD_BUFFER`] bytes; beyond
//! that, a connection is closed at once, as without this module.

use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest a closing connection is read on: enough for megabytes at the speed of a slow link,
/// short enough that lingering never keeps a connection longer than a request head may take.
pub const LINGER_FOR: Duration = Duration::from_secs(2);

/// Connections lingering at once, in the whole process.
pub const MAX_LINGERING: usize = 64;

/// Bytes read and thrown away per read.
const DISCARD_BUFFER: usize = 8 * 1024;

static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Called as the last handle on a connection's socket goes: if the client has sent bytes
/// that nobody read, the socket is kept open a moment longer and read to its end (on the
/// current Tokio runtime). Otherwise, or outside a runtime, or with [`MAX_LINGERING`]
/// connections already lingering, nothing is done and the socket closes as it would have.
pub fn close_lingering(socket: &OwnedFd) {
    if !bytes_unread(socket) {
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
    // The answer is in the socket's send queue already; the end of the stream follows it.
    let socket = std::net::TcpStream::from(socket);
    if socket.shutdown(Shutdown::Write).is_err() {
        return;
    }
    runtime.spawn(async move {
        let _slot = slot;
        // Ends at the client's end of stream, at an error (a reset), or at the deadline.
        let _ = tokio::time::timeout(LINGER_FOR, read_to_end(socket)).await;
    });
}

/// Whether bytes the client sent wait in the socket unread (its end of stream does not
/// count: it resets nothing).
fn bytes_unread(socket: &OwnedFd) -> bool {
    let mut byte = [MaybeUninit::uninit()];
    // Non-blocking: Tokio set the socket so. An error is no reason to linger.
    matches!(socket2::SockRef::from(socket).peek(&mut byte), Ok(n) if n > 0)
}

async fn read_to_end(socket: std::net::TcpStream) -> io::Result<()> {
    let socket = tokio::net::TcpStream::from_std(socket)?;
    let mut discard = [0; DISCARD_BUFFER];
    loop {
        socket.readable().await?;
        match socket.try_read(&mut discard) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
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
