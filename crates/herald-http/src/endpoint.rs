//! [`Endpoint`]: a provider's HTTP address, parsed and checked once when the notifier is built.

use std::fmt;

use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use herald_core::{BuildError, SecretString};
use http::{HeaderValue, Uri};

use crate::text::redact_url;

/// Bytes of a path that cannot be sent as written and are percent-encoded, as the url crate
/// and Go do: space, `"`, `<`, `>`, `\`, `` ` ``, `{`, `}` (non-ASCII characters are always
/// encoded, as UTF-8). `%` is kept, so escapes already in the address stay as they are.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The same for a query: space, `"`, `<`, `>` and non-ASCII characters.
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>');

/// Characters escaped in one path segment: everything but RFC 3986 `pchar` (unreserved,
/// sub-delims, `:` and `@`). A Matrix room id `!abc:example.org` stays as it is; `/`, `?`,
/// `#`, `%`, spaces and non-ASCII characters are percent-encoded.
const SEGMENT: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// `s` escaped for use as one URL path segment (a Matrix room, a Telegram bot token).
pub fn path_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// An `http://` or `https://` address with a host, ready to send requests to.
///
/// Parsing follows what Go's HTTP client does with the same address (so what Flux sends):
/// surrounding whitespace is dropped, `user:password@` becomes a `Basic` authorization (sent
/// when the provider sets no `Authorization` of its own) and is removed from the URL, the
/// fragment is never sent, and bytes that cannot stand in a request target (spaces, `"`,
/// non-ASCII characters, ...) are percent-encoded. The host is kept as written. Errors name
/// the field and never quote the address, which may hold a token.
#[derive(Clone)]
pub struct Endpoint {
    scheme: &'static str,
    /// `host[:port]`, without userinfo.
    authority: String,
    /// The host, lower-case, without the port (IPv6 without brackets).
    host: String,
    /// Starts with `/`; percent-encoded.
    path: String,
    query: Option<String>,
    fragment: bool,
    basic: Option<HeaderValue>,
    password: Option<SecretString>,
    /// Where the address came from and what it is, for later errors ([`Endpoint::base`]).
    field: String,
    what: String,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redact_url(&self.url()))
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Parses `raw`. `field` names where it came from (`spec.address`) and `what` what it is
    /// ("Slack URL"); errors read `<field>: invalid <what>: <why>`.
    pub fn parse(raw: &str, field: &str, what: &str) -> Result<Endpoint, BuildError> {
        let invalid = |why: &str| BuildError::invalid(field, format!("invalid {what}: {why}"));
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(invalid("the address is empty"));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid(
                "it contains a line break or another control character",
            ));
        }
        let (scheme, rest) = split_scheme(raw).map_err(|why| invalid(&why))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((info, host_port)) => (Some(info), host_port),
            None => (None, authority),
        };
        let host = host(host_port).map_err(invalid)?;
        let (before_fragment, fragment) = match tail.split_once('#') {
            Some((before, _)) => (before, true),
            None => (tail, false),
        };
        let (path, query) = match before_fragment.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (before_fragment, None),
        };
        let mut endpoint = Endpoint {
            scheme,
            authority: host_port.to_owned(),
            host,
            path: String::new(),
            query: query.map(|q| utf8_percent_encode(q, QUERY).to_string()),
            fragment,
            basic: None,
            password: None,
            field: field.to_owned(),
            what: what.to_owned(),
        };
        endpoint.set_path(path);
        if let Some(info) = userinfo {
            let (user, password) = userinfo_parts(info);
            endpoint.basic = Some(crate::provider::sensitive(
                &basic_value(&user, &password),
                field,
            )?);
            endpoint.password = Some(SecretString::new(password));
        }
        // What the client will parse again when it sends: refuse here what it would refuse.
        if endpoint.url().parse::<Uri>().is_err() {
            return Err(invalid("not a valid URL"));
        }
        Ok(endpoint)
    }

    /// The URL requests go to: no userinfo, no fragment.
    pub fn url(&self) -> String {
        let mut url = format!("{}://{}{}", self.scheme, self.authority, self.path);
        if let Some(query) = &self.query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// `scheme://host[:port]`: the address without path, query or userinfo (the API root of
    /// PagerDuty and Datadog, which Flux takes from any address of the service).
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The host, lower-case, without port or brackets: for comparisons (`slack.com`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path, percent-encoded; `/` at least.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Replaces the path (encoded as [`Endpoint::parse`] encodes it); the query is kept.
    pub fn set_path(&mut self, path: &str) {
        let encoded = utf8_percent_encode(path, PATH).to_string();
        self.path = match encoded.as_str() {
            "" => "/".to_owned(),
            p if p.starts_with('/') => encoded,
            p => format!("/{p}"),
        };
    }

    /// The query, percent-encoded, without the `?`; `None` when the address has none.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Replaces the query with `query`, an already encoded one (see [`crate::form::encode`]).
    pub fn set_query(&mut self, query: &str) {
        self.query = Some(utf8_percent_encode(query, QUERY).to_string());
    }

    /// `Basic …` from the address's `user:password@`, if it had one.
    pub fn basic(&self) -> Option<&HeaderValue> {
        self.basic.as_ref()
    }

    /// The password of the address's userinfo, to be masked.
    pub(crate) fn password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// The URL as a base other paths are appended to (a Matrix homeserver, the Telegram Bot
    /// API): no query or fragment allowed, trailing slashes dropped.
    pub fn base(&self) -> Result<String, BuildError> {
        if self.query.is_some() || self.fragment {
            return Err(BuildError::invalid(
                &self.field,
                format!(
                    "invalid {}: it must not have a query or a fragment",
                    self.what
                ),
            ));
        }
        Ok(self.url().trim_end_matches('/').to_owned())
    }
}

/// `http` or `https`, and what follows `://`. A URL of another scheme says which.
fn split_scheme(raw: &str) -> Result<(&'static str, &str), String> {
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    let Some((scheme, rest)) = raw.split_once(':').filter(|(s, _)| is_scheme(s)) else {
        return Err("not an absolute URL (expected http:// or https://)".to_owned());
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        other => return Err(format!("scheme {other:?} is not http or https")),
    };
    match rest.strip_prefix("//") {
        Some(rest) => Ok((scheme, rest)),
        None => Err(format!(
            "not an absolute URL (expected {scheme}://host/...)"
        )),
    }
}

/// The host of `host[:port]`, lower-case, checked; the port must be a number up to 65535.
fn host(host_port: &str) -> Result<String, &'static str> {
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("invalid IPv6 host")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("invalid IPv6 host");
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("invalid port")?)),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host.is_ascii() {
        return Err("the host name is not ASCII: write it in its ASCII (punycode, xn--…) form");
    }
    if !host_port.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err("invalid host");
    }
    if let Some(port) = port.filter(|p| !p.is_empty())
        && port.parse::<u16>().is_err()
    {
        return Err("invalid port number");
    }
    Ok(host.to_ascii_lowercase())
}

