use serde::Serialize;

/// A syntactically plausible email address, lower-cased so uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

/// Why an email address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not of the form `name@domain.tld`.
    #[error("enter an email address like name@example.com")]
    Invalid,
}

impl Email {
    /// Parse user input.
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let s = input.trim().to_lowercase();
        let (local, domain) = s.split_once('@').ok_or(EmailError::Invalid)?;
        let domain_ok = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if s.len() <= 254 && local_ok && domain_ok {
            Ok(Email(s))
        } else {
            Err(EmailError::Invalid)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        assert!(Email::parse("first.last+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@exa mple.com",
            "ada@@example.com",
            "ada@-x.com",
            "<script>@x.com",
        ] {
            assert!(Email::parse(s).is_err(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_roundtrips(s in "\\PC*") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()), Ok(e.clone()));
            }
        }
    }
}
