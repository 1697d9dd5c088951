//! Values that must never reach a log line, an error message or `Debug` output.

use std::fmt;

/// What every redacted value prints as.
pub const REDACTED: &str = "*****";

/// A secret string (token, password, webhook URL with an embedded token, header value).
///
/// `Debug` and `Display` print `*****`; the value is only reachable through
/// [`SecretString::expose`], which makes every use greppable.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value itself. Never log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString(value.to_owned())
    }
}

/// Secret bytes (a `Secret` data value, a private key).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps a value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        SecretBytes(value.into())
    }

    /// The bytes themselves. Never log or format them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a UTF-8 string, if they are one.
    pub fn to_secret_string(&self) -> Option<SecretString> {
        std::str::from_utf8(&self.0).ok().map(SecretString::new)
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Replaces every known secret value in a text with `*****`.
///
/// Flux masks only the `token` key; herald masks every secret it resolved for a provider
/// (token, password, header values, the address when it came from a Secret, proxy
/// credentials). Values shorter than [`Masker::MIN_LEN`] bytes are not masked, since masking
/// them would garble unrelated text; they are too short to be credentials worth the name.
#[derive(Clone, Default)]
pub struct Masker {
    values: Vec<String>,
}

impl Masker {
    /// The shortest value that is masked.
    pub const MIN_LEN: usize = 4;

    /// A masker with no values.
    pub fn new() -> Self {
        Masker::default()
    }

    /// Adds a value to mask.
    pub fn add(&mut self, value: &str) {
        if value.len() >= Self::MIN_LEN && !self.values.iter().any(|v| v == value) {
            self.values.push(value.to_owned());
            // Longest first, so that a secret containing another is masked whole.
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// Adds every value of another masker.
    pub fn extend(&mut self, other: &Masker) {
        for v in &other.values {
            self.add(v);
        }
    }

    /// Whether the masker knows no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The text with every known value replaced by `*****`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker({} values)", self.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let s = SecretString::new("hunter2-token");
        assert_eq!(format!("{s} {s:?}"), "***** *****");
        assert_eq!(format!("{:?}", SecretBytes::new(b"key".to_vec())), "*****");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn masker_masks_longest_first_and_skips_short_values() {
        let mut m = Masker::new();
        m.add("abc");
        m.add("token");
        m.add("token-extended");
        assert_eq!(
            m.mask("x token-extended y token abc"),
            "x ***** y ***** abc"
        );
        assert_eq!(format!("{m:?}"), "Masker(2 values)");
    }
}
