//! JWT as a second credential an API can enable. A partner's identity provider signs a token
//! (HS256 with a shared secret, or RS256 with keys from PEM files or a JWKS file); the gateway
//! checks signature, `exp`, `nbf`, `iss` and `aud` against its own clock, and reads the consumer
//! claim (default `sub`), which names the Turnpike API key the call is made under: `key_<id>`
//! as the portal shows it. That key must belong to one of the apps or accounts the block is
//! bound to (`apps`, `accounts`), or the token is refused. From there the call is limited and metered exactly like a call made
//! with that key, and refused if the key is revoked, suspended or unsubscribed.

use std::collections::HashMap;
use std::path::PathBuf;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// One API's JWT settings (`[[jwt]]` in `turnpike.toml`).
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// Slug of the API that accepts JWTs.
    pub api: String,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences), if set.
    pub audience: Option<String>,
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// PEM files with RSA public keys for RS256 tokens.
    pub rsa_public_key_files: Vec<PathBuf>,
    /// A JWKS file (RSA keys, selected by `kid`).
    pub jwks_file: Option<PathBuf>,
    /// Claim naming the API key, `key_<id>`; default `sub`.
    pub consumer_claim: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds; default 30.
    pub leeway_seconds: Option<i64>,
    /// Ids of the apps whose keys this block's tokens may name. Whoever can mint tokens for the
    /// API bills the key a token names, so the set is bounded here; `apps` and `accounts`
    /// together must name at least one (the configuration refuses an unbound block).
    pub apps: Vec<i64>,
    /// Ids of the accounts whose keys (of any of their apps) this block's tokens may name.
    pub accounts: Vec<i64>,
}

impl JwtSettings {
    /// Whether the block names any app or account its tokens may name.
    pub fn is_bound(&self) -> bool {
        !self.apps.is_empty() || !self.accounts.is_empty()
    }
}

/// Why a token was refused (all answer 401; the reason goes to the problem's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT, bad signature, unknown `kid` or algorithm.
    #[error("the token's signature or format is invalid")]
    Invalid,
    /// `exp` missing or passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` or `aud` do not match.
    #[error("the token was issued for another issuer or audience")]
    WrongAudience,
    /// The consumer claim is missing or does not name a key.
    #[error("the token does not name an API key")]
    NoConsumer,
}

/// A configuration error, with the setting it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JwtConfigError(pub String);

