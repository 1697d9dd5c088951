//! What the nine providers share: address parsing, credentials, the notifier that sends a
//! rendered request, and error masking.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use herald_core::{
    BuildError, DeliveryError, Event, Masker, Notifier, NotifyFuture, ProviderConfig, SecretString,
};
use herald_http::{HeaderName, HeaderValue, HttpClient, Request, Response, RetryPolicy};

/// Where the address came from, for error messages (never echoed: webhook URLs carry tokens).
pub(crate) fn address_field(config: &ProviderConfig) -> &'static str {
    if config.address_from_secret {
        "secret key \"address\""
    } else {
        "spec.address"
    }
}

/// A validated `http`/`https` address, userinfo removed.
pub(crate) struct Endpoint {
    /// The URL without `user:password@`.
    pub(crate) url: url::Url,
    /// `Basic …` from the address's userinfo: Go's HTTP client sends it when the request has
    /// no `Authorization` header of its own, and so does herald.
    pub(crate) basic: Option<HeaderValue>,
    /// The userinfo password, to be masked.
    pub(crate) password: Option<SecretString>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &herald_http::redact_url(self.url.as_str()))
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

/// Parses the Provider's address. `what` names it in messages ("Slack webhook URL").
pub(crate) fn endpoint(config: &ProviderConfig, what: &str) -> Result<Endpoint, BuildError> {
    parse_endpoint(config.address.expose(), address_field(config), what)
}

/// [`endpoint`] for any string; errors name `field` and never quote the value.
pub(crate) fn parse_endpoint(raw: &str, field: &str, what: &str) -> Result<Endpoint, BuildError> {
    let invalid = |why: String| BuildError::invalid(field, format!("invalid {what}: {why}"));
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(invalid("the address is empty".to_owned()));
    }
    // The url crate's errors never quote the input, so they are safe to show.
    let mut url =
        url::Url::parse(raw).map_err(|e| invalid(format!("not an absolute URL ({e})")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(invalid(format!("scheme {other:?} is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    let (mut basic, mut password) = (None, None);
    if !url.username().is_empty() || url.password().is_some() {
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        let pass = decode(url.password().unwrap_or_default());
        // Cannot fail for an http(s) URL with a host.
        if url.set_username("").is_err() || url.set_password(None).is_err() {
            return Err(invalid(
                "the user name and password cannot be removed from it".to_owned(),
            ));
        }
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        basic = Some(sensitive(&value, field)?);
        password = Some(SecretString::new(pass));
    }
    Ok(Endpoint {
        url,
        basic,
        password,
    })
}

/// A URL that is a base other paths are appended to (Matrix homeserver, Telegram API): no
/// query or fragment, returned without its trailing slashes.
pub(crate) fn base_url(endpoint: &Endpoint, field: &str, what: &str) -> Result<String, BuildError> {
    if endpoint.url.query().is_some() || endpoint.url.fragment().is_some() {
        return Err(BuildError::invalid(
            field,
            format!("invalid {what}: it must not have a query or a fragment"),
        ));
    }
    Ok(endpoint.url.as_str().trim_end_matches('/').to_owned())
}

/// The Secret's token with surrounding whitespace removed (a bearer token never contains any,
/// and a trailing newline from `echo` is the usual mistake), or `None` when it is empty.
pub(crate) fn token(config: &ProviderConfig) -> Option<SecretString> {
    config
        .token
        .as_ref()
        .map(|t| t.expose().trim())
        .filter(|t| !t.is_empty())
        .map(SecretString::new)
}

/// A header value marked sensitive; `field` names the setting when it cannot be one.
pub(crate) fn sensitive(value: &str, field: &str) -> Result<HeaderValue, BuildError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        BuildError::invalid(
            field,
            "contains characters that are not allowed in an HTTP header (a line break or another \
             control character)",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// `Bearer <token>`, or `Bearer` alone for an empty token (what Go puts on the wire for
/// `"Bearer " + ""`: it trims header values).
pub(crate) fn bearer(token: Option<&SecretString>) -> Result<HeaderValue, BuildError> {
    match token {
        Some(t) => sensitive(&format!("Bearer {}", t.expose()), "secret key \"token\""),
        None => Ok(HeaderValue::from_static("Bearer")),
    }
}

/// A JSON `POST` of `body` to `url`, with `authorization` when there is one.
pub(crate) fn post_json(
    url: &SecretString,
    body: Vec<u8>,
    authorization: Option<&HeaderValue>,
) -> Request {
    let request = Request::post_json(url.expose(), body);
    match authorization {
        Some(value) => request.header(authorization_name(), value.clone()),
        None => request,
    }
}

/// The `authorization` header name.
pub(crate) fn authorization_name() -> HeaderName {
    HeaderName::from_static("authorization")
}

/// Characters escaped in one path segment: everything but RFC 3986 `pchar` (unreserved,
/// sub-delims, `:` and `@`). A Matrix room id `!abc:example.org` stays as it is; `/`, `?`,
/// `#`, `%`, spaces and non-ASCII characters are percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
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

/// `s` escaped for use as one URL path segment.
pub(crate) fn path_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The emoji of Telegram, Lark and Matrix headings.
pub(crate) fn emoji(event: &Event) -> &'static str {
    if event.severity.is_error() {
        "🚨"
    } else {
        "💫"
    }
}

/// A rendering failure (cannot happen for string-only payloads, but is never a panic).
pub(crate) fn render_error(err: &serde_json::Error) -> DeliveryError {
    DeliveryError::permanent(format!("cannot encode the request body: {err}"))
}

/// One provider's request and answer; [`ChatNotifier`] does the sending.
pub(crate) trait Chat: fmt::Debug + Send + Sync + 'static {
    /// The request for `event`: method, URL, headers and the rendered body.
    fn request(&self, event: &Event) -> Result<Request, DeliveryError>;

    /// Checks a `2xx` answer (Slack's `ok:false`); the default accepts every one.
    fn check(&self, _response: &Response) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// A [`Chat`] with its HTTP client (timeout, proxy, TLS, retries) and its masker.
struct ChatNotifier<C> {
    chat: C,
    client: HttpClient,
    masker: Masker,
    id: String,
}

impl<C: Chat> fmt::Debug for ChatNotifier<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatNotifier")
            .field("provider", &self.id)
            .field("chat", &self.chat)
            .field("client", &self.client)
            .finish()
    }
}

/// Builds the notifier of `chat`: every provider goes through [`HttpClient::from_config`],
/// so every one honours the Provider's proxy, custom CA, client certificate and timeout.
pub(crate) fn notifier<C: Chat>(
    chat: C,
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
    extra_secrets: &[&SecretString],
) -> Result<Arc<dyn Notifier>, BuildError> {
    let mut client = HttpClient::from_config(config)?;
    if let Some(policy) = retry {
        client = client.with_retry_policy(policy);
    }
    let mut masker = config.masker();
    masker.extend(client.masker());
    for secret in extra_secrets {
        masker.add(secret.expose());
        // The same value as it appears in a URL path.
        masker.add(&path_segment(secret.expose()));
    }
    Ok(Arc::new(ChatNotifier {
        chat,
        client,
        masker,
        id: config.id(),
    }))
}

impl<C: Chat> Notifier for ChatNotifier<C> {
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async move {
            let request = self
                .chat
                .request(event)
                .map_err(|e| mask(&self.masker, &e.context(format!("provider {}", self.id))))?;
            let what = format!(
                "provider {}: {} {}",
                self.id,
                request.method,
                herald_http::redact_url(&request.url)
            );
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| mask(&self.masker, &e))?;
            self.chat
                .check(&response)
                .map_err(|e| mask(&self.masker, &e.context(what)))
        })
    }
}