/// The percent-decoded user and password of a URL's `user[:password]` (malformed escapes are
/// kept as written).
pub(crate) fn userinfo_parts(info: &str) -> (String, String) {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let (user, password) = info.split_once(':').unwrap_or((info, ""));
    (decode(user), decode(password))
}

/// `Basic base64(user:password)`.
pub(crate) fn basic_value(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Endpoint, String> {
        Endpoint::parse(raw, "spec.address", "URL").map_err(|e| e.to_string())
    }

    #[test]
    fn userinfo_becomes_basic_auth_and_leaves_the_url() {
        let e = parse(" https://us%40er:p%3Ass@h.example.com/x?y=1 ").unwrap();
        assert_eq!(e.url(), "https://h.example.com/x?y=1");
        assert_eq!(e.origin(), "https://h.example.com");
        let mut e = e;
        assert_eq!(e.query(), Some("y=1"));
        e.set_query("format=full&y=1");
        assert_eq!(e.url(), "https://h.example.com/x?format=full&y=1");
        assert_eq!(
            e.basic().unwrap().to_str().unwrap(),
            basic_value("us@er", "p:ss")
        );
        assert!(e.basic().unwrap().is_sensitive());
        assert_eq!(e.password().unwrap().expose(), "p:ss");
        let e = parse("http://onlyuser@h/").unwrap();
        assert_eq!(e.password().unwrap().expose(), "");
        assert!(parse("http://127.0.0.1:1/").unwrap().basic().is_none());
        assert_eq!(
            basic_value("user", "password"),
            "Basic dXNlcjpwYXNzd29yZA=="
        );
    }

    #[test]
    fn urls_are_sent_as_go_sends_them() {
        for (raw, want) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            (
                "HTTPS://H.Example.com:443/A?b=C",
                "https://H.Example.com:443/A?b=C",
            ),
            (
                "https://h/a b/é?q=a b&r='x'",
                "https://h/a%20b/%C3%A9?q=a%20b&r='x'",
            ),
            (
                "https://h/a\"{b}`<c>\\d|e^f",
                "https://h/a%22%7Bb%7D%60%3Cc%3E%5Cd|e^f",
            ),
            (
                "https://h/x%2Fy/../z?sp=%2Ftriggers",
                "https://h/x%2Fy/../z?sp=%2Ftriggers",
            ),
            ("https://h/x#frag", "https://h/x"),
            ("https://h?x=1", "https://h/?x=1"),
            ("http://[::1]:8/x", "http://[::1]:8/x"),
        ] {
            assert_eq!(parse(raw).unwrap().url(), want, "{raw}");
        }
        let e = parse("https://XXX.Webhook.Office.com:443/webhookb2/x").unwrap();
        assert_eq!(
            (e.host(), e.path()),
            ("xxx.webhook.office.com", "/webhookb2/x")
        );
        assert_eq!(parse("http://[::1]/").unwrap().host(), "::1");
    }

    #[test]
    fn bad_addresses_are_named_and_never_echoed() {
        for (raw, want) in [
            ("", "the address is empty"),
            ("  ", "the address is empty"),
            ("not a url", "not an absolute URL"),
            ("am.example.com/api/v2/alerts", "not an absolute URL"),
            ("http:h.example.com/x", "not an absolute URL"),
            ("ftp://h/x", "scheme \"ftp\" is not http or https"),
            ("mailto:someone", "scheme \"mailto\""),
            ("https://", "no host"),
            ("https:///path", "no host"),
            ("https://ho st/x", "invalid host"),
            ("https://bücher.example/x", "not ASCII"),
            ("https://h:99999/x", "invalid port number"),
            ("https://[::zz]/x", "invalid IPv6 host"),
            ("https://h/a\nb", "control character"),
        ] {
            let err = parse(raw).unwrap_err();
            assert!(
                err.starts_with("spec.address: invalid URL: "),
                "{raw:?}: {err}"
            );
            assert!(err.contains(want), "{raw:?}: {err}");
        }
        let err = Endpoint::parse(
            "gopher://secret-token-xyz@h/",
            "secret key \"address\"",
            "URL",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("secret key \"address\""), "{err}");
        assert!(!err.contains("secret-token-xyz"), "{err}");
    }

    #[test]
    fn paths_can_be_replaced_and_bases_lose_trailing_slashes() {
        let mut e = parse("https://discord.com/api/webhooks/1/tok?wait=true").unwrap();
        let joined = format!("{}/slack", e.path().trim_end_matches('/'));
        e.set_path(&joined);
        assert_eq!(
            e.url(),
            "https://discord.com/api/webhooks/1/tok/slack?wait=true"
        );
        assert_eq!(
            parse("https://matrix.example.org/")
                .unwrap()
                .base()
                .unwrap(),
            "https://matrix.example.org"
        );
        assert_eq!(
            parse("https://h/prefix//").unwrap().base().unwrap(),
            "https://h/prefix"
        );
        for raw in ["https://h/?x=1", "https://h/#f"] {
            let err = parse(raw).unwrap().base().unwrap_err().to_string();
            assert_eq!(
                err,
                "spec.address: invalid URL: it must not have a query or a fragment"
            );
        }
    }

    #[test]
    fn path_segments_keep_room_ids_and_escape_the_rest() {
        assert_eq!(
            path_segment("!abc-DEF_1:example.org"),
            "!abc-DEF_1:example.org"
        );
        assert_eq!(path_segment("#room:x/y?z%"), "%23room:x%2Fy%3Fz%25");
        assert_eq!(path_segment("é "), "%C3%A9%20");
    }
}
