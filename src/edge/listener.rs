//! The listening socket. "All interfaces" (`::`, the default `http.host`) is one dual-stack
//! socket: `[::]` with `IPV6_V6ONLY` cleared, so that IPv6 clients and IPv4 clients (as
//! IPv4-mapped addresses, which `networks` matches against IPv4 ranges) both reach it, and
//! probes work in IPv4, IPv6 and dual-stack clusters alike. Where the host has IPv6 disabled,
//! it is `0.0.0.0`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use nix::errno::Errno;
use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues before the server accepts them: actix-server's own default.
const BACKLOG: i32 = 1024;

/// How the listener came to be bound, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// One address family, as `http.host` names it.
    Single,
    /// `[::]` taking IPv6 and IPv4.
    Dual,
    /// `0.0.0.0`: all interfaces were asked for, and the host has no IPv6.
    Ipv4Fallback,
}

/// A listener on `host:port`, ready for the server.
pub fn listen(host: IpAddr, port: u16) -> io::Result<(TcpListener, Stack)> {
    listen_with(host, port, open)
}

/// [`listen`] over a given way to open a socket, so that a host without IPv6 can be tested.
fn listen_with(
    host: IpAddr,
    port: u16,
    open: impl Fn(SocketAddr, Stack) -> io::Result<TcpListener>,
) -> io::Result<(TcpListener, Stack)> {
    if host != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        return Ok((
            open(SocketAddr::new(host, port), Stack::Single)?,
            Stack::Single,
        ));
    }
    match open(SocketAddr::new(host, port), Stack::Dual) {
        Ok(listener) => Ok((listener, Stack::Dual)),
        Err(error) if means_no_ipv6(&error) => {
            let ipv4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            Ok((open(ipv4, Stack::Ipv4Fallback)?, Stack::Ipv4Fallback))
        }
        Err(error) => Err(error),
    }
}

/// What the kernel answers when IPv6 is off: no IPv6 sockets at all (`ipv6.disable=1`), or
/// no address to bind them to. Any other error, such as a port in use, is the operator's.
fn means_no_ipv6(error: &io::Error) -> bool {
    [
        Errno::EAFNOSUPPORT,
        Errno::EPROTONOSUPPORT,
        Errno::EADDRNOTAVAIL,
    ]
    .iter()
    .any(|&errno| error.raw_os_error() == Some(errno as i32))
}

fn open(address: SocketAddr, stack: Stack) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if stack == Stack::Dual {
        // Explicitly: the default follows the host's net.ipv6.bindv6only.
        socket.set_only_v6(false)?;
    }
    // As std's TcpListener::bind: a restarted server rebinds at once, whatever connections
    // of the last one linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::*;

    /// Whether this host can use IPv6 at all: some containers run with it disabled, where
    /// the IPv6 halves of these tests cannot run (and say so).
    fn host_has_ipv6() -> bool {
        let usable = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
        if !usable {
            eprintln!("this host has no IPv6 loopback: IPv6 reachability not tested");
        }
        usable
    }

    fn reachable(listener: &TcpListener, address: IpAddr) -> bool {
        let port = listener.local_addr().expect("bound").port();
        TcpStream::connect((address, port)).is_ok()
    }

    #[test]
    fn all_interfaces_take_ipv6_and_ipv4_on_one_socket() {
        let (listener, stack) = listen(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("bound");
        assert!(reachable(&listener, IpAddr::V4(Ipv4Addr::LOCALHOST)));
        if host_has_ipv6() {
            assert_eq!(stack, Stack::Dual);
            assert!(reachable(&listener, IpAddr::V6(Ipv6Addr::LOCALHOST)));
        }
    }

    #[test]
    fn a_host_without_ipv6_listens_on_ipv4() {
        let no_ipv6 = |address: SocketAddr, stack| {
            if address.is_ipv6() {
                Err(io::Error::from_raw_os_error(Errno::EAFNOSUPPORT as i32))
            } else {
                open(address, stack)
            }
        };
        let (listener, stack) =
            listen_with(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, no_ipv6).expect("bound");
        assert_eq!(stack, Stack::Ipv4Fallback);
        assert_eq!(
            listener.local_addr().expect("bound").ip(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert!(reachable(&listener, IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn a_port_in_use_is_an_error_not_a_fallback() {
        let (taken, _) = listen(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("bound");
        let port = taken.local_addr().expect("bound").port();
        let error = listen(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).expect_err("in use");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_named_address_is_bound_as_named() {
        let (listener, stack) = listen(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("bound");
        assert_eq!(stack, Stack::Single);
        assert_eq!(
            listener.local_addr().expect("bound").ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }
}
