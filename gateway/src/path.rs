//! Path hygiene, before routing: the path a request is routed on and forwarded with has no
//! dot-segments in any spelling, so a request can never leave its route prefix or its target's
//! base path, whatever the upstream decodes.
//!
//! The policy (the README's "Path policy" has the table):
//! * `.` and `..` segments are resolved (RFC 3986 §5.2.4), also when spelled with `%2e`/`%2E`
//!   (`%2e%2e`, `.%2e`, `%2E.`); the route is then chosen by the resolved path. A `..` that
//!   would climb above the root is refused.
//! * Runs of `/` are merged into one (`//x` would read as an authority to some frameworks).
//! * Refused with `400 bad_path`: an encoded slash or backslash (`%2f`, `%5c`), a raw
//!   backslash, an encoded NUL or control character, a malformed `%` escape, a double-encoded
//!   escape (`%25` followed by two hex digits, e.g. `%252e`), and a segment that is a
//!   dot-segment once its `;` parameters are removed (`..;x`, Tomcat's `/..;/`).
//! * Nothing else is decoded or re-encoded: `/%65cho` does not match `/echo`.

use std::borrow::Cow;

/// The path cannot be routed safely (answered `400 bad_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request path is ambiguous or escapes its root")]
pub struct BadPath;

/// The normalised path for routing and forwarding; borrowed (no allocation) when the path is
/// already clean, which is every ordinary request. A path that does not start with `/`
/// (`OPTIONS *`) is left alone: no route matches it.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Ok(Cow::Borrowed(path));
    }
    // Fast path: nothing that could form a dot-segment (a segment starting with `.` or `%`), an
    // escape, a parameter or an empty segment. `x.json` stays on it.
    let mut prev = 0;
    let suspicious = b.iter().any(|&c| {
        let s = matches!(c, b'%' | b'\\' | b';') || (prev == b'/' && matches!(c, b'/' | b'.'));
        prev = c;
        s
    });
    if !suspicious {
        return Ok(Cow::Borrowed(path));
    }
    check_escapes(b)?;
    let mut out: Vec<&str> = Vec::new();
    let mut segments = path[1..].split('/').peekable();
    let mut trailing_slash = false;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if seg.is_empty() {
            // An empty segment: merged away, except that a final one keeps the trailing slash.
            trailing_slash = last;
            continue;
        }
        match dot_segment(seg)? {
            Some(Dot::One) => trailing_slash = last,
            Some(Dot::Two) => {
                out.pop().ok_or(BadPath)?;
                trailing_slash = last;
            }
            None => {
                out.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing_slash || out.is_empty() {
        s.push('/');
    }
    Ok(if s == path { Cow::Borrowed(path) } else { Cow::Owned(s) })
}

enum Dot {
    One,
    Two,
}

/// Whether `seg` is `.` or `..` in any spelling; an error if it is one with `;` parameters
/// (also an encoded `;`, which an upstream may decode before it strips parameters).
fn dot_segment(seg: &str) -> Result<Option<Dot>, BadPath> {
    let b = seg.as_bytes();
    let escape = |i: usize, hi: u8, lo: u8| b.len() >= i + 3 && b[i] == b'%' && b[i + 1] == hi && b[i + 2].eq_ignore_ascii_case(&lo);
    let (mut i, mut dots, mut params) = (0, 0, false);
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if escape(i, b'2', b'e') {
            i += 3;
        } else if b[i] == b';' || escape(i, b'3', b'b') {
            params = true;
            break;
        } else {
            return Ok(None);
        }
        dots += 1;
    }
    let dot = match dots {
        1 => Dot::One,
        2 => Dot::Two,
        _ => return Ok(None),
    };
    if params {
        return Err(BadPath);
    }
    Ok(Some(dot))
}

