//! Which addresses an outbound fetch may connect to: public unicast ones
//! only. Private (RFC 1918, unique local), loopback, link-local (cloud
//! metadata services live at 169.254.169.254), shared (CGNAT),
//! unspecified, multicast, broadcast, documentation, benchmarking and
//! reserved ranges are refused, and an IPv6 address that embeds an IPv4
//! one (mapped, compatible, NAT64, 6to4) is judged by the IPv4 address it
//! carries. The check runs on the addresses a name resolved to, so a name
//! that resolves to an internal address is refused, and the connection
//! goes to exactly the addresses checked (no second lookup to rebind).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;

/// Why an address is refused, for the error a caller sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// Anything else that is not public unicast.
    NotPublic,
}

/// Whether a fetch may connect to `ip`: `None` when it may, or why not.
/// `allow_loopback` lets loopback addresses through (for tests only).
pub fn refusal(ip: IpAddr, allow_loopback: bool) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_loopback),
        IpAddr::V6(v6) => refusal_v6(v6, allow_loopback),
    }
}

fn refusal_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<Refusal> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some(Refusal::Loopback);
    }
    let [a, b, c, _] = ip.octets();
    let not_public = a == 0
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        // Shared address space (RFC 6598).
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments (RFC 6890).
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking (RFC 2544).
        || (a == 198 && (b == 18 || b == 19))
        // Reserved (RFC 1112), 240.0.0.0/4.
        || a >= 240;
    not_public.then_some(Refusal::NotPublic)
}

fn refusal_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<Refusal> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some(Refusal::Loopback);
    }
    let s = ip.segments();
    // IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96) addresses.
    if let Some(v4) = ip.to_ipv4() {
        return refusal_v4(v4, allow_loopback).or_else(|| {
            // `::a.b.c.d` is deprecated; only the mapped form is routable.
            (s[5] != 0xffff).then_some(Refusal::NotPublic)
        });
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 (64:ff9b::/96) carries the IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return refusal_v4(embedded(s[6], s[7]), false);
    }
    // 6to4 (2002::/16) carries it in bits 16 to 48.
    if s[0] == 0x2002 {
        return refusal_v4(embedded(s[1], s[2]), false);
    }
    let not_public = ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // Site-local (deprecated, fec0::/10).
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation (2001:db8::/32), Teredo (2001::/32), ORCHID and
        // the other IETF assignments of 2001::/23.
        || (s[0] == 0x2001 && (s[1] == 0x0db8 || s[1] < 0x0200))
        // Discard-only (100::/64).
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]);
    not_public.then_some(Refusal::NotPublic)
}

/// The error a name resolution ends with when every address it found is
/// refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses that may not be fetched ({ip})")]
pub struct RefusedAddress {
    /// The name resolved.
    pub host: String,
    /// The first refused address.
    pub ip: IpAddr,
    /// Why.
    pub why: Refusal,
}

/// A resolver for reqwest that keeps the permitted addresses of a name
/// and fails when none is left.
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    /// Let loopback addresses through (tests only).
    pub allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        let fut: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refused = None;
            let mut allowed = Vec::with_capacity(found.len());
            for addr in found {
                match refusal(addr.ip(), allow_loopback) {
                    None => allowed.push(addr),
                    Some(why) => {
                        first_refused.get_or_insert((addr.ip(), why));
                    }
                }
            }
            match (allowed.is_empty(), first_refused) {
                (true, Some((ip, why))) => {
                    Err(Box::new(RefusedAddress { host, ip, why }) as Box<_>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        });
        fut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(s: &str) -> Option<Refusal> {
        refusal(s.parse().unwrap(), false)
    }

    #[test]
    fn public_addresses_pass() {
        for ok in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(judged(ok), None, "{ok}");
        }
    }

    #[test]
    fn internal_addresses_are_refused() {
        for bad in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
        ] {
            assert_eq!(judged(bad), Some(Refusal::NotPublic), "{bad}");
        }
    }

    #[test]
    fn loopback_is_refused_unless_allowed() {
        for lo in ["127.0.0.1", "127.255.0.3", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = lo.parse().unwrap();
            assert_eq!(refusal(ip, false), Some(Refusal::Loopback), "{lo}");
            assert_eq!(refusal(ip, true), None, "{lo}");
        }
        // Allowing loopback lets nothing else through.
        assert_eq!(
            refusal("10.0.0.1".parse().unwrap(), true),
            Some(Refusal::NotPublic)
        );
        // NAT64 or 6to4 wrapping of loopback is never loopback itself.
        for wrapped in ["64:ff9b::7f00:1", "2002:7f00:1::1"] {
            assert_eq!(
                refusal(wrapped.parse().unwrap(), true),
                Some(Refusal::Loopback),
                "{wrapped}"
            );
        }
    }
}
