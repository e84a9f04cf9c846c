//! Oracles shared by the fuzz targets in `fuzz/` and this crate's property tests: each runs the
//! code under test on one input and panics when a property does not hold, so that `cargo fuzz`
//! (nightly, minutes) and proptest (stable, in `cargo test`) check the same things. Not API.

use crate::{mac, sign, verify_signature, WebhookError, SIGNATURE_TOLERANCE_SECS};

/// Whether `now` is within the tolerance of `t`, computed without overflow.
fn fresh(t: i64, now: i64) -> bool {
    (i128::from(now) - i128::from(t)).abs() <= i128::from(SIGNATURE_TOLERANCE_SECS)
}

/// Any `Stripe-Signature` value: no panic, and an accepted one carries a `t` whose HMAC over
/// the payload is one of its `v1` values, within the tolerance of `now`.
pub fn check_signature_header(secret: &str, payload: &[u8], header: Option<&str>, now: i64) {
    let result = verify_signature(secret, payload, header, now);
    let Some(header) = header else {
        assert_eq!(result, Err(WebhookError::MissingSignature));
        return;
    };
    assert_ne!(result, Err(WebhookError::MissingSignature));
    if result.is_ok() {
        let parts: Vec<(&str, &str)> = header.split(',').filter_map(|p| p.trim().split_once('=')).collect();
        let t: i64 = parts.iter().rev().find(|(k, _)| *k == "t").and_then(|(_, v)| v.parse().ok()).expect("an accepted header has a t");
        let expected = hex::encode(mac(secret, t, payload));
        assert!(
            parts.iter().any(|(k, v)| *k == "v1" && v.eq_ignore_ascii_case(&expected)),
            "{header:?} accepted without the signature for t={t}"
        );
        assert!(fresh(t, now), "{header:?} accepted at {now}, outside the tolerance");
    }
}

/// A header Stripe would send for `payload` at `t`, with `extra` members (none of them a `t`)
/// around it: accepted exactly when `now` is within the tolerance of `t`, and refused for any
/// other payload or secret.
pub fn check_signed(secret: &str, payload: &[u8], t: i64, now: i64, extra: &[String], at: usize) {
    let signed = sign(secret, payload, t);
    let mut members: Vec<&str> = extra.iter().map(String::as_str).filter(|m| !m.contains(',') && !m.trim().starts_with("t=")).collect();
    members.insert(at % (members.len() + 1), &signed);
    let header = members.join(",");
    check_signature_header(secret, payload, Some(&header), now);
    let want = if fresh(t, now) { Ok(()) } else { Err(WebhookError::StaleTimestamp) };
    assert_eq!(verify_signature(secret, payload, Some(&header), now), want, "{header:?} at {now}");

    let mut other = payload.to_vec();
    other.push(b'x');
    assert_eq!(verify_signature(secret, &other, Some(&header), now), Err(WebhookError::BadSignature), "another payload");
    let other_secret = format!("{secret}x");
    assert_eq!(verify_signature(&other_secret, payload, Some(&header), now), Err(WebhookError::BadSignature), "another secret");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![any::<i64>(), 1_600_000_000i64..1_900_000_000, Just(i64::MAX), Just(i64::MIN)]
    }

    proptest! {
        #[test]
        fn any_header_is_judged_without_panic(
            header in proptest::option::of("((t|v1|v0| t|x)=[0-9a-f+-]{0,6}[, ]{0,2}){0,5}|[ -~]{0,40}"),
            now in timestamp(),
        ) {
            check_signature_header("whsec_test", b"{}", header.as_deref(), now);
        }

        #[test]
        fn signed_headers_verify_within_the_tolerance(
            secret in "whsec_[a-zA-Z0-9]{0,12}",
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            t in timestamp(),
            skew in prop_oneof![-400i64..400, any::<i64>()],
            extra in proptest::collection::vec("(v1=[0-9a-f]{0,64})|(v0=[a-z]{0,4})|[ =a-z0-9]{0,6}", 0..4),
            at in any::<usize>(),
        ) {
            check_signed(&secret, &payload, t, t.wrapping_add(skew), &extra, at);
        }
    }
}
