//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the gateway continues the trace a
//! client's `traceparent` names, or starts one, and forwards a `traceparent` naming its own span.
//!
//! * [`TraceParent::parse`] is strict and never panics: version `00` is exactly
//!   `00-<32 hex>-<16 hex>-<2 hex>` in lowercase with neither id all zeros; a higher version
//!   (except the forbidden `ff`) is read by its first four fields when the value is at least as
//!   long and the next character, if any, is `-` (§4.3, "versioning of traceparent"). Anything else
//!   starts a new trace, and the client's `tracestate` goes with the bad header (§3.3.1: a
//!   `tracestate` without a valid `traceparent` means nothing).
//! * Ids come from a per-thread splitmix64 sequence seeded once per thread: no syscall and no
//!   lock per request.
//! * Everything here runs only when `trace_context` is on; the request path with it off does not
//!   look at these headers at all (see the README's performance section for the figures).

use std::cell::Cell;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The fields of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace (never all zeros).
    pub trace_id: [u8; 16],
    /// The caller's span (never all zeros).
    pub parent_id: [u8; 8],
    /// `trace-flags` (bit 0: sampled).
    pub flags: u8,
}

/// The `sampled` bit of `trace-flags`.
pub const SAMPLED: u8 = 0x01;

impl TraceParent {
    /// Parse a `traceparent` value; `None` for anything the specification calls invalid.
    pub fn parse(v: &[u8]) -> Option<TraceParent> {
        if v.len() < 55 {
            return None;
        }
        let version = hex_byte(v[0], v[1])?;
        if version == 0xff || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        // Version 00 is exactly 55 characters; a future version may append `-` and more fields.
        if (version == 0 && v.len() != 55) || (version != 0 && v.len() > 55 && v[55] != b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(v[3 + 2 * i], v[4 + 2 * i])?;
        }
        let mut parent_id = [0u8; 8];
        for (i, b) in parent_id.iter_mut().enumerate() {
            *b = hex_byte(v[36 + 2 * i], v[37 + 2 * i])?;
        }
        let flags = hex_byte(v[53], v[54])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent { trace_id, parent_id, flags })
    }

    /// `00-<trace id>-<span id>-<flags>`.
    pub fn encode(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        hex_into(trace_id, &mut out[3..35]);
        hex_into(span_id, &mut out[36..52]);
        hex_into(&[flags], &mut out[53..55]);
        out
    }
}

/// A lowercase hex digit's value (`HEXDIGLC`: uppercase is invalid).
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(nibble(hi)? << 4 | nibble(lo)?)
}

/// `bytes` as lowercase hex into `out` (twice as long).
pub(crate) fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// A fresh non-zero 64-bit id from this thread's sequence.
fn next_id() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(rand::random());
    }
    let v = STATE.with(|s| {
        // splitmix64: a Weyl sequence through a bijective mixer, so a thread never repeats an id
        // before 2^64 draws.
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        crate::counters::splitmix64(x)
    });
    v.max(1)
}

/// A new span id (never all zeros).
pub(crate) fn span_id() -> [u8; 8] {
    next_id().to_be_bytes()
}

/// A new trace id (never all zeros).
pub(crate) fn trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_id().to_be_bytes());
    id[8..].copy_from_slice(&next_id().to_be_bytes());
    id
}

/// The phases whose end the exported span records (as events).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark {
    Routed = 0,
    Authenticated = 1,
    Admitted = 2,
}

/// One request's place in a trace; in the per-request context while `trace_context` is on.
#[derive(Debug)]
pub(crate) struct Trace {
    pub(crate) trace_id: [u8; 16],
    /// The gateway's own span.
    pub(crate) span_id: [u8; 8],
    /// The client's span (a valid incoming `traceparent`), `None` when this request started the trace.
    pub(crate) parent_id: Option<[u8; 8]>,
    pub(crate) flags: u8,
    /// The client's `tracestate`, forwarded unchanged (only with a valid `traceparent`).
    pub(crate) tracestate: Option<HeaderValue>,
    /// The span is exported (an exporter is configured and the trace is sampled).
    pub(crate) recorded: bool,
    /// Microseconds from the request's start to the end of each [`Mark`]ed phase (0: not reached).
    pub(crate) marks: [u32; 3],
    /// Upstream call: start offset from the request's start, once it was sent.
    pub(crate) upstream_start: Option<Duration>,
    /// The operation the forward phase attributed the request to.
    pub(crate) operation: crate::operations::OpId,
    /// The plan the request was admitted under.
    pub(crate) plan: Option<HeaderValue>,
    /// What the exported span says about the request (only when `recorded`).
    pub(crate) request: Option<Box<RequestInfo>>,
}

