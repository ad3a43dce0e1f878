//! The client's address, as CONTRACT.md "Webhook authentication" derives it: the TCP peer's;
//! only when the peer is a trusted proxy (`TRUSTED_PROXIES`) is `X-Forwarded-For` believed,
//! and then the client is its right-most address that is not itself a trusted proxy.
//!
//! Each proxy appends the address it received the request from, so the addresses to the
//! right of the first untrusted one were written by trusted proxies, and everything to its
//! left by whoever sent the request, who may write anything there. `Forwarded` (RFC 7239) is
//! not read: the contract names `X-Forwarded-For` alone, and reading two forwarding headers
//! would let a client pick the one its proxy does not rewrite.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::X_FORWARDED_FOR;
use actix_web::HttpRequest;

use crate::networks::Networks;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    pub fn new(networks: Networks) -> Self {
        Self(networks)
    }

    /// The client address of `request`; `None` when it cannot be told: no peer address, or
    /// an unparsable `X-Forwarded-For` from a trusted proxy.
    pub fn client_of(&self, request: &HttpRequest) -> Option<IpAddr> {
        let peer = peer_of(request)?;
        let forwarded = request.headers().get_all(X_FORWARDED_FOR);
        self.client(peer, forwarded.map(|value| value.as_bytes()))
    }

    /// The client behind `peer`, given the values of its `X-Forwarded-For` headers in the
    /// order they arrived, which together are one comma-separated list (RFC 9110, 5.3).
    /// Every address is parsed, so one unparsable entry anywhere refuses the whole chain.
    ///
    /// No allocation: the right-most untrusted address is the last one seen left to right.
    /// When every address is a trusted proxy, the left-most is the furthest known, and with
    /// no header at all the client is the peer itself.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.0.contains(peer) {
            if forwarded.into_iter().next().is_some() {
                ignored_forwarding();
            }
            return Some(peer);
        }
        let mut left_most = None;
        let mut right_most_untrusted = None;
        for value in forwarded {
            for entry in value.split(|&byte| byte == b',') {
                let address = parse_address(entry)?;
                left_most.get_or_insert(address);
                if !self.0.contains(address) {
                    right_most_untrusted = Some(address);
                }
            }
        }
        Some(right_most_untrusted.or(left_most).unwrap_or(peer))
    }
}

/// Says once per process that an `X-Forwarded-For` was ignored: behind a proxy that
/// `TRUSTED_PROXIES` does not list, every sender is the proxy, and shares its body budget
/// share and its place in `WEBHOOK_ALLOWED_SOURCES`. Once, since any client can send the
/// header; without the value, which is whatever the client wrote.
fn ignored_forwarding() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "X-Forwarded-For from a peer not in TRUSTED_PROXIES was ignored (said once): if \
             this service is behind a proxy, list it in TRUSTED_PROXIES, or every sender is \
             the proxy"
        );
    }
}

/// The TCP peer's address, in canonical form (an IPv4 client of the dual-stack socket as
/// IPv4): from the connection, never from a header.
pub fn peer_of(request: &HttpRequest) -> Option<IpAddr> {
    request.peer_addr().map(|peer| peer.ip().to_canonical())
}

