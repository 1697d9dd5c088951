//! herald-http: the one outbound HTTP client of herald, shared by every provider family.
//!
//! [`HttpClient`] is built from a provider's [`herald_core::ProviderConfig`] and behaves like
//! the client Flux's notification-controller posts with: HTTP/1.1 with title-case header names,
//! connection errors, `429` and `5xx` (except `501`) classified as worth retrying (with the
//! server's `Retry-After` attached to the error), every attempt bounded by the provider's
//! `spec.timeout`; an explicit proxy (HTTP or HTTPS, with Basic credentials:
//! absolute-form requests for `http://` destinations and a `CONNECT` tunnel for `https://`
//! ones, as Go does; or SOCKS5) or else the `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` environment;
//! a custom CA that replaces the system roots (which are read at the first handshake that needs
//! them, not when a client is built) and a client certificate for mTLS. TLS is
//! rustls with the *ring* provider, passed explicitly; verification is never disabled. Every
//! error message is masked with the provider's secrets and shows URLs only as
//! `scheme://host[:port]/…`.
//!
//! A [`HttpClient::send`] is one attempt by default: herald's daemon retries durably, in its
//! delivery engine, and `herald send` with [`RetryPolicy::flux`]. A caller that wants retries
//! inside one send (go-retryablehttp's behaviour, within the timeout) sets a policy with
//! [`HttpClient::with_retry_policy`]; the decision is [`RetryPolicy::verdict`] either way.
//!
//! [`provider`] is the toolkit every HTTP provider is built with: the endpoint ([`provider::Endpoint`]),
//! credentials and masking ([`provider::Setup`]), the provider shape ([`provider::HttpProvider`]:
//! typed config, pure render, request, answer check), the notifier that sends, and the family
//! tables ([`provider::Table`]). [`preview`] shows a request as it would be sent, secrets
//! masked (`herald render`). [`form`] writes form bodies and queries as Go does. [`jwt`]
//! signs the RS256 assertions of services that trade one for an access token (GitHub Apps,
//! Google service accounts) and caches those tokens.
//!
//! It is *not* a provider itself: it renders no payload, follows no redirects, sends no body it
//! was not given and decodes no compressed responses. It never logs secrets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_core::{ProviderConfig, ProviderType};
//! use herald_http::{HttpClient, Request};
//!
//! let config = ProviderConfig::new(
//!     ProviderType::Generic, "flux-system", "hook", "https://hooks.example.com/flux",
//! );
//! let client = HttpClient::from_config(&config)?;
//! let response = client
//!     .send(Request::post_json(config.address.expose(), r#"{"hello":"world"}"#))
//!     .await?;
//! assert!(response.status.is_success());
//! # Ok(()) }
//! ```

mod client;
mod connect;
mod endpoint;
pub mod form;
pub mod jwt;
pub mod preview;
pub mod provider;
mod text;
mod tls;

use bytes::Bytes;
pub use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

pub use client::HttpClient;
pub use text::redact_url;

/// The `User-Agent` herald sends unless a request sets its own.
pub const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// Installs rustls' *ring* provider as the process-wide default, for crates that rely on one.
/// Idempotent; does nothing (and never panics) if a default is already installed. herald-http
/// itself does not need it: it always passes *ring* explicitly.
pub fn install_crypto_provider() {
    // An error only means that some provider is already the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// When and how often a failed request is tried again: herald's one retry policy, from
/// [`herald_core::retry`]. [`HttpClient`] makes one attempt unless given another policy.
pub use herald_core::RetryPolicy;

/// An outbound request. Its `Debug` output shows the URL through [`redact_url`], header
/// names without their values and the body's length only, since all of these may hold secrets.
#[derive(Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute `http://` or `https://` URL.
    pub url: String,
    /// Headers, sent in this order (see [`Request::header`]).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A `POST` of `body` with `Content-Type: application/json`.
    pub fn post_json(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Request::new(Method::POST, url)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(body)
    }

    /// A `POST` of `body` with `Content-Type: application/x-www-form-urlencoded` (see
    /// [`form::encode`]).
    pub fn post_form(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Request::new(Method::POST, url)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body)
    }

    /// Sets a header: a header of the same name set earlier is replaced.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    /// Sets each of `headers`, in order (see [`Request::header`]).
    pub fn headers(self, headers: &[(HeaderName, HeaderValue)]) -> Self {
        headers
            .iter()
            .fold(self, |req, (n, v)| req.header(n.clone(), v.clone()))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A response with a `2xx` status.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (at most [`HttpClient::MAX_BODY`] bytes).
    pub body: Bytes,
}

/// Parses a header from configuration (a Secret's `headers`, a provider option). Leading and
/// trailing whitespace of the value is dropped, as Go does when it writes the header, and the
/// value is marked sensitive. The error names the header but never shows its value.
pub fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}: it must be a non-empty HTTP token"))?;
    let mut header_value = HeaderValue::from_bytes(value.trim_matches([' ', '\t']).as_bytes())
        .map_err(|_| {
            format!("invalid value for header {name:?}: it contains a line break or another control character")
        })?;
    header_value.set_sensitive(true);
    Ok((header_name, header_value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_replaces_and_post_json_sets_the_content_type() {
        let req = Request::post_json("http://x/", "{}")
            .header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )
            .header(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("text/plain"),
            )
            .header(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            );
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(headers, [("content-type", "text/plain"), ("x-a", "2")]);
        assert_eq!(req.method, Method::POST);
        assert_eq!(&req.body[..], b"{}");
        let shown = format!(
            "{:?}",
            req.header(
                HeaderName::from_static("authorization"),
                HeaderValue::from_static("Bearer t0ken-x")
            )
        );
        assert_eq!(
            shown,
            "Request { method: POST, url: \"http://x\", headers: [\"content-type\", \"x-a\", \"authorization\"], body_len: 2 }"
        );
        let shown = format!("{:?}", Request::new(Method::GET, "https://h/secret/path"));
        assert!(
            shown.contains("https://h/…") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn parse_header_checks_names_and_values_without_echoing_values() {
        let (n, v) = parse_header("X-Token", "  Bearer s3cr3t-value \t").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("x-token", "Bearer s3cr3t-value")
        );
        let (_, v) = parse_header("X-Unicode", "prod 🌍").unwrap();
        assert_eq!(v.as_bytes(), "prod 🌍".as_bytes());
        let err = parse_header("Bad Header", "v").unwrap_err();
        assert!(err.contains("\"Bad Header\""), "{err}");
        assert!(parse_header("", "v").is_err());
        let err = parse_header("X-Token", "s3cr3t-value\r\nInjected: yes").unwrap_err();
        assert!(err.contains("X-Token") && !err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn install_crypto_provider_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