/// The request's fields an exported span carries.
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub(crate) method: http::Method,
    /// Without the query (it may hold a key).
    pub(crate) path: Box<str>,
    pub(crate) host: Option<Box<str>>,
}

impl Trace {
    /// Continue the trace of `headers`' `traceparent`, or start one: a new trace is sampled when
    /// `sample(trace id)` says so; a continued one keeps the client's decision.
    pub(crate) fn start(headers: &HeaderMap, exporting: bool, sample: impl Fn(&[u8; 16]) -> bool) -> Trace {
        let mut all = headers.get_all(&TRACEPARENT).iter();
        // Two `traceparent` headers are as good as none (which one would be the parent?).
        let incoming = match (all.next(), all.next()) {
            (Some(v), None) => TraceParent::parse(v.as_bytes()),
            _ => None,
        };
        let (trace_id, parent_id, flags, tracestate) = match incoming {
            Some(tp) => {
                let state = headers.get(&TRACESTATE).filter(|_| headers.get_all(&TRACESTATE).iter().nth(1).is_none()).cloned();
                (tp.trace_id, Some(tp.parent_id), tp.flags, state)
            }
            None => {
                let id = trace_id();
                (id, None, u8::from(sample(&id)), None)
            }
        };
        Trace {
            trace_id,
            span_id: span_id(),
            parent_id,
            flags,
            tracestate,
            recorded: exporting && flags & SAMPLED != 0,
            marks: [0; 3],
            upstream_start: None,
            operation: 0,
            plan: None,
            request: None,
        }
    }

    /// Keep what the exported span needs from `req` (when the span is recorded).
    pub(crate) fn remember<B>(&mut self, req: &http::Request<B>) {
        if !self.recorded {
            return;
        }
        let host = req.uri().host().map(str::to_owned).or_else(|| {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            // `host:port` → host (IPv6 literals keep their brackets).
            Some(match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => h[..i].to_owned(),
                _ => h.to_owned(),
            })
        });
        self.request = Some(Box::new(RequestInfo {
            method: req.method().clone(),
            path: req.uri().path().into(),
            host: host.map(String::into_boxed_str),
        }));
    }

    /// The `traceparent` the upstream gets: this trace, the gateway's span as the parent.
    pub(crate) fn traceparent(&self) -> HeaderValue {
        let v = TraceParent::encode(&self.trace_id, &self.span_id, self.flags);
        HeaderValue::from_bytes(&v).unwrap_or(HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00"))
    }

    /// Replace the client's trace headers with the gateway's (the client's `tracestate` stays when
    /// its `traceparent` was valid).
    pub(crate) fn set_headers(&self, h: &mut HeaderMap) {
        h.insert(TRACEPARENT.clone(), self.traceparent());
        match &self.tracestate {
            Some(s) => {
                h.insert(TRACESTATE.clone(), s.clone());
            }
            None => {
                h.remove(&TRACESTATE);
            }
        }
    }

    pub(crate) fn mark(&mut self, m: Mark, started: Instant) {
        self.marks[m as usize] = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX).max(1);
    }

    /// Trace and span ids as hex, for the access log.
    pub(crate) fn hex_ids(&self) -> ([u8; 32], [u8; 16]) {
        let (mut t, mut s) = ([0u8; 32], [0u8; 16]);
        hex_into(&self.trace_id, &mut t);
        hex_into(&self.span_id, &mut s);
        (t, s)
    }
}

