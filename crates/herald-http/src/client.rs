//! [`HttpClient`]: one attempt, the retry loop and the error messages.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use herald_core::{BuildError, DeliveryError, Masker, ProviderConfig};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::connect::{self, Connector, Proxy, ProxyError, Route};
use crate::{Request, Response, RetryPolicy, USER_AGENT, text, tls};
use herald_core::retry::Verdict;

/// Stands in for a deadline beyond what the clock can represent (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The HTTP client of one provider: its timeout, proxy, TLS material and secrets.
///
/// Cloning is cheap and clones share idle connections. `Debug` shows no secret.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<Connector>, Full<Bytes>>,
    id: String,
    timeout: Duration,
    retry: RetryPolicy,
    masker: Masker,
    /// Whether the address came from a Secret: its path is then masked wherever it shows up.
    address_from_secret: bool,
    /// Which proxy, if any, each destination goes through.
    route: Route,
    /// The route, for `Debug`.
    shown_route: String,
    custom_ca: bool,
    client_cert: bool,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.id)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("route", &self.shown_route)
            .field("custom_ca", &self.custom_ca)
            .field("client_cert", &self.client_cert)
            .field("masker", &self.masker)
            .finish()
    }
}

/// Why one attempt failed, ready for a message.
#[derive(Debug)]
struct Failure {
    /// `HTTP 503 Service Unavailable: <snippet>`, `tcp connect error: ...`.
    text: String,
    status: Option<u16>,
    retryable: bool,
    /// The server's `Retry-After` (429 and 503 only).
    retry_after: Option<Duration>,
}

impl Failure {
    /// The failure as the retry policy sees it (no message: only the classification).
    fn classified(&self) -> DeliveryError {
        let err = if self.retryable {
            DeliveryError::transient(String::new())
        } else {
            DeliveryError::permanent(String::new())
        };
        match self.retry_after {
            Some(wait) => err.with_retry_after(wait),
            None => err,
        }
    }
}

impl HttpClient {
    /// The largest response body read for a successful response.
    pub const MAX_BODY: usize = 10 * 1024 * 1024;

    /// How much of an error response's body is read (for the message snippet).
    const MAX_ERROR_BODY: usize = 64 * 1024;

    /// A client for a provider: `cfg.timeout` bounds every [`HttpClient::send`], `cfg.proxy`
    /// (or else the environment's `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`) routes connections,
    /// `cfg.tls` sets the CA and client certificate, and `cfg.masker()` cleans messages.
    pub fn from_config(cfg: &ProviderConfig) -> Result<Self, BuildError> {
        HttpClient::build(cfg, connect::env_matcher())
    }

