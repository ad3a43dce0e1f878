//! Connections whose client does not take its answers.
//!
//! actix-http answers pipelined requests as fast as it reads them and keeps every answer the
//! socket cannot take yet in a buffer of its own; a client that sends requests and never
//! reads held its connection, and all actix had decoded and buffered for it, forever. So
//! before a request is served, [`pace`] checks the connection's socket: while the client does
//! not take what was already sent, the request waits, and with it every request behind it; a
//! client that takes nothing within the send timeout loses its connection, and with it what
//! actix had buffered for it.
//!
//! What actix-http holds for such a connection before any middleware runs, its read buffer
//! (at most 128 KiB) and up to 16 decoded requests, is bounded by our patch of it
//! (vendor/README.md): unpatched, it decoded every request in that buffer, thousands of
//! heads for tiny pipelined requests.

use std::any::Any;
use std::cell::OnceCell;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd as _, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tokio::io::Interest;

use super::answers::Progress;
use super::linger::Lingering;
use crate::error::ApiError;

/// A connection's socket, shared with actix-http's own handle on it (a duplicate
/// descriptor), for as long as the connection lasts.
#[derive(Debug)]
pub struct PeerSocket {
    /// Shared only with what watches an answer being written ([`PeerSocket::close_if_stalled`]),
    /// which must not keep the socket open once the connection is over: it holds a `Weak`.
    socket: Rc<OwnedFd>,
    /// Time the client may leave its answers unread.
    send_timeout: Duration,
    /// Registered with the reactor the first time the client falls behind: most connections
    /// never need it.
    waiting: OnceCell<tokio::net::TcpStream>,
    /// Where the socket goes when the connection is over.
    lingering: Lingering,
}

/// `TCP_NOTSENT_LOWAT` of every connection: the socket takes answer bytes while fewer than
/// this many wait unsent, and reads as writable (so [`pace`] lets the next request through)
/// only while fewer than half of it do (Linux since 5.0: `tcp_stream_memory_free`); bytes
/// sent and not yet acknowledged do not count. Without it the socket reads as writable until
/// its send buffer, which Linux grows to `tcp_wmem`'s maximum (4 MiB by default), is two
/// thirds full: 16 clients that pipelined `GET /health/live` and read nothing had the service
/// answer about 15,000 requests each (2.6 MiB unsent per socket, measured with `ss`) and use
/// half the machine's CPU for seconds before the pacing held them. For a client that reads,
/// 64 KiB left unsent when the worker is woken to write more is 50 µs of a 10 Gbit/s link.
const UNSENT_LIMIT: u32 = 128 * 1024;

/// For `HttpServer::on_connect`: keeps the new connection's socket with its data, the time
/// its client may leave answers unread, and where the socket lingers when the connection is
/// over; bounds what its socket holds unsent.
pub fn remember_socket(
    connection: &dyn Any,
    data: &mut Extensions,
    send_timeout: Duration,
    lingering: &Lingering,
) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    // Without the limit the connection is served all the same, paced by its send buffer.
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(UNSENT_LIMIT) {
        tracing::debug!(target: "idnow_attempts::http", %error, "TCP_NOTSENT_LOWAT not set");
    }
    // Without the duplicate the connection is served all the same, unpaced.
    if let Ok(socket) = stream.as_fd().try_clone_to_owned() {
        data.insert(PeerSocket {
            socket: Rc::new(socket),
            send_timeout,
            waiting: OnceCell::new(),
            lingering: lingering.clone(),
        });
    }
}

impl PeerSocket {
    /// Whether the socket takes more now: the client has read enough of what it was sent.
    fn takes_more(&self) -> bool {
        let mut socket = [PollFd::new(self.socket.as_fd(), PollFlags::POLLOUT)];
        // An error here is no reason to hold a request: served as if writable.
        poll(&mut socket, PollTimeout::ZERO).map_or(true, |ready| ready > 0)
    }

    async fn until_it_takes_more(&self) -> io::Result<()> {
        while !self.takes_more() {
            let waiting = match self.waiting.get() {
                Some(waiting) => waiting,
                None => {
                    let socket = std::net::TcpStream::from(self.socket.try_clone()?);
                    let registered = tokio::net::TcpStream::from_std(socket)?;
                    self.waiting.get_or_init(|| registered)
                }
            };
            waiting.writable().await?;
            // The readiness seen may be stale (nothing is written through this handle):
            // cleared, the next wake-up is the next time the client reads.
            let _ = waiting.try_io(Interest::WRITABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
        Ok(())
    }

    /// Ends the connection once the answer `progress` tells of has not moved for the send
    /// timeout: its client takes none of it. Nothing else would: [`pace`] waits before a
    /// request, and an answer being written has no timer of its own, so such a client held
    /// the answer, and its room in the page budget, for as long as it stayed connected.
    pub fn close_if_stalled(&self, progress: Rc<Progress>) {
        // Not a duplicate of the descriptor: one would keep the connection open, unclosed, for
        // as long as this waits after it is over.
        let socket = Rc::downgrade(&self.socket);
        let timeout = self.send_timeout;
        actix_web::rt::spawn(async move {
            loop {
                tokio::time::sleep_until((progress.moved() + timeout).into()).await;
                if progress.is_over() {
                    return;
                }
                if progress.moved().elapsed() >= timeout {
                    if let Some(socket) = socket.upgrade() {
                        shut_down(&socket);
                        tracing::debug!(target: "idnow_attempts::http", "a client that took none of its answer for the send timeout was disconnected");
                    }
                    return;
                }
            }
        });
    }

    /// Ends the connection for both sides: actix-http's next read or write fails, and it
    /// drops the connection with whatever it buffered for it.
    fn close(&self) {
        shut_down(&self.socket);
    }
}

/// Shuts `socket` down both ways, on the descriptor it is (nothing duplicated); a socket the
/// peer has already reset fails, and is over all the same.
fn shut_down(socket: &OwnedFd) {
    drop(socket2::SockRef::from(socket).shutdown(Shutdown::Both));
}

impl Drop for PeerSocket {
    /// The connection is over: its dispatcher is being dropped (a connection's data goes
    /// just before actix-http's own handle on the socket, which the linger does not need: it
    /// takes a duplicate). The service has no upgrade handler, which would keep a connection
    /// alive beyond its dispatcher. Unless the client has closed its side, the socket lingers.
    fn drop(&mut self) {
        self.lingering.close(self.socket.as_fd());
    }
}

/// Middleware: a request is served once its client takes what it was already sent, within
/// the send timeout; otherwise its connection is closed.
pub async fn pace(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(socket) = request.conn_data::<PeerSocket>() {
        if !socket.takes_more() {
            let taken =
                tokio::time::timeout(socket.send_timeout, socket.until_it_takes_more()).await;
            if !matches!(taken, Ok(Ok(()))) {
                socket.close();
                tracing::debug!(target: "idnow_attempts::http", "a client that took no answers for the send timeout was disconnected");
                return Err(ApiError::SlowReader.into());
            }
        }
    }
    next.call(request).await
}