/// Refuse escapes that hide a separator or a second decoding, malformed escapes, and raw
/// backslashes.
fn check_escapes(b: &[u8]) -> Result<(), BadPath> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err(BadPath),
            b'%' => {
                let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) else {
                    return Err(BadPath);
                };
                let decoded = h << 4 | l;
                // `/`, `\`, controls (NUL, CR, LF, …, DEL)
                if matches!(decoded, b'/' | b'\\' | 0x00..=0x1f | 0x7f) {
                    return Err(BadPath);
                }
                // `%25` followed by two hex digits: an escape meant to be decoded twice.
                if decoded == b'%' && b.get(i + 3).and_then(|c| hex(*c)).is_some() && b.get(i + 4).and_then(|c| hex(*c)).is_some() {
                    return Err(BadPath);
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(p: &str) -> Result<String, BadPath> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn clean_paths_are_borrowed() {
        for p in ["/", "/echo", "/echo/x/y", "/echo/x.json", "/a/b/", "*"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
        assert_eq!(n("/echo/v1.2/x.json"), Ok("/echo/v1.2/x.json".into()));
        assert_eq!(n("/echo/a%20b/%7Euser"), Ok("/echo/a%20b/%7Euser".into()));
    }

    #[test]
    fn dot_segments_in_every_spelling_are_resolved() {
        for (p, want) in [
            ("/echo/../admin", "/admin"),
            ("/echo/./x", "/echo/x"),
            ("/echo/x/..", "/echo/"),
            ("/echo/x/.", "/echo/x/"),
            ("/echo/x/../", "/echo/"),
            ("/echo/%2e%2e/admin", "/admin"),
            ("/echo/%2E%2E/admin", "/admin"),
            ("/echo/.%2e/admin", "/admin"),
            ("/echo/%2e./admin", "/admin"),
            ("/echo/%2E./admin", "/admin"),
            ("/echo/%2e/x", "/echo/x"),
            ("/echo/a/b/../../c", "/echo/c"),
            ("/echo//x", "/echo/x"),
            ("//echo///x//", "/echo/x/"),
            ("/echo/...", "/echo/..."),
            ("/echo/..../x", "/echo/..../x"),
            ("/echo/.x/..y", "/echo/.x/..y"),
        ] {
            assert_eq!(n(p), Ok(want.to_owned()), "{p}");
        }
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for p in [
            "/..",
            "/echo/../..",
            "/echo/../../etc/passwd",
            "/%2e%2e/x",
            "/echo/..%2f..%2fadmin",
            "/echo/..%2F..%2Fadmin",
            "/echo/%2f",
            "/echo/..%5c..%5cadmin",
            "/echo/x\\..\\admin",
            "/echo\\x",
            "/echo/..;/admin",
            "/echo/.;x/y",
            "/echo/%2e%2e;jsessionid=1/admin",
            "/echo/..%3b/admin",
            "/echo/.%2E%3Bx/admin",
            "/echo/%252e%252e/admin",
            "/echo/%252fadmin",
            "/echo/%255c",
            "/echo/%00",
            "/echo/x%0d%0aHost:%20evil",
            "/echo/%7f",
            "/echo/%",
            "/echo/%2",
            "/echo/%zz",
            "/echo/%2g",
        ] {
            assert_eq!(n(p), Err(BadPath), "{p}");
        }
        // Parameters on ordinary segments and a literal percent sign stay allowed.
        assert_eq!(n("/echo/x;v=1/y"), Ok("/echo/x;v=1/y".into()));
        assert_eq!(n("/echo/100%25"), Ok("/echo/100%25".into()));
        assert_eq!(n("/echo/100%25off"), Ok("/echo/100%25off".into()));
    }

    /// What an upstream that percent-decodes `times` times and then resolves dot-segments
    /// would see differently from what it was sent; `None` when nothing changes.
    fn decoded_escape(p: &str, times: usize) -> Option<String> {
        let mut s = p.to_owned();
        for _ in 0..times {
            let b = s.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() && hex(b[i + 1]).is_some() && hex(b[i + 2]).is_some() {
                    out.push(hex(b[i + 1]).unwrap() << 4 | hex(b[i + 2]).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            s = String::from_utf8_lossy(&out).into_owned();
        }
        let bad = s.contains('\\')
            || s.contains("//")
            || s.split('/').any(|seg| seg == "." || seg == ".." || seg.starts_with("..;") || seg.starts_with(".;"));
        bad.then_some(s)
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", ";", ";x=1", "%25", "%252e", "%", "a", "b", "echo", "x.json",
            "%41", "%00", "...", "%3b", "%3B",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the spelling: the result is absolute, idempotent, and no upstream that
        /// decodes it once or twice finds a dot-segment, a backslash or an empty segment in it;
        /// a path under `/echo/` that resolves to somewhere else never still starts with
        /// `/echo/` by accident of spelling.
        #[test]
        fn nothing_escapes_after_normalising(pieces in prop::collection::vec(piece(), 0..12)) {
            let raw = format!("/echo/{}", pieces.concat());
            if let Ok(p) = normalize(&raw) {
                prop_assert!(p.starts_with('/'), "{raw} → {p}");
                prop_assert_eq!(normalize(&p).map(Cow::into_owned), Ok(p.clone().into_owned()), "idempotent: {}", raw);
                for times in 1..=2 {
                    prop_assert!(decoded_escape(&p, times).is_none(), "{raw} → {p} decodes ({times}×) to {:?}", decoded_escape(&p, times));
                }
                // Base path kept: forwarding `p` under a base `/base` never resolves above it.
                let forwarded = format!("/base{p}");
                prop_assert!(decoded_escape(&forwarded, 2).is_none());
            }
        }
    }
}
