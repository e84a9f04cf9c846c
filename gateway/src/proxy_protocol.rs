//! PROXY protocol v1 (text) and v2 (binary), as sent by HAProxy and AWS NLB in front of a
//! connection's bytes: it names the client the balancer accepted. Read only when
//! `proxy_protocol` is on; then every connection must start with a header (one without is
//! closed), because any client able to reach the listener directly could otherwise claim to be
//! anyone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (RFC-style "PROXY TCP6 … \r\n").
const V1_MAX: usize = 107;

/// Why a connection's header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadHeader;

/// Read (consume) the header at the start of `stream`: `Some(client)` for a proxied TCP
/// connection, `None` for a `LOCAL`/`UNKNOWN` one (health checks: the peer itself).
pub(crate) async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, BadHeader> {
    let mut buf = [0u8; 232];
    // Wait until the first bytes tell the version (peek returns what has arrived so far).
    let n = loop {
        let n = stream.peek(&mut buf).await.map_err(|_| BadHeader)?;
        if n == 0 {
            return Err(BadHeader);
        }
        let v2_ready = n >= 16 && buf.starts_with(V2_SIGNATURE);
        let v1_ready = buf[..n].starts_with(b"PROXY ") && buf[..n].windows(2).any(|w| w == b"\r\n");
        if v2_ready || v1_ready || n >= V1_MAX {
            break n;
        }
        if !(V2_SIGNATURE.starts_with(&buf[..n.min(12)]) || b"PROXY ".starts_with(&buf[..n.min(6)])) {
            return Err(BadHeader);
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    if buf[..n].starts_with(V2_SIGNATURE) {
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        let mut header = vec![0u8; len];
        stream.read_exact(&mut header).await.map_err(|_| BadHeader)?;
        return parse_v2(&header);
    }
    let end = buf[..n.min(V1_MAX)].windows(2).position(|w| w == b"\r\n").ok_or(BadHeader)? + 2;
    let mut header = vec![0u8; end];
    stream.read_exact(&mut header).await.map_err(|_| BadHeader)?;
    parse_v1(&header)
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, `PROXY TCP6 …`, `PROXY UNKNOWN …`.
pub(crate) fn parse_v1(h: &[u8]) -> Result<Option<SocketAddr>, BadHeader> {
    let line = std::str::from_utf8(h).map_err(|_| BadHeader)?.strip_suffix("\r\n").ok_or(BadHeader)?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(BadHeader);
    }
    let family = parts.next().ok_or(BadHeader)?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let (src, _dst, sport) = (parts.next(), parts.next(), parts.next());
    let ip: IpAddr = src.and_then(|s| s.parse().ok()).ok_or(BadHeader)?;
    let port: u16 = sport.and_then(|p| p.parse().ok()).ok_or(BadHeader)?;
    match (family, ip) {
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(Some(SocketAddr::new(ip, port))),
        _ => Err(BadHeader),
    }
}

/// The binary header: signature, version/command, family/transport, length, addresses.
pub(crate) fn parse_v2(h: &[u8]) -> Result<Option<SocketAddr>, BadHeader> {
    if h.len() < 16 || !h.starts_with(V2_SIGNATURE) || h[12] >> 4 != 2 {
        return Err(BadHeader);
    }
    let body = &h[16..];
    match (h[12] & 0x0f, h[13]) {
        // LOCAL (the balancer's own health check): the peer itself.
        (0, _) => Ok(None),
        (1, 0x11) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([body[8], body[9]]))))
        }
        (1, 0x21) if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), u16::from_be_bytes([body[32], body[33]]))))
        }
        (1, 0x11 | 0x21) => Err(BadHeader),
        // Other families (UDP, UNIX): not a TCP client; the peer itself.
        (1, _) => Ok(None),
        _ => Err(BadHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_the_client() {
        let v1 = parse_v1(b"PROXY TCP4 198.51.100.7 10.0.0.1 5555 8000\r\n");
        assert_eq!(v1, Ok(Some("198.51.100.7:5555".parse().unwrap())));
        assert_eq!(parse_v1(b"PROXY TCP6 2001:db8::1 ::1 5555 8000\r\n"), Ok(Some("[2001:db8::1]:5555".parse().unwrap())));
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(None));
        for bad in
            [&b"PROXY TCP4 ::1 ::1 1 2\r\n"[..], b"PROXY TCP4 1.2.3.4 5.6.7.8 x 2\r\n", b"GET / HTTP/1.1\r\n", b"PROXY TCP4 1.2.3.4\r\n"]
        {
            assert_eq!(parse_v1(bad), Err(BadHeader), "{}", String::from_utf8_lossy(bad));
        }
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0x15, 0xb3, 0x1f, 0x40]);
        assert_eq!(parse_v2(&v2), Ok(Some("198.51.100.7:5555".parse().unwrap())));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse_v2(&local), Ok(None));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse_v2(&short), Err(BadHeader));
    }
}