/// The error with every known secret masked, keeping its classification and status.
pub(crate) fn mask(masker: &Masker, err: &DeliveryError) -> DeliveryError {
    let message = masker.mask(err.message());
    let masked = if err.is_retryable() {
        DeliveryError::transient(message)
    } else {
        DeliveryError::permanent(message)
    };
    match err.status() {
        Some(status) => masked.with_status(status),
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ProviderType;

    fn cfg(address: &str) -> ProviderConfig {
        ProviderConfig::new(ProviderType::Slack, "ns", "p", address)
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        let e = endpoint(&cfg(" https://us%40er:p%3Ass@h.example.com/x?y=1 "), "URL").unwrap();
        assert_eq!(e.url.as_str(), "https://h.example.com/x?y=1");
        assert_eq!(
            e.basic.unwrap().to_str().unwrap(),
            format!("Basic {}", STANDARD.encode("us@er:p:ss"))
        );
        assert_eq!(e.password.unwrap().expose(), "p:ss");
        assert!(
            endpoint(&cfg("http://127.0.0.1:1/"), "URL")
                .unwrap()
                .basic
                .is_none()
        );
    }

    #[test]
    fn bad_addresses_are_named_and_never_echoed() {
        for (address, want) in [
            ("", "the address is empty"),
            ("  ", "the address is empty"),
            ("not a url", "not an absolute URL"),
            ("ftp://h/x", "scheme \"ftp\""),
            ("mailto:someone", "scheme \"mailto\""),
        ] {
            let err = endpoint(&cfg(address), "Slack URL")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("spec.address: invalid Slack URL"), "{err}");
            assert!(err.contains(want), "{address}: {err}");
        }
        let mut c = cfg("gopher://secret-token-xyz@h/");
        c.address_from_secret = true;
        let err = endpoint(&c, "URL").unwrap_err().to_string();
        assert!(err.starts_with("secret key \"address\""), "{err}");
        assert!(!err.contains("secret-token-xyz"), "{err}");
    }

    #[test]
    fn base_urls_lose_trailing_slashes_and_refuse_queries() {
        let e = endpoint(&cfg("https://matrix.example.org/"), "URL").unwrap();
        assert_eq!(
            base_url(&e, "f", "URL").unwrap(),
            "https://matrix.example.org"
        );
        let e = endpoint(&cfg("https://h/prefix//"), "URL").unwrap();
        assert_eq!(base_url(&e, "f", "URL").unwrap(), "https://h/prefix");
        let e = endpoint(&cfg("https://h/?x=1"), "URL").unwrap();
        assert!(
            base_url(&e, "f", "URL")
                .unwrap_err()
                .to_string()
                .contains("query")
        );
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

    #[test]
    fn tokens_are_trimmed_and_checked() {
        let mut c = cfg("http://h/");
        assert!(token(&c).is_none());
        c.token = Some(SecretString::new(" \n"));
        assert!(token(&c).is_none());
        c.token = Some(SecretString::new("xoxb-1\n"));
        assert_eq!(token(&c).unwrap().expose(), "xoxb-1");
        assert_eq!(bearer(None).unwrap(), "Bearer");
        let err = bearer(Some(&SecretString::new("a\u{1}b-secret")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("secret key \"token\": "), "{err}");
        assert!(!err.contains("b-secret"), "{err}");
    }
}
