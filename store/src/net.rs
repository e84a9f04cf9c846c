//! Who the client is: one rule for the gateway (access log, forwarded headers) and the portal
//! (login and signup throttles). The TCP peer is the client unless it is a trusted proxy; then
//! the client is the rightmost `X-Forwarded-For` address that is not a trusted proxy.

use std::net::{IpAddr, SocketAddr};

/// The `trusted_proxies` setting: CIDR blocks (`10.0.0.0/8`, `fd00::/8`) or single addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parse the list; the error names the bad entry.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::with_capacity(list.len());
        for item in list {
            let s = item.as_ref().trim();
            let (addr, len) = match s.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (s, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
                None => max,
            };
            nets.push((ip.to_canonical(), len));
        }
        Ok(TrustedProxies { nets })
    }

    /// No proxy is trusted (the default): the peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` lies in one of the blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *len),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let (whole, rest) = (usize::from(len / 8), len % 8);
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) & (0xffu8 << (8 - rest)) == 0)
}

/// The client's address. `peer` is the TCP peer; `forwarded_for` the `X-Forwarded-For` header
/// values in the order received. Only when `peer` is trusted is the header read, from the right:
/// trusted proxies are skipped and the first other address is the client. An entry that is not
/// an address ends the walk (what lies left of it cannot be trusted): the hop to its right is
/// the client. If every entry is a trusted proxy, the leftmost is.
pub fn client_ip<'a>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else { return client };
        client = ip;
        if !trusted.contains(ip) {
            return ip;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip())).ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff<'a>(v: &'a [&'static str]) -> impl Iterator<Item = &'static str> + 'a {
        v.iter().copied()
    }

    #[test]
    fn cidr_blocks_match_on_their_prefix() {
        let t = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "172.16.0.0/12"]).unwrap();
        assert!(t.contains(ip("10.255.1.2")));
        assert!(t.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped IPv6 peers");
        assert!(t.contains(ip("192.168.1.7")) && !t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("fd12::1")) && !t.contains(ip("fe80::1")));
        assert!(t.contains(ip("172.31.255.255")) && !t.contains(ip("172.32.0.0")));
        assert!(!t.contains(ip("11.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad]).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers_and_from_the_right() {
        let t = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        // Untrusted peer: the header is ignored, whatever it says.
        assert_eq!(client_ip(ip("203.0.113.9"), xff(&["1.1.1.1"]), &t), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["1.1.1.1"]), &TrustedProxies::default()), ip("10.0.0.2"));
        // Trusted balancer: the rightmost untrusted address; a client-sent prefix is ignored.
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["6.6.6.6, 198.51.100.4"]), &t), ip("198.51.100.4"));
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["6.6.6.6", "198.51.100.4, 10.1.1.1"]), &t), ip("198.51.100.4"));
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["[2001:db8::1]:443"]), &t), ip("2001:db8::1"));
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["198.51.100.4:5000"]), &t), ip("198.51.100.4"));
        // Garbage ends the walk at the hop to its right.
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["198.51.100.4, junk, 10.0.0.9"]), &t), ip("10.0.0.9"));
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["junk"]), &t), ip("10.0.0.2"));
        // No header, or only proxies: the peer, or the leftmost proxy.
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&[]), &t), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), xff(&["10.0.0.5, 10.0.0.6"]), &t), ip("10.0.0.5"));
    }
}