/// Verifies one API's tokens.
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    rsa: Vec<DecodingKey>,
    rsa_by_kid: HashMap<String, DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    consumer_claim: String,
    leeway: i64,
    apps: Box<[i64]>,
    accounts: Box<[i64]>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("rsa_keys", &(self.rsa.len() + self.rsa_by_kid.len()))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("apps", &self.apps)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<i64>,
    nbf: Option<i64>,
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl JwtVerifier {
    /// Build from settings, reading key files now so that a bad file stops the start.
    pub fn new(s: &JwtSettings) -> Result<JwtVerifier, JwtConfigError> {
        let hs256 = match &s.hs256_secret {
            Some(secret) if secret.len() < 32 => {
                return Err(JwtConfigError("hs256_secret: must be at least 32 bytes".into()));
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())),
            None => None,
        };
        let mut rsa = Vec::new();
        for path in &s.rsa_public_key_files {
            let pem = std::fs::read(path).map_err(|e| JwtConfigError(format!("rsa_public_key_files: {}: {e}", path.display())))?;
            rsa.push(
                DecodingKey::from_rsa_pem(&pem).map_err(|e| JwtConfigError(format!("rsa_public_key_files: {}: {e}", path.display())))?,
            );
        }
        let mut rsa_by_kid = HashMap::new();
        if let Some(path) = &s.jwks_file {
            let text = std::fs::read_to_string(path).map_err(|e| JwtConfigError(format!("jwks_file: {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| JwtConfigError(format!("jwks_file: {}: {e}", path.display())))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtConfigError(format!("jwks_file: {}: {e}", path.display())))?;
                match &jwk.common.key_id {
                    Some(kid) => {
                        rsa_by_kid.insert(kid.clone(), key);
                    }
                    None => rsa.push(key),
                }
            }
        }
        if hs256.is_none() && rsa.is_empty() && rsa_by_kid.is_empty() {
            return Err(JwtConfigError("no keys: set hs256_secret, rsa_public_key_files or jwks_file".into()));
        }
        Ok(JwtVerifier {
            hs256,
            rsa,
            rsa_by_kid,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            consumer_claim: s.consumer_claim.clone().unwrap_or_else(|| "sub".into()),
            leeway: s.leeway_seconds.unwrap_or(30).max(0),
            apps: s.apps.clone().into_boxed_slice(),
            accounts: s.accounts.clone().into_boxed_slice(),
        })
    }

    /// Whether this block's tokens may name a key of `app_id` (owned by `account_id`). Nothing
    /// is allowed when the block is unbound.
    pub fn may_name(&self, app_id: i64, account_id: i64) -> bool {
        self.apps.contains(&app_id) || self.accounts.contains(&account_id)
    }

    /// Check `token` at `now` (unix seconds) and return the key id it names.
    pub fn verify(&self, token: &str, now: i64) -> Result<i64, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Invalid)?;
        // Time and audience are checked below against the injected clock; the library checks
        // the signature and the algorithm only.
        let mut v = Validation::new(header.alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims: Claims = match header.alg {
            Algorithm::HS256 => {
                let key = self.hs256.as_ref().ok_or(JwtError::Invalid)?;
                jsonwebtoken::decode::<Claims>(token, key, &v).map_err(|_| JwtError::Invalid)?.claims
            }
            Algorithm::RS256 => {
                let candidates: Vec<&DecodingKey> = match header.kid.as_deref().and_then(|k| self.rsa_by_kid.get(k)) {
                    Some(k) => vec![k],
                    None if header.kid.is_some() && self.rsa.is_empty() => return Err(JwtError::Invalid),
                    None => self.rsa.iter().collect(),
                };
                candidates.into_iter().find_map(|k| jsonwebtoken::decode::<Claims>(token, k, &v).ok()).ok_or(JwtError::Invalid)?.claims
            }
            _ => return Err(JwtError::Invalid),
        };
        match claims.exp {
            // Saturating: `exp` comes from the token and the leeway from the configuration.
            Some(exp) if now <= exp.saturating_add(self.leeway) => {}
            _ => return Err(JwtError::Expired),
        }
        if claims.nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(JwtError::NotYetValid);
        }
        if let Some(iss) = &self.issuer {
            if claims.iss.as_deref() != Some(iss) {
                return Err(JwtError::WrongAudience);
            }
        }
        if let Some(aud) = &self.audience {
            let ok = match &claims.aud {
                Some(Audience::One(a)) => a == aud,
                Some(Audience::Many(all)) => all.iter().any(|a| a == aud),
                None => false,
            };
            if !ok {
                return Err(JwtError::WrongAudience);
            }
        }
        let consumer = match self.consumer_claim.as_str() {
            "iss" => claims.iss.clone(),
            name => claims.rest.get(name).and_then(|v| v.as_str()).map(str::to_owned),
        };
        consumer.as_deref().and_then(parse_key_ref).ok_or(JwtError::NoConsumer)
    }
}

