//! Oracles shared by the fuzz targets in `fuzz/` and this crate's property tests: each runs the
//! code under test on one input and panics when a property does not hold, so that `cargo fuzz`
//! (nightly, minutes) and proptest (stable, in `cargo test`) check the same things. Not API.

use sha2::{Digest, Sha256};

use crate::domain::{ApiKey, KeyError, KEY_PREFIX};

const KEY_LEN: usize = 58;
const SEPARATOR_AT: usize = 51;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `s` has the key format, read independently of `ApiKey::verify`.
fn well_formed(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == KEY_LEN
        && s.starts_with(KEY_PREFIX)
        && b[SEPARATOR_AT] == b'_'
        && b.iter().enumerate().skip(KEY_PREFIX.len()).all(|(i, c)| i == SEPARATOR_AT || c.is_ascii_alphanumeric())
}

/// Any presented string: `verify` agrees with the format, and a key it accepts round-trips
/// through `parse`, hashes to its SHA-256 and does not leak through `Debug`.
pub fn check_presented_key(presented: &str) {
    let shaped = well_formed(presented);
    match ApiKey::verify(presented) {
        Ok(hash) => {
            assert!(shaped, "verify accepted a malformed key {presented:?}");
            assert_eq!(hash.0, <[u8; 32]>::from(Sha256::digest(presented.as_bytes())), "hash of {presented:?}");
            let key = ApiKey::parse(presented).expect("parse accepts what verify accepts");
            assert_eq!(key.expose(), presented);
            assert_eq!(key.hash(), hash);
            let shown = key.display_prefix();
            assert!(shown.len() == KEY_PREFIX.len() + 4 && presented.starts_with(&shown), "display prefix {shown:?}");
            assert!(!format!("{key:?}").contains(&presented[shown.len()..]), "Debug leaks the secret");
        }
        Err(KeyError::Malformed) => assert!(!shaped, "verify called a well-formed key malformed: {presented:?}"),
        Err(KeyError::BadChecksum) => {
            assert!(shaped, "a malformed key reached the checksum: {presented:?}");
            assert_eq!(ApiKey::parse(presented), Err(KeyError::BadChecksum));
        }
    }
}

/// The 256-bit number the key body spells in base 62, or `None` if it needs more bits.
fn decode_body(body: &[u8]) -> Option<[u8; 32]> {
    let mut n = [0u8; 33];
    for c in body {
        let digit = ALPHABET.iter().position(|a| a == c)?;
        let mut carry = digit as u32;
        for byte in n.iter_mut().rev() {
            let acc = u32::from(*byte) * 62 + carry;
            *byte = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    if n[0] != 0 {
        return None;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&n[1..]);
    Some(out)
}

/// A key made from `random` verifies and its body spells exactly those bits; replacing up to
/// four consecutive characters of the body (a burst CRC-32 always detects) or of the checksum,
/// chosen by `at` and `replacement`, makes it fail the checksum.
pub fn check_generated_key(random: [u8; 32], at: usize, in_checksum: bool, replacement: &[u8]) {
    let key = ApiKey::from_random(random);
    let s = key.expose();
    check_presented_key(s);
    assert!(ApiKey::verify(s).is_ok(), "a generated key does not verify: {s}");
    assert_eq!(decode_body(&s.as_bytes()[KEY_PREFIX.len()..SEPARATOR_AT]), Some(random), "the body of {s} does not spell its bits");

    let len = replacement.len().clamp(1, 4);
    let (start, region) =
        if in_checksum { (SEPARATOR_AT + 1, KEY_LEN - SEPARATOR_AT - 1) } else { (KEY_PREFIX.len(), SEPARATOR_AT - KEY_PREFIX.len()) };
    let from = start + at % (region - len + 1);
    let mut mutated = s.as_bytes().to_vec();
    for (i, slot) in mutated[from..from + len].iter_mut().enumerate() {
        *slot = ALPHABET[usize::from(replacement.get(i).copied().unwrap_or(0)) % ALPHABET.len()];
    }
    if mutated != s.as_bytes() {
        let mutated = String::from_utf8(mutated).expect("alphanumeric");
        assert_eq!(ApiKey::verify(&mutated), Err(KeyError::BadChecksum), "{mutated} (from {s}) passed the checksum");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_judged_by_its_format(s in "\\PC{0,70}") {
            check_presented_key(&s);
        }

        #[test]
        fn near_keys_are_judged_by_their_format(s in "tp_live_[0-9A-Za-z_]{40,52}") {
            check_presented_key(&s);
        }

        #[test]
        fn generated_keys_verify_and_typos_do_not(
            random in any::<[u8; 32]>(),
            at in any::<usize>(),
            in_checksum in any::<bool>(),
            replacement in proptest::collection::vec(any::<u8>(), 1..5),
        ) {
            check_generated_key(random, at, in_checksum, &replacement);
        }
    }

    #[test]
    fn the_extreme_bit_patterns_encode() {
        for random in [[0u8; 32], [0xff; 32]] {
            check_generated_key(random, 0, false, b"z");
        }
    }
}
