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
//! it closes its side too, for [`LINGER_FOR`] and [`LINGER_BYTES`] at most, and no longer than
//! [`LINGER_IDLE`] without a byte. Whether the client still sends cannot be told from the
//! socket as it closes (the rest of a request may be on its way), so every connection the
//! service closes first lingers, unless its client's end of stream has already arrived; a
//! client that closes once it has its answer, as clients do, ends the linger within a round
//! trip.
//!
//! What anyone can make the process hold or spend here stays bounded: at most
//! [`MAX_LINGERING`] connections of a server linger at once, each with a read buffer of
//! [`DISCARD_BUFFER`] bytes, for at most [`LINGER_FOR`] and [`LINGER_BYTES`]; beyond that a
//! connection is closed at once, as without this module. A client that holds its place
//! without sending loses it after [`LINGER_IDLE`]. Reads go through Tokio's cooperative
//! budget, so a client that sends without pause cannot keep its worker from the requests it
//! serves.

use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

/// Longest a closing connection is read on: megabytes at the speed of a slow link.
pub const LINGER_FOR: Duration = Duration::from_secs(5);

/// Longest the client may send nothing while its connection lingers, as nginx's
/// `lingering_timeout`: a client that has stopped sending, but keeps its side open, costs its
/// place this long, not [`LINGER_FOR`]. Longer than the pause between a request's head and
/// its body over any network a webhook comes through.
pub const LINGER_IDLE: Duration = Duration::from_secs(1);

/// Most bytes read and thrown away per connection: far more than any request this service
/// takes (bodies are refused beyond `http.body_limit_bytes`, 1 MiB by default), and little
/// work (a few milliseconds of reads).
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;

/// Connections of one server lingering at once.
pub const MAX_LINGERING: usize = 256;

/// Bytes read and thrown away per read.
pub const DISCARD_BUFFER: usize = 8 * 1024;

/// The connections of one server that linger, at most [`MAX_LINGERING`] at once.
#[derive(Debug, Clone, Default)]
pub struct Lingering {
    count: Arc<AtomicUsize>,
}

impl Lingering {
    /// Called as the last handle on a connection's socket goes: unless the client has closed
    /// its side already, the socket is shut for writing and kept open a moment longer, read
    /// to its end (on the current Tokio runtime). Outside a runtime, or with
    /// [`MAX_LINGERING`] connections already lingering, the socket closes at once, as it
    /// would have.
    pub fn close(&self, socket: BorrowedFd<'_>) {
        if !client_may_send(socket) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(place) = self.take_place() else {
            return;
        };
        let Ok(socket) = socket.try_clone_to_owned() else {
            return;
        };
        // The answer is in the socket's send queue already; the end of the stream follows
        // it. An error here means the connection is gone (reset): nothing to linger for.
        let socket = std::net::TcpStream::from(socket);
        if socket.shutdown(Shutdown::Write).is_err() {
            return;
        }
        runtime.spawn(async move {
            let _place = place;
            // Ends at the client's end of stream, at an error (a reset), at the byte limit,
            // after a pause or at the deadline; then the socket closes.
            let _ = tokio::time::timeout(LINGER_FOR, discard(socket)).await;
        });
    }

    fn take_place(&self) -> Option<LingerPlace> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |lingering| {
                (lingering < MAX_LINGERING).then_some(lingering + 1)
            })
            .ok()
            .map(|_| LingerPlace(Arc::clone(&self.count)))
    }
}

/// Whether the client may still send: bytes of it wait unread, or nothing does and its end
/// of stream has not arrived either.
fn client_may_send(socket: BorrowedFd<'_>) -> bool {
    let mut byte = [MaybeUninit::uninit()];
    // Non-blocking: Tokio set the socket so.
    match socket2::SockRef::from(&socket).peek(&mut byte) {
        Ok(read) => read > 0,
        Err(error) => error.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Reads the client's bytes and drops them, until its end of stream, an error, a pause of
/// [`LINGER_IDLE`], or [`LINGER_BYTES`].
async fn discard(socket: std::net::TcpStream) -> io::Result<()> {
    let socket = tokio::net::TcpStream::from_std(socket)?;
    let mut rest = socket.take(LINGER_BYTES);
    let mut discard = [0; DISCARD_BUFFER];
    while let Ok(read) = tokio::time::timeout(LINGER_IDLE, rest.read(&mut discard)).await {
        if read? == 0 {
            break;
        }
    }
    Ok(())
}

/// One of the [`MAX_LINGERING`] places of a server, given back when dropped.
struct LingerPlace(Arc<AtomicUsize>);

impl Drop for LingerPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_max_lingering_connections_of_a_server_linger_at_once() {
        let lingering = Lingering::default();
        let taken: Vec<_> = std::iter::from_fn(|| lingering.take_place())
            .take(MAX_LINGERING + 1)
            .collect();
        assert_eq!(taken.len(), MAX_LINGERING);
        assert!(lingering.take_place().is_none());
        assert!(
            Lingering::default().take_place().is_some(),
            "another server's places are its own"
        );
        drop(taken);
        assert!(lingering.take_place().is_some());
    }
}