    /// [`HttpClient::from_config`] with the environment proxies given by `env` (for tests).
    pub(crate) fn build(cfg: &ProviderConfig, env: Arc<Matcher>) -> Result<Self, BuildError> {
        let tls_config = tls::client_config(&cfg.tls)?;
        let (route, shown) = match &cfg.proxy {
            Some(p) => {
                let proxy = Proxy::from_config(p)?;
                let shown = format!("proxy {}", proxy.describe());
                (Route::Fixed(Arc::new(proxy)), shown)
            }
            None => (Route::Env(env), "environment proxies".to_owned()),
        };
        let connector = Connector::new(route.clone(), tls_config.clone());
        let https = HttpsConnector::from((connector, tls_config));
        let client = Client::builder(TokioExecutor::new())
            .http1_title_case_headers(true)
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(HttpClient {
            client,
            id: cfg.id(),
            timeout: cfg.timeout,
            retry: RetryPolicy::default(),
            masker: cfg.masker(),
            address_from_secret: cfg.address_from_secret,
            route,
            shown_route: shown,
            custom_ca: cfg.tls.ca_pem.is_some(),
            client_cert: cfg.tls.cert_pem.is_some(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The masker every message of this client goes through.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Sends `req`: one attempt, or as many as the client's [`RetryPolicy`] allows, all within
    /// the provider's timeout. `Ok` only for a `2xx` answer; every error is masked, shows the
    /// URL only through [`crate::redact_url`], and carries the service's status and
    /// `Retry-After` for whoever retries.
    pub async fn send(&self, req: Request) -> Result<Response, DeliveryError> {
        self.send_ref(&req).await
    }

    /// [`HttpClient::send`] of a request the caller keeps (for its own error messages).
    pub async fn send_ref(&self, req: &Request) -> Result<Response, DeliveryError> {
        let started = Instant::now();
        // A timeout too large for the clock is as good as none.
        let deadline = started
            .checked_add(self.timeout)
            .unwrap_or_else(|| started + FAR_FUTURE);
        // Built only for an error: a delivery that succeeds pays for neither.
        let fail = |message: String, failure: Option<&Failure>, retryable: bool| {
            let masker = self.masker_for(&req.url);
            let what = format!(
                "provider {}: {} {}",
                self.id,
                req.method,
                text::redact_url(&req.url)
            );
            let message = masker.mask(&format!("{what}: {message}"));
            let mut err = if retryable {
                DeliveryError::transient(message)
            } else {
                DeliveryError::permanent(message)
            };
            if let Some(code) = failure.and_then(|f| f.status) {
                err = err.with_status(code);
            }
            if let Some(wait) = failure.and_then(|f| f.retry_after) {
                err = err.with_retry_after(wait);
            }
            err
        };
        let uri = match target(&req.url) {
            Ok(uri) => uri,
            Err(why) => return Err(fail(why, None, false)),
        };

        let mut attempts = 0u32;
        let mut last: Option<Failure> = None;
        loop {
            attempts += 1;
            let failure = match tokio::time::timeout_at(deadline, self.attempt(req, &uri)).await {
                Err(_elapsed) => {
                    let mut message = format!(
                        "timed out after {} ({}",
                        text::duration(self.timeout),
                        text::attempts(attempts)
                    );
                    if let Some(last) = &last {
                        message.push_str(&format!("; last error: {}", last.text));
                    }
                    message.push(')');
                    // The wait a service asked for earlier does not apply to a timeout.
                    let status = last.and_then(|l| l.status);
                    let err = fail(message, None, true);
                    return Err(match status {
                        Some(code) => err.with_status(code),
                        None => err,
                    });
                }
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(failure)) => failure,
            };
            let wait = match self.retry.verdict(attempts, &failure.classified()) {
                Verdict::Permanent => {
                    return Err(fail(failure.text.clone(), Some(&failure), false));
                }
                Verdict::Exhausted if attempts == 1 => {
                    // One attempt was all the policy allowed: the error as it is.
                    return Err(fail(failure.text.clone(), Some(&failure), true));
                }
                Verdict::Exhausted => {
                    let message = format!(
                        "giving up after {}: {}",
                        text::attempts(attempts),
                        failure.text
                    );
                    return Err(fail(message, Some(&failure), true));
                }
                Verdict::RetryIn(wait) => wait,
            };
            if Instant::now()
                .checked_add(wait)
                .is_none_or(|resume| resume >= deadline)
            {
                let message = format!(
                    "giving up after {}: the next retry in {} would pass the {} timeout; last error: {}",
                    text::attempts(attempts),
                    text::duration(wait),
                    text::duration(self.timeout),
                    failure.text
                );
                return Err(fail(message, Some(&failure), true));
            }
            tracing::debug!(
                provider = %self.id, attempt = attempts, wait = %text::duration(wait),
                error = %self.masker_for(&req.url).mask(&failure.text), "retrying"
            );
            last = Some(failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// The masker for messages about a request to `url`: the client's, plus the URL's path
    /// when the address came from a Secret.
    fn masker_for(&self, url: &str) -> Masker {
        let mut masker = self.masker.clone();
        if self.address_from_secret
            && let Some(path) = path_and_query(url)
        {
            masker.add(path);
        }
        masker
    }

    /// One attempt: `Ok` for a 2xx answer with its whole body.
    async fn attempt(&self, req: &Request, uri: &Uri) -> Result<Response, Failure> {
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(uri.clone());
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if needs_user_agent(&req.headers) {
            builder = builder.header(http::header::USER_AGENT, USER_AGENT);
        }
        // An http:// destination behind an HTTP proxy: the request itself goes to the proxy
        // (in absolute form), so it carries the proxy's credentials, as in Go.
        let proxy = self.route.proxy_for(uri);
        let forwarded = proxy.as_ref().and_then(|p| p.forwards(uri));
        if let Some(Some(auth)) = forwarded {
            builder = builder.header(http::header::PROXY_AUTHORIZATION, auth);
        }
        let request = builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| Failure {
                text: format!("invalid request: {e}"),
                status: None,
                retryable: false,
                retry_after: None,
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| connection_failure(&e))?;
        let (parts, body) = response.into_parts();
        let status = parts.status;
        if status.is_success() {
            let (body, complete) = read_body(body, Self::MAX_BODY).await.map_err(|e| Failure {
                text: format!(
                    "{}, but reading the response body failed: {}",
                    text::status_line(status),
                    text::describe(&*e)
                ),
                status: Some(status.as_u16()),
                retryable: false,
                retry_after: None,
            })?;
            if !complete {
                return Err(Failure {
                    text: format!(
                        "{}, but the response body is larger than {} MiB",
                        text::status_line(status),
                        Self::MAX_BODY / (1024 * 1024)
                    ),
                    status: Some(status.as_u16()),
                    retryable: false,
                    retry_after: None,
                });
            }
            return Ok(Response {
                status,
                headers: parts.headers,
                body,
            });
        }
        if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
            && let (Some(proxy), Some(auth)) = (&proxy, forwarded)
        {
            return Err(Failure {
                text: format!(
                    "proxy {} refused the request: {}",
                    proxy.describe(),
                    connect::refusal(status.as_u16(), auth.is_some())
                ),
                // The proxy answered, not the service: no service status, as for CONNECT.
                status: None,
                retryable: false,
                retry_after: None,
            });
        }
        // The body of an error only feeds the snippet; a broken one leaves it empty.
        let body = read_body(body, Self::MAX_ERROR_BODY)
            .await
            .map(|(b, _)| b)
            .unwrap_or_default();
        Err(status_failure(status, &parts.headers, &body, uri))
    }
}

/// Reads at most `limit` bytes of a body; `false` when there was more.
async fn read_body(
    mut body: Incoming,
    limit: usize,
) -> Result<(Bytes, bool), Box<dyn StdError + Send + Sync>> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() + data.len() > limit {
                let room = limit - out.len();
                out.extend_from_slice(&data[..room]);
                return Ok((out.freeze(), false));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok((out.freeze(), true))
}

/// A non-2xx answer, classified as go-retryablehttp does.
fn status_failure(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    uri: &Uri,
) -> Failure {
    let code = status.as_u16();
    let mut text = text::status_line(status);
    if status.is_redirection() {
        match headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(location) => {
                let absolute = if location.starts_with('/') {
                    format!(
                        "{}://{}{location}",
                        uri.scheme_str().unwrap_or("https"),
                        uri.authority().map_or("", |a| a.as_str())
                    )
                } else {
                    location.to_owned()
                };
                text.push_str(&format!(": redirected to {}", text::redact_url(&absolute)));
                let same_path = absolute.parse::<Uri>().ok().is_some_and(|to| {
                    to.path_and_query() == uri.path_and_query() && to.path() != "/"
                });
                if same_path {
                    text.push_str(" (same path)");
                }
            }
            None => text.push_str(" without a Location header"),
        }
        text.push_str(
            "; herald does not follow redirects: set the provider address to the final URL",
        );
        return Failure {
            text,
            status: Some(code),
            retryable: false,
            retry_after: None,
        };
    }
    let snippet = text::snippet(body);
    if !snippet.is_empty() {
        text.push_str(": ");
        text.push_str(&snippet);
    }
    let retryable = code == 429 || (status.is_server_error() && code != 501);
    let retry_after = match code {
        429 | 503 => headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| text::retry_after(v, SystemTime::now())),
        _ => None,
    };
    Failure {
        text,
        status: Some(code),
        retryable,
        retry_after,
    }
}

/// A failure before any answer: connection, TLS, proxy, or the connection breaking.
fn connection_failure(err: &hyper_util::client::legacy::Error) -> Failure {
    let links = text::chain(err);
    if let Some(proxy) = links.iter().find_map(|e| e.downcast_ref::<ProxyError>()) {
        return Failure {
            text: proxy.to_string(),
            status: None,
            retryable: proxy.retryable,
            retry_after: None,
        };
    }
    if let Some(tls) = links.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        // Certificates and TLS settings do not fix themselves: not retried.
        return Failure {
            text: format!("TLS handshake failed: {tls}"),
            status: None,
            retryable: false,
            retry_after: None,
        };
    }
    let description = text::describe(err);
    let unsupported =
        description.contains("unsupported scheme") || description.contains("missing scheme");
    Failure {
        text: description,
        status: None,
        retryable: !unsupported,
        retry_after: None,
    }
}

/// The URL as a request target: absolute, `http` or `https`, with a host. The reason never
/// quotes the URL.
fn target(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.trim().parse().map_err(|_| "invalid URL".to_owned())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err("unsupported URL scheme (use http:// or https://)".to_owned()),
        None => return Err("not an absolute URL (use http:// or https://)".to_owned()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    Ok(uri)
}

/// Whether a request with `headers` gets herald's `User-Agent` (it sets none of its own).
pub(crate) fn needs_user_agent(headers: &[(http::HeaderName, http::HeaderValue)]) -> bool {
    !headers
        .iter()
        .any(|(name, _)| name == http::header::USER_AGENT)
}

/// The path and query of a URL, when there is more than `/`.
fn path_and_query(url: &str) -> Option<&str> {
    let rest = url.trim().split_once("://")?.1;
    let start = rest.find(['/', '?'])?;
    let tail = rest[start..].split('#').next().unwrap_or_default();
    (tail.len() > 1).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_absolute_http_urls() {
        assert!(target("https://a.example/x?y").is_ok());
        assert_eq!(
            target("ftp://a.example/secret-path").unwrap_err(),
            "unsupported URL scheme (use http:// or https://)"
        );
        assert_eq!(
            target("/relative/secret").unwrap_err(),
            "not an absolute URL (use http:// or https://)"
        );
        assert_eq!(target("http://exa mple/secret").unwrap_err(), "invalid URL");
    }

    #[test]
    fn path_and_query_is_what_follows_the_authority() {
        assert_eq!(
            path_and_query("https://h/hook/tok?x=1#f"),
            Some("/hook/tok?x=1")
        );
        assert_eq!(path_and_query("https://h?x=1"), Some("?x=1"));
        assert_eq!(path_and_query("https://h/"), None);
        assert_eq!(path_and_query("https://h"), None);
    }

    #[test]
    fn statuses_are_classified_like_go_retryablehttp() {
        let uri: Uri = "https://h.example/hook/abc".parse().unwrap();
        let classify = |code: u16| {
            let f = status_failure(
                StatusCode::from_u16(code).unwrap(),
                &http::HeaderMap::new(),
                b"",
                &uri,
            );
            f.retryable
        };
        for code in [429, 500, 502, 503, 504, 599] {
            assert!(classify(code), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 501, 301, 302, 304, 307, 308] {
            assert!(!classify(code), "{code}");
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        let f = status_failure(StatusCode::SERVICE_UNAVAILABLE, &headers, b"busy\n", &uri);
        assert_eq!(
            (f.retry_after, f.text.as_str()),
            (
                Some(Duration::from_secs(3)),
                "HTTP 503 Service Unavailable: busy"
            )
        );
        let f = status_failure(StatusCode::BAD_GATEWAY, &headers, b"", &uri);
        assert_eq!(
            (f.retry_after, f.text.as_str()),
            (None, "HTTP 502 Bad Gateway")
        );
    }

    #[test]
    fn redirects_say_where_without_showing_paths() {
        let uri: Uri = "http://h.example/hook/abc".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::LOCATION,
            "https://h.example/hook/abc".parse().unwrap(),
        );
        let f = status_failure(StatusCode::MOVED_PERMANENTLY, &headers, b"", &uri);
        assert_eq!(
            f.text,
            "HTTP 301 Moved Permanently: redirected to https://h.example/… (same path); herald does not follow redirects: set the provider address to the final URL"
        );
        headers.insert(http::header::LOCATION, "/elsewhere".parse().unwrap());
        let f = status_failure(StatusCode::FOUND, &headers, b"", &uri);
        assert!(
            f.text
                .starts_with("HTTP 302 Found: redirected to http://h.example/…; herald"),
            "{}",
            f.text
        );
        let f = status_failure(StatusCode::FOUND, &http::HeaderMap::new(), b"", &uri);
        assert!(
            f.text
                .starts_with("HTTP 302 Found without a Location header;"),
            "{}",
            f.text
        );
    }

    #[tokio::test]
    async fn environment_proxies_are_used_except_for_loopback() {
        let rec = herald_testkit::Recorder::start().await;
        let proxy = herald_testkit::RecordingProxy::upstream(rec.addr()).await;
        let env = Matcher::builder()
            .http(proxy.url().replace("http://", "http://envuser:envpass@"))
            .https(proxy.url())
            .no("direct.invalid")
            .build();
        let cfg = ProviderConfig::new(
            herald_core::ProviderType::Generic,
            "ns",
            "env",
            "http://herald-env.invalid/hook",
        );
        let client = HttpClient::build(&cfg, Arc::new(env)).unwrap();
        assert!(format!("{client:?}").contains("environment proxies"));

        // An http:// destination: the request goes to the proxy in absolute form, with the
        // proxy's credentials, as Go sends it.
        client
            .send(Request::post_json("http://herald-env.invalid/hook", "{}"))
            .await
            .unwrap();
        let seen = proxy.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("POST", "http://herald-env.invalid/hook")
        );
        // base64("envuser:envpass")
        assert_eq!(
            seen[0].header("proxy-authorization"),
            Some("Basic ZW52dXNlcjplbnZwYXNz")
        );
        let got = rec.requests();
        assert_eq!(
            (got[0].path.as_str(), got[0].header("host")),
            ("/hook", Some("herald-env.invalid"))
        );

        // An https:// destination: a CONNECT tunnel (the recorder behind it speaks no TLS, so
        // the handshake then fails).
        let err = client
            .send(Request::post_json("https://herald-env.invalid/hook", "{}"))
            .await
            .unwrap_err();
        let seen = proxy.requests();
        assert_eq!(
            (seen[1].method.as_str(), seen[1].target.as_str()),
            ("CONNECT", "herald-env.invalid:443")
        );
        assert!(!err.is_retryable(), "{err}");

        // Loopback destinations go direct, as in Go.
        client
            .send(Request::post_json(format!("{}/direct", rec.url()), "{}"))
            .await
            .unwrap();
        assert_eq!(proxy.requests().len(), 2);
        assert_eq!(rec.requests()[1].path, "/direct");

        // An explicit proxy replaces the environment, for loopback too.
        let mut explicit = cfg.clone();
        explicit.proxy = Some(herald_core::ProxyConfig {
            url: proxy.url(),
            username: None,
            password: None,
        });
        let env = Matcher::builder().http("http://127.0.0.1:1").build();
        let client = HttpClient::build(&explicit, Arc::new(env)).unwrap();
        client
            .send(Request::post_json(format!("{}/explicit", rec.url()), "{}"))
            .await
            .unwrap();
        let seen = proxy.requests();
        assert_eq!(seen.len(), 3, "explicit proxies apply to loopback too");
        assert_eq!(seen[2].target, format!("{}/explicit", rec.url()));
        assert_eq!(seen[2].header("proxy-authorization"), None);
    }
}
