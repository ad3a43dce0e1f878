//! Lists of IP networks, as `WEBHOOK_ALLOWED_SOURCES` and `TRUSTED_PROXIES` configure them,
//! and the one way addresses are compared with them.
//!
//! An IPv4 client reaches a dual-stack listener as an IPv4-mapped IPv6 address
//! (`::ffff:192.0.2.1`): addresses and networks are both taken in their canonical form, so
//! that such a client matches the IPv4 ranges an operator writes. So an IPv4 client is matched
//! by IPv4 ranges (and ranges inside `::ffff:0:0/96`) only: `::/0` is every IPv6 client,
//! `0.0.0.0/0` every IPv4 one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A list of networks; empty matches nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

/// Why a network list was refused: which entry, never its text.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworksError {
    #[error("entry {0} is empty")]
    Empty(usize),
    #[error("entry {0} is not an IPv4 or IPv6 address or CIDR range")]
    Unparsable(usize),
    /// `203.0.113.7/8` is most likely a typo for a narrower range: refused, not widened.
    #[error("entry {0} has bits set after its prefix length")]
    HostBits(usize),
}

impl Networks {
    /// `entries` as written: CIDR ranges (`192.0.2.0/24`, `2001:db8::/32`) or single
    /// addresses, which stand for themselves. A range with bits set after its prefix is
    /// refused, as `ip route` refuses it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, NetworksError> {
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let entry = entry.as_ref().trim();
                if entry.is_empty() {
                    return Err(NetworksError::Empty(index));
                }
                let network = parse_network(entry).ok_or(NetworksError::Unparsable(index))?;
                if network != network.trunc() {
                    return Err(NetworksError::HostBits(index));
                }
                Ok(canonical_network(network))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the list covers every address of a family, by one `/0` or by several ranges
    /// that add up to it (`0.0.0.0/1, 128.0.0.0/1`).
    pub fn has_everything(&self) -> bool {
        IpNet::aggregate(&self.0)
            .iter()
            .any(|network| network.prefix_len() == 0)
    }

    /// Whether `address`, in its canonical form, is inside any of the networks.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }
}

/// Networks are configuration, not secrets: shown as written, in canonical form.
impl fmt::Debug for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

/// `address` or `address/prefix`. The address goes through the standard library's parser, the
/// same that reads `X-Forwarded-For`, so that both take the same spellings: no octal-looking
/// `010.0.0.1`, which `inet_aton` would read as 8.0.0.1.
fn parse_network(entry: &str) -> Option<IpNet> {
    match entry.split_once('/') {
        None => IpAddr::from_str(entry).ok().map(IpNet::from),
        Some((address, prefix)) => {
            let address = IpAddr::from_str(address).ok()?;
            let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
            let prefix = digits.then(|| prefix.parse::<u8>().ok()).flatten()?;
            IpNet::new(address, prefix).ok()
        }
    }
}

/// An IPv6 range inside `::ffff:0:0/96` as the IPv4 range it maps, so that it matches the
/// canonical (IPv4) form of the addresses it holds.
fn canonical_network(network: IpNet) -> IpNet {
    const MAPPED_PREFIX: u8 = 96;
    match network {
        IpNet::V6(v6) if v6.prefix_len() >= MAPPED_PREFIX => {
            match (v6.network().to_ipv4_mapped(), mapped_range().contains(&v6)) {
                (Some(v4), true) => {
                    Ipv4Net::new(v4, v6.prefix_len() - MAPPED_PREFIX).map_or(network, IpNet::V4)
                }
                _ => network,
            }
        }
        other => other,
    }
}

fn mapped_range() -> Ipv6Net {
    Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
        .expect("96 is a valid IPv6 prefix length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(entries: &[&str]) -> Networks {
        Networks::parse(entries).expect("valid networks")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn ranges_and_single_addresses_of_both_families_match() {
        let list = networks(&["192.0.2.0/24", " 198.51.100.7 ", "2001:db8::/32", "::1"]);
        for inside in [
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.7",
            "2001:db8:1::9",
            "::1",
        ] {
            assert!(list.contains(ip(inside)), "{inside}");
        }
        for outside in [
            "192.0.3.0",
            "198.51.100.8",
            "2001:db9::1",
            "::2",
            "10.0.0.1",
        ] {
            assert!(!list.contains(ip(outside)), "{outside}");
        }
        assert!(!Networks::default().contains(ip("192.0.2.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_ranges_and_mapped_ranges_match_ipv4() {
        let list = networks(&["192.0.2.0/24"]);
        assert!(list.contains(ip("::ffff:192.0.2.10")));
        assert!(!list.contains(ip("::ffff:192.0.3.10")));
        let mapped = networks(&["::ffff:192.0.2.0/120"]);
        assert!(mapped.contains(ip("192.0.2.10")));
        assert!(mapped.contains(ip("::ffff:192.0.2.10")));
        assert!(!mapped.contains(ip("192.0.3.10")));
        // Not every IPv6 address with an IPv4 tail is mapped.
        assert!(!list.contains(ip("::192.0.2.10")));
    }

    #[test]
    fn everything_is_told_however_it_is_written() {
        for everything in [
            &["0.0.0.0/0"][..],
            &["::/0"],
            &["10.0.0.0/8", "0.0.0.0/1", "128.0.0.0/1"],
            &["::/1", "8000::/1"],
            &["::ffff:0.0.0.0/96"],
        ] {
            assert!(networks(everything).has_everything(), "{everything:?}");
        }
        for partial in [&["0.0.0.0/1"][..], &["0.0.0.0/1", "192.0.0.0/2"], &["::/1"]] {
            assert!(!networks(partial).has_everything(), "{partial:?}");
        }
    }

    #[test]
    fn shown_in_canonical_form() {
        let list = networks(&["10.0.0.0/8", "::ffff:192.0.2.0/120", "2001:DB8::/32"]);
        assert_eq!(
            format!("{list:?}"),
            r#"["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"]"#
        );
    }

    #[test]
    fn bad_entries_are_named_by_position_never_by_text() {
        for (entries, error) in [
            (&["10.0.0.0/8", ""][..], NetworksError::Empty(1)),
            (&["10.0.0.0/33"][..], NetworksError::Unparsable(0)),
            (
                &["10.0.0.0/8", "example.com"][..],
                NetworksError::Unparsable(1),
            ),
            (
                &["10.0.0.0/8", "1.2.3.4:80"][..],
                NetworksError::Unparsable(1),
            ),
            (&["10.1.2.3/8"][..], NetworksError::HostBits(0)),
            (&["2001:db8::1/32"][..], NetworksError::HostBits(0)),
            (&["010.0.0.0/8"][..], NetworksError::Unparsable(0)),
            (&["10.0.0.0/+8"][..], NetworksError::Unparsable(0)),
            (&["10.0.0.0/"][..], NetworksError::Unparsable(0)),
            (&["10.0.0.0/8/8"][..], NetworksError::Unparsable(0)),
        ] {
            let refused = Networks::parse(entries).expect_err("refused");
            assert_eq!(refused, error);
            assert!(!refused.to_string().contains("example"));
        }
    }
}