/// One entry of the list: an IPv4 or IPv6 address and optional blanks around it, nothing
/// else (no port, no brackets, no `unknown`).
fn parse_address(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry.trim_ascii()).ok()?;
    text.parse::<IpAddr>()
        .ok()
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PROXY: &str = "10.0.0.7";
    const INNER_PROXY: &str = "10.0.1.1";

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(Networks::parse(&["10.0.0.0/16", "fd00::/8"]).expect("valid"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn client(peer: &str, headers: &[&str]) -> Option<IpAddr> {
        proxies().client(ip(peer), headers.iter().map(|header| header.as_bytes()))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(client("203.0.113.9", &[]), Some(ip("203.0.113.9")));
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"]),
            Some(ip("203.0.113.9"))
        );
        // Not even garbage matters: the header is not read.
        assert_eq!(client("203.0.113.9", &["garbage"]), Some(ip("203.0.113.9")));
    }

    #[test]
    fn a_trusted_peer_forwards_the_right_most_untrusted_address() {
        assert_eq!(client(PROXY, &["198.51.100.1"]), Some(ip("198.51.100.1")));
        let through_two = format!("198.51.100.1, {INNER_PROXY}");
        assert_eq!(client(PROXY, &[&through_two]), Some(ip("198.51.100.1")));
        assert_eq!(
            client(PROXY, &["2001:db8::5 , fd00::1"]),
            Some(ip("2001:db8::5"))
        );
        // Nothing forwarded: the proxy itself.
        assert_eq!(client(PROXY, &[]), Some(ip(PROXY)));
        // Only proxies: the furthest one known.
        assert_eq!(
            client(PROXY, &[&format!("{INNER_PROXY}, 10.0.2.2")]),
            Some(ip(INNER_PROXY))
        );
    }

    #[test]
    fn a_client_cannot_prepend_its_way_in() {
        // The client sent `X-Forwarded-For: 192.0.2.1` (an allowed source, say); the proxy
        // appended the address it really came from.
        assert_eq!(
            client(PROXY, &["192.0.2.1, 203.0.113.66"]),
            Some(ip("203.0.113.66"))
        );
        // The same, as a header of the client's own beside the proxy's.
        assert_eq!(
            client(PROXY, &["192.0.2.1", "203.0.113.66"]),
            Some(ip("203.0.113.66"))
        );
        // Nor by naming a trusted proxy to the right of itself: the proxy's own entry is
        // right of that.
        assert_eq!(
            client(PROXY, &[&format!("192.0.2.1, {INNER_PROXY}, 203.0.113.66")]),
            Some(ip("203.0.113.66"))
        );
    }

    #[test]
    fn several_headers_are_one_list_in_their_order() {
        assert_eq!(
            client(PROXY, &["198.51.100.1", "198.51.100.2", INNER_PROXY]),
            Some(ip("198.51.100.2"))
        );
    }

    #[test]
    fn an_unparsable_chain_from_a_trusted_proxy_is_refused() {
        for chain in [
            "",
            "unknown",
            "198.51.100.1,",
            "198.51.100.1:8080",
            "[2001:db8::5]",
            "198.51.100.1 198.51.100.2",
            "garbage, 198.51.100.1",
            "198.51.100.1, 256.0.0.1",
            "198.51.100.1;",
            "ab\u{e9}",
        ] {
            assert_eq!(client(PROXY, &[chain]), None, "{chain:?}");
        }
    }

    #[test]
    fn mapped_addresses_are_taken_as_ipv4() {
        assert_eq!(
            client("::ffff:10.0.0.7", &["::ffff:198.51.100.1"]),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(client("::ffff:203.0.113.9", &[]), Some(ip("203.0.113.9")));
    }

    fn untrusted() -> impl Strategy<Value = IpAddr> {
        // Outside 10.0.0.0/16 and fd00::/8.
        prop_oneof![
            (11u8..=223, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| IpAddr::from([a, b, c, d])),
            any::<[u16; 7]>().prop_map(|tail| {
                let [b, c, d, e, f, g, h] = tail;
                IpAddr::from([0x2001, b, c, d, e, f, g, h])
            }),
        ]
    }

    fn trusted() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 2]>().prop_map(|[c, d]| IpAddr::from([10, 0, c, d])),
            any::<[u16; 7]>().prop_map(|tail| {
                let [b, c, d, e, f, g, h] = tail;
                IpAddr::from([0xfd00, b, c, d, e, f, g, h])
            }),
        ]
    }

    /// An IPv4 address as a dual-stack socket shows it, `::ffff:a.b.c.d`; IPv6 as it is.
    fn mapped(address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            v6 => v6,
        }
    }

    /// Either way an address may arrive.
    fn any_form(address: impl Strategy<Value = IpAddr>) -> impl Strategy<Value = IpAddr> {
        (address, any::<bool>())
            .prop_map(|(address, map)| if map { mapped(address) } else { address })
    }

    fn join(addresses: &[IpAddr]) -> String {
        addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    proptest! {
        /// Whatever a client writes left of its own entry, and however the chain is split into
        /// headers, the client found is the address the first trusted proxy saw.
        #[test]
        fn the_client_is_who_the_first_trusted_proxy_saw(
            spoofed in proptest::collection::vec(any_form(prop_oneof![untrusted(), trusted()]), 0..6),
            real in any_form(untrusted()),
            hops in proptest::collection::vec(any_form(trusted()), 0..4),
            peer in any_form(trusted()),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        ) {
            let chain: Vec<IpAddr> =
                spoofed.iter().chain([&real]).chain(&hops).copied().collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(chain.len())).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut headers = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().filter(|&cut| cut > 0).chain([chain.len()]) {
                headers.push(join(&chain[start..cut]));
                start = cut;
            }
            let found = proxies().client(peer, headers.iter().map(|header| header.as_bytes()));
            prop_assert_eq!(found, Some(real.to_canonical()));
        }

        #[test]
        fn an_untrusted_peer_is_never_replaced(
            peer in any_form(untrusted()),
            forwarded in proptest::collection::vec(any::<Vec<u8>>(), 0..4),
        ) {
            let found = proxies().client(peer, forwarded.iter().map(Vec::as_slice));
            prop_assert_eq!(found, Some(peer.to_canonical()));
        }

        #[test]
        fn garbage_anywhere_in_a_trusted_chain_refuses_it(
            before in proptest::collection::vec(untrusted(), 0..4),
            after in proptest::collection::vec(untrusted(), 0..4),
            garbage in "[^0-9a-fA-F:., ]{1,12}|[0-9]{4,6}|[0-9.]{1,6}\\.",
            peer in trusted(),
        ) {
            let chain = [join(&before), garbage, join(&after)]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            let found = proxies().client(peer, [chain.as_bytes()]);
            prop_assert_eq!(found, None, "{}", chain);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            peer in prop_oneof![untrusted(), trusted()],
            forwarded in proptest::collection::vec(any::<Vec<u8>>(), 0..4),
        ) {
            let _ = proxies().client(peer, forwarded.iter().map(Vec::as_slice));
        }
    }
}
