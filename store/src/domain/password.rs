//! Passwords: length rules at parse time, argon2id (OWASP parameters: m=19 MiB, t=2, p=1) off the
//! async runtime.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_LEN: usize = 256;

/// A password that meets the length rules. `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Under [`MIN_PASSWORD_LEN`] characters.
    #[error("use at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    /// Over [`MAX_PASSWORD_LEN`] characters.
    #[error("use at most {MAX_PASSWORD_LEN} characters")]
    TooLong,
}

impl Password {
    /// Parse a new password.
    pub fn parse(input: &str) -> Result<Password, PasswordError> {
        let n = input.chars().count();
        if n < MIN_PASSWORD_LEN {
            Err(PasswordError::TooShort)
        } else if n > MAX_PASSWORD_LEN {
            Err(PasswordError::TooLong)
        } else {
            Ok(Password(input.to_owned()))
        }
    }
    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Hash with argon2id on the blocking pool; returns the PHC string.
pub async fn hash_password(password: &Password) -> String {
    let pw = password.0.clone();
    tokio::task::spawn_blocking(move || Argon2::default().hash_password(pw.as_bytes()).map(|h| h.to_string()).unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// A real hash of a throwaway password, verified against when the account does not exist so that
/// unknown and known emails take the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| Argon2::default().hash_password(b"turnpike-timing-equaliser").map(|h| h.to_string()).unwrap_or_default())
}

/// Verify on the blocking pool. `None` for the hash verifies against a dummy and returns false.
pub async fn verify_password(candidate: &str, phc: Option<&str>) -> bool {
    let pw = candidate.to_owned();
    let known = phc.is_some();
    let phc = phc.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let phc = phc.as_deref().unwrap_or_else(|| dummy_hash());
        let ok = PasswordHash::new(phc).map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok()).unwrap_or(false);
        ok && known
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert_eq!(Password::parse("short").unwrap_err(), PasswordError::TooShort);
        assert!(Password::parse("correct horse battery").is_ok());
        assert_eq!(Password::parse(&"x".repeat(300)).unwrap_err(), PasswordError::TooLong);
        assert_eq!(format!("{:?}", Password::parse("correct horse battery").unwrap()), "Password([redacted])");
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let pw = Password::parse("correct horse battery").unwrap();
        let h = hash_password(&pw).await;
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)).await);
        assert!(!verify_password("correct horse batterx", Some(&h)).await);
        assert!(!verify_password("correct horse battery", None).await);
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(PasswordHash::new(dummy_hash()).is_ok());
    }
}