/// Trace-id ratio sampling: the top 64 bits of the trace id under `ratio` of the range
/// (deterministic per trace id, so every service using the same rule agrees).
pub fn ratio_sampler(ratio: f64) -> impl Fn(&[u8; 16]) -> bool + Copy {
    let threshold = if ratio >= 1.0 {
        u64::MAX
    } else if ratio <= 0.0 {
        0
    } else {
        (ratio * u64::MAX as f64) as u64
    };
    move |id: &[u8; 16]| {
        let mut top = [0u8; 8];
        top.copy_from_slice(&id[8..]);
        threshold == u64::MAX || u64::from_be_bytes(top) < threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// An independent reading of the specification, with a regex (§3.2 and §4.3).
    fn oracle(s: &[u8]) -> Option<(String, String, String)> {
        let v00 = regex::bytes::Regex::new(r"(?s-u)^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$").unwrap();
        let future = regex::bytes::Regex::new(r"(?s-u)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$").unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (t, p, f) = if let Some(c) = v00.captures(s) {
            (text(&c[1]), text(&c[2]), text(&c[3]))
        } else {
            let c = future.captures(s)?;
            if &c[1] == b"00" || &c[1] == b"ff" {
                return None;
            }
            (text(&c[2]), text(&c[3]), text(&c[4]))
        };
        if t.bytes().all(|b| b == b'0') || p.bytes().all(|b| b == b'0') {
            return None;
        }
        Some((t, p, f))
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn agrees(s: &[u8]) {
        let ours = TraceParent::parse(s).map(|t| (hex(&t.trace_id), hex(&t.parent_id), hex(&[t.flags])));
        assert_eq!(ours, oracle(s), "{:?}", String::from_utf8_lossy(s));
    }

    #[test]
    fn the_specification_examples() {
        let t = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&t.parent_id), "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
        assert_eq!(&TraceParent::encode(&t.trace_id, &t.parent_id, t.flags), VALID.as_bytes());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
            agrees(bad.as_bytes());
        }
        // A future version: the first four fields, whatever follows a `-`.
        for future in
            ["cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"]
        {
            assert_eq!(TraceParent::parse(future.as_bytes()).map(|t| t.trace_id), Some(t.trace_id), "{future}");
            agrees(future.as_bytes());
        }
    }

    #[test]
    fn headers_are_replaced_and_tracestate_follows_validity() {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=x"));
        let t = Trace::start(&h, true, |_| false);
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.map(|p| hex(&p)).as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.recorded, "the client's sampled flag is kept");
        t.set_headers(&mut h);
        let sent = TraceParent::parse(h[&TRACEPARENT].as_bytes()).unwrap();
        assert_eq!((sent.trace_id, sent.parent_id, sent.flags), (t.trace_id, t.span_id, 1));
        assert_eq!(h[&TRACESTATE], "vendor=x");

        let mut bad = HeaderMap::new();
        bad.insert(&TRACEPARENT, HeaderValue::from_static("00-zz"));
        bad.insert(&TRACESTATE, HeaderValue::from_static("vendor=x"));
        let t = Trace::start(&bad, true, |_| true);
        assert_eq!(t.parent_id, None);
        assert!(t.recorded);
        t.set_headers(&mut bad);
        assert!(!bad.contains_key(&TRACESTATE), "tracestate goes with an invalid traceparent");
        assert_eq!(TraceParent::parse(bad[&TRACEPARENT].as_bytes()).unwrap().trace_id, t.trace_id);

        let mut twice = HeaderMap::new();
        twice.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        twice.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(Trace::start(&twice, false, |_| false).parent_id, None, "two traceparents: a new trace");
    }

    #[test]
    fn ids_are_distinct_and_never_zero() {
        let ids: std::collections::HashSet<[u8; 8]> = (0..10_000).map(|_| span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&[0; 8]));
        assert_ne!(trace_id(), trace_id());
    }

    #[test]
    fn the_ratio_sampler_keeps_its_share() {
        let all = ratio_sampler(1.0);
        let none = ratio_sampler(0.0);
        let quarter = ratio_sampler(0.25);
        let kept = (0..4000).filter(|_| quarter(&trace_id())).count();
        assert!((800..1200).contains(&kept), "{kept}");
        assert!(all(&[0xff; 16]) && !none(&[0; 16]));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(15), ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_and_agree_with_the_oracle(s in proptest::collection::vec(any::<u8>(), 0..80)) {
            agrees(&s);
        }

        #[test]
        fn near_misses_agree_with_the_oracle(
            version in "[0-9a-fA-F]{2}",
            trace in "[0-9a-fA-F]{30,33}",
            parent in "[0-9a-f]{15,17}|0{16}",
            flags in "[0-9a-fA-F]{1,3}",
            tail in "|-|-[a-z0-9-]{0,8}|[a-z]",
            zero_trace in any::<bool>(),
        ) {
            let trace = if zero_trace { "0".repeat(32) } else { trace };
            let s = format!("{version}-{trace}-{parent}-{flags}{tail}");
            agrees(s.as_bytes());
        }

        #[test]
        fn what_is_encoded_parses_back(t in any::<[u8; 16]>(), p in any::<[u8; 8]>(), f in any::<u8>()) {
            let v = TraceParent::encode(&t, &p, f);
            let parsed = TraceParent::parse(&v);
            if t == [0; 16] || p == [0; 8] {
                prop_assert_eq!(parsed, None);
            } else {
                prop_assert_eq!(parsed, Some(TraceParent { trace_id: t, parent_id: p, flags: f }));
            }
        }
    }
}
