//! API keys: `tp_live_<43 base62 chars of 256 random bits>_<6 base62 chars of CRC-32>`.
//!
//! The checksum lets the gateway (and secret scanners) refuse a mistyped or made-up key without a
//! database lookup. Only the SHA-256 of the whole key is stored.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every Turnpike key starts with this.
pub const KEY_PREFIX: &str = "tp_live_";
const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 6;
const KEY_LEN: usize = KEY_PREFIX.len() + BODY_LEN + 1 + CHECK_LEN;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented key was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Wrong prefix, length or characters.
    #[error("malformed API key")]
    Malformed,
    /// Well-formed, but the checksum does not match: a typo or a made-up key.
    #[error("API key checksum mismatch")]
    BadChecksum,
}

/// A full API key secret. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

/// SHA-256 of a key: what the database stores and the gateway looks up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({})", &hex::encode(self.0)[..12])
    }
}

impl KeyHash {
    /// Hex form, used in change events.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parse the hex form.
    pub fn from_hex(s: &str) -> Option<KeyHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(KeyHash(out))
    }
}

fn base62_fixed(mut bytes: Vec<u8>, width: usize) -> String {
    // Repeated division of a big-endian number by 62; fine for 32 bytes, done once per key.
    let mut digits = Vec::with_capacity(width);
    for _ in 0..width {
        let mut rem: u32 = 0;
        for b in bytes.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// The checksum of `body` as six base62 digits, without allocating.
fn checksum(body: &str) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

impl ApiKey {
    /// A new key from 256 bits of the operating system's randomness.
    pub fn generate() -> ApiKey {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        ApiKey::from_random(random)
    }

    /// The key for these 256 random bits. Deterministic, so that the fuzzers and property tests
    /// can build valid keys; real keys come from [`generate`](Self::generate).
    #[doc(hidden)]
    pub fn from_random(random: [u8; 32]) -> ApiKey {
        let body = format!("{KEY_PREFIX}{}", base62_fixed(random.to_vec(), BODY_LEN));
        let check = checksum(&body);
        ApiKey(format!("{body}_{}", std::str::from_utf8(&check).unwrap_or_default()))
    }

    /// Check format and checksum; no I/O, no allocation on the failure paths.
    pub fn verify(presented: &str) -> Result<KeyHash, KeyError> {
        let b = presented.as_bytes();
        if b.len() != KEY_LEN
            || !presented.starts_with(KEY_PREFIX)
            || b[KEY_LEN - CHECK_LEN - 1] != b'_'
            || !b[KEY_PREFIX.len()..KEY_LEN - CHECK_LEN - 1].iter().all(u8::is_ascii_alphanumeric)
            || !b[KEY_LEN - CHECK_LEN..].iter().all(u8::is_ascii_alphanumeric)
        {
            return Err(KeyError::Malformed);
        }
        let (body, check) = presented.split_at(KEY_LEN - CHECK_LEN - 1);
        if checksum(body) != check.as_bytes()[1..] {
            return Err(KeyError::BadChecksum);
        }
        Ok(KeyHash(Sha256::digest(b).into()))
    }

    /// Parse a presented key into an owned `ApiKey`.
    pub fn parse(presented: &str) -> Result<ApiKey, KeyError> {
        Self::verify(presented).map(|_| ApiKey(presented.to_owned()))
    }

    /// The stored hash.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The part safe to show and log: the prefix and the first four random characters.
    pub fn display_prefix(&self) -> String {
        self.0[..KEY_PREFIX.len() + 4].to_owned()
    }

    /// The secret itself, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_verify_and_are_distinct() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), KEY_LEN);
        assert_eq!(ApiKey::verify(a.expose()), Ok(a.hash()));
        assert!(!format!("{a:?}").contains(&a.expose()[12..]));
    }

    #[test]
    fn a_single_typo_fails_the_checksum() {
        let k = ApiKey::generate();
        let mut s = k.expose().to_owned().into_bytes();
        let i = KEY_PREFIX.len() + 5;
        s[i] = if s[i] == b'a' { b'b' } else { b'a' };
        assert_eq!(ApiKey::verify(std::str::from_utf8(&s).unwrap()), Err(KeyError::BadChecksum));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for s in ["", "tp_live_", "Bearer x", "tp_test_0000000000000000000000000000000000000000000_000000"] {
            assert_eq!(ApiKey::verify(s), Err(KeyError::Malformed), "{s}");
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in "\\PC*") {
            let _ = ApiKey::verify(&s);
        }

        #[test]
        fn near_misses_never_verify(pos in 8usize..57, c in "[0-9A-Za-z]") {
            let k = ApiKey::generate();
            let mut s = k.expose().to_owned();
            if pos != 51 && s.as_bytes()[pos] as char != c.chars().next().unwrap() {
                s.replace_range(pos..pos + 1, &c);
                prop_assert!(ApiKey::verify(&s).is_err());
            }
        }
    }
}
