use serde::Serialize;

/// A URL-safe identifier: `[a-z0-9-]`, 1–63 characters, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slug(String);

/// Why a slug was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("use 1–63 lower-case letters, digits and hyphens, starting with a letter or digit")]
pub struct SlugError;

impl Slug {
    /// Parse user input.
    pub fn parse(input: &str) -> Result<Slug, SlugError> {
        let ok = (1..=63).contains(&input.len())
            && input.as_bytes()[0].is_ascii_alphanumeric()
            && input.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Slug(input.to_owned()))
        } else {
            Err(SlugError)
        }
    }
    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
