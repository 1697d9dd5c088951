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

    /// Adds an address that is a secret (a webhook URL, a Sentry DSN, an Event Hubs
    /// connection string): the whole value, and the parts of it a service may echo back on
    /// their own: the user and password of a URL, path segments and query values that look
    /// like tokens (eight characters or more with a digit, or twenty or more), and the values
    /// of `...Key=`, `...Signature=`, `...Password=`, `...Secret=` and `...Token=` pairs of a
    /// `;`-separated connection string, and the parts of a `user:password` or `id:secret`
    /// value. Plain words such as `services` or `webhooks` stay
    /// readable.
    pub fn add_address(&mut self, value: &str) {
        self.add(value);
        let looks_like_token = |part: &str| {
            (part.len() >= 8 && part.bytes().any(|b| b.is_ascii_digit())) || part.len() >= 20
        };
        if value.contains(';') || !value.contains("://") {
            for pair in value.split(';') {
                if let Some((k, v)) = pair.split_once('=') {
                    let k = k.trim().to_ascii_lowercase();
                    if ["key", "signature", "password", "secret", "token"]
                        .iter()
                        .any(|w| k.contains(w))
                    {
                        self.add(v.trim());
                    }
                }
            }
        }
        let Some((_, rest)) = value.split_once("://") else {
            // `user:password` tokens (Bitbucket) and `id:secret` ones (Telegram bots).
            for part in value.split(':') {
                if looks_like_token(part) {
                    self.add(part);
                }
            }
            return;
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            self.add(user);
            self.add(password);
            self.add(userinfo);
        }
        for segment in path.split('/') {
            if looks_like_token(segment) {
                self.add(segment);
            }
            // Telegram's `bot<token>` and the like: the token after a word prefix.
            if let Some((_, after)) = segment.split_once(':')
                && looks_like_token(after)
            {
                self.add(after);
            }
        }
        for pair in query.split('&') {
            let v = pair.split_once('=').map_or(pair, |(_, v)| v);
            if looks_like_token(v) {
                self.add(v);
            }
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
    fn addresses_mask_their_token_parts() {
        let mut m = Masker::new();
        m.add_address(
            "https://hooks.slack.com/services/T0123/B0456/xoxsecretpart1234?key=k3y-value-99&x=1",
        );
        m.add_address("http://dsnkey-12345678@sentry.example.com/42");
        m.add_address(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=sas/Key+9=;EntityPath=hub",
        );
        m.add_address("http://user-1:pa55-word@proxy:8080");
        m.add_address("123456:bot-token-part-77");
        let text = "bad xoxsecretpart1234 k3y-value-99 dsnkey-12345678 sas/Key+9= pa55-word user-1 bot-token-part-77 on services";
        assert_eq!(
            m.mask(text),
            "bad ***** ***** ***** ***** ***** ***** ***** on services"
        );
    }

    /// Found by the `parsers` fuzz target: a secret made of asterisks is replaced by the mask,
    /// which contains it; masking must still end and leave no other character.
    #[test]
    fn a_secret_of_asterisks_is_masked_once() {
        let mut m = Masker::new();
        m.add_address("****");
        assert_eq!(m.mask("a **** b"), "a ***** b");
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