/// `key_<id>` → id.
pub fn parse_key_ref(s: &str) -> Option<i64> {
    s.strip_prefix("key_")?.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Whether a bearer credential is shaped like a JWT rather than a Turnpike key.
pub(crate) fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            api: "echo".into(),
            issuer: Some("https://idp.test".into()),
            audience: Some("echo".into()),
            hs256_secret: Some(SECRET.into()),
            ..JwtSettings::default()
        })
        .unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    #[test]
    fn a_valid_token_names_its_key() {
        let t = token(serde_json::json!({"sub": "key_42", "exp": 2000, "nbf": 900, "iss": "https://idp.test", "aud": ["x", "echo"]}));
        assert!(looks_like_jwt(&t));
        assert_eq!(verifier().verify(&t, 1000), Ok(42));
    }

    #[test]
    fn time_issuer_audience_and_signature_are_checked() {
        let v = verifier();
        let base = serde_json::json!({"sub": "key_1", "exp": 2000, "iss": "https://idp.test", "aud": "echo"});
        let with = |k: &str, val: serde_json::Value| {
            let mut c = base.clone();
            c[k] = val;
            token(c)
        };
        assert_eq!(v.verify(&token(base.clone()), 2000 + 31), Err(JwtError::Expired));
        assert_eq!(v.verify(&token(base.clone()), 2000 + 30), Ok(1), "leeway");
        assert_eq!(v.verify(&with("exp", serde_json::Value::Null), 1000), Err(JwtError::Expired), "exp is required");
        assert_eq!(v.verify(&with("nbf", 1100.into()), 1000), Err(JwtError::NotYetValid));
        assert_eq!(v.verify(&with("iss", "https://evil.test".into()), 1000), Err(JwtError::WrongAudience));
        assert_eq!(v.verify(&with("aud", "other".into()), 1000), Err(JwtError::WrongAudience));
        assert_eq!(v.verify(&with("sub", "42".into()), 1000), Err(JwtError::NoConsumer));
        let forged =
            encode(&Header::new(Algorithm::HS256), &base, &EncodingKey::from_secret(b"another secret of thirty-two bytes!!")).unwrap();
        assert_eq!(v.verify(&forged, 1000), Err(JwtError::Invalid));
        assert_eq!(v.verify("eyJ.not.jwt", 1000), Err(JwtError::Invalid));
        // "none" and algorithms the API did not configure are refused.
        let signed = token(base);
        let payload = signed.split('.').nth(1).unwrap();
        let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(v.verify(&format!("{none_header}.{payload}."), 1000), Err(JwtError::Invalid));
    }

    /// Found by `fuzzing::check_jwt` (proptest and the `jwt` fuzz target): `exp + leeway`
    /// overflowed, a panic in debug builds and, wrapped in release builds, a token that never
    /// expires (or any token under a huge `leeway_seconds`) refused as expired.
    #[test]
    fn extreme_times_and_leeway_do_not_overflow() {
        let claims = |exp: i64| serde_json::json!({"sub": "key_3", "exp": exp, "iss": "https://idp.test", "aud": "echo"});
        assert_eq!(verifier().verify(&token(claims(i64::MAX)), 1000), Ok(3));
        let lenient = JwtVerifier::new(&JwtSettings {
            api: "echo".into(),
            hs256_secret: Some(SECRET.into()),
            leeway_seconds: Some(4_512_935_184_168_851_068),
            ..JwtSettings::default()
        })
        .unwrap();
        assert_eq!(lenient.verify(&token(claims(4_710_436_852_685_924_740)), 0), Ok(3));
        let early = serde_json::json!({"sub": "key_3", "exp": i64::MAX, "nbf": i64::MAX});
        assert_eq!(lenient.verify(&token(early), i64::MAX), Ok(3));
        assert_eq!(verifier().verify(&token(claims(1000)), i64::MAX), Err(JwtError::Expired));
    }

    #[test]
    fn a_block_may_name_only_the_apps_and_accounts_it_is_bound_to() {
        let bound = |apps: Vec<i64>, accounts: Vec<i64>| {
            JwtVerifier::new(&JwtSettings { api: "x".into(), hs256_secret: Some(SECRET.into()), apps, accounts, ..JwtSettings::default() })
                .unwrap()
        };
        assert!(bound(vec![7], vec![]).may_name(7, 1));
        assert!(!bound(vec![7], vec![]).may_name(8, 1));
        assert!(bound(vec![], vec![3]).may_name(8, 3));
        assert!(!bound(vec![], vec![3]).may_name(8, 4));
        assert!(!bound(vec![], vec![]).may_name(1, 1), "unbound: nothing");
        assert!(!JwtSettings::default().is_bound());
    }

    #[test]
    fn a_short_secret_or_no_key_is_a_config_error() {
        let e = JwtVerifier::new(&JwtSettings { api: "x".into(), hs256_secret: Some("short".into()), ..JwtSettings::default() });
        assert!(e.unwrap_err().0.contains("hs256_secret"));
        assert!(JwtVerifier::new(&JwtSettings { api: "x".into(), ..JwtSettings::default() }).unwrap_err().0.contains("no keys"));
    }

    fn base64_url(b: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, byte)| n | (u32::from(*byte) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
