//! The transport under a request: direct, through an HTTP or HTTPS proxy (absolute-form
//! requests for `http://` destinations, a `CONNECT` tunnel for `https://` ones, as Go does), or
//! through a SOCKS5 proxy; chosen once from the configuration or per destination from the
//! environment.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use herald_core::{BuildError, ProxyConfig};
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::proxy::SocksV5;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use crate::text;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// The manifest field a proxy comes from.
const FIELD: &str = "spec.proxy";

/// The longest proxy answer to a `CONNECT` that is read.
const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// A failure that involves the proxy. Its message is complete (it already names the cause).
#[derive(Debug)]
pub(crate) struct ProxyError {
    message: String,
    /// Whether trying again can help (proxy unreachable) or not (credentials refused).
    pub(crate) retryable: bool,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ProxyError {}

impl ProxyError {
    fn boxed(message: String, retryable: bool) -> BoxError {
        Box::new(ProxyError { message, retryable })
    }
}

/// A proxy to go through.
#[derive(Clone)]
pub(crate) enum Proxy {
    /// HTTP proxy, spoken to in clear or (`tls`, an `https://` proxy) over TLS: `http://`
    /// requests are sent to it in absolute form, `https://` ones through `CONNECT host:port`.
    Http {
        /// `http://host:port`, what the TCP connection goes to.
        addr: Uri,
        /// Whether the connection to the proxy is TLS.
        tls: bool,
        /// `Basic …` for `Proxy-Authorization`.
        auth: Option<HeaderValue>,
    },
    /// SOCKS5 proxy; host names are resolved by the proxy, as Go does.
    Socks5 {
        /// `http://host:port`, what the TCP connection goes to.
        addr: Uri,
        /// Username and password.
        auth: Option<(String, String)>,
    },
    /// A proxy from the environment that cannot be used; connecting fails with this message.
    Unusable(String),
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Proxy {
    /// The proxy from a provider's configuration.
    pub(crate) fn from_config(p: &ProxyConfig) -> Result<Proxy, BuildError> {
        let url = p.url.trim();
        let uri: Uri = url.parse().map_err(|_| {
            BuildError::invalid(
                FIELD,
                format!("invalid proxy URL {}", text::redact_url(url)),
            )
        })?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let password = p.password.as_ref().map(|s| s.expose().to_owned());
        let credentials = match (&p.username, password) {
            // Credentials left in the URL (`http://user:pass@host`) are used when the
            // configuration has none of its own.
            (None, None) => userinfo(&uri),
            (user, pass) => Some((user.clone().unwrap_or_default(), pass.unwrap_or_default())),
        };
        let http = |tls: bool, port: u16| -> Result<Proxy, BuildError> {
            Ok(Proxy::Http {
                addr: proxy_addr(&uri, port)?,
                tls,
                auth: credentials
                    .as_ref()
                    .map(|(u, p)| basic_auth(&crate::endpoint::basic_value(u, p))),
            })
        };
        match scheme.as_str() {
            "http" => http(false, 80),
            "https" => http(true, 443),
            "socks5" | "socks5h" => Ok(Proxy::Socks5 {
                addr: proxy_addr(&uri, 1080)?,
                auth: credentials,
            }),
            "" => Err(BuildError::invalid(
                FIELD,
                "the proxy URL needs a scheme: http://, https:// or socks5://",
            )),
            other => Err(BuildError::invalid(
                FIELD,
                format!(
                    "proxy scheme {other:?} is not supported; use http://, https:// or socks5://"
                ),
            )),
        }
    }

    /// `http://host:port`, `https://host:port` or `socks5://host:port`, for messages (never
    /// credentials).
    pub(crate) fn describe(&self) -> String {
        match self {
            Proxy::Http { addr, tls, .. } => {
                let scheme = if *tls { "https" } else { "http" };
                format!("{scheme}://{}", authority(addr))
            }
            Proxy::Socks5 { addr, .. } => format!("socks5://{}", authority(addr)),
            Proxy::Unusable(why) => format!("unusable proxy ({why})"),
        }
    }

    /// The `Proxy-Authorization` of a request that is forwarded in absolute form (an
    /// `http://` destination through an HTTP proxy), or `None` when `dst` is not forwarded.
    pub(crate) fn forwards(&self, dst: &Uri) -> Option<Option<&HeaderValue>> {
        match self {
            Proxy::Http { auth, .. } if dst.scheme_str() == Some("http") => Some(auth.as_ref()),
            _ => None,
        }
    }

    /// A connection for `dst` through this proxy.
    async fn connect(
        self,
        mut http: HttpConnector,
        tls: TlsConnector,
        dst: Uri,
    ) -> Result<Conn, BoxError> {
        let shown = self.describe();
        let forwarded = self.forwards(&dst).is_some();
        match self {
            Proxy::Unusable(why) => Err(ProxyError::boxed(why, false)),
            Proxy::Http {
                addr,
                tls: over_tls,
                auth,
            } => {
                let tcp = http.call(addr.clone()).await.map_err(|e| {
                    ProxyError::boxed(
                        format!("cannot connect to proxy {shown}: {}", text::describe(&e)),
                        true,
                    )
                })?;
                let tcp = tcp.into_inner();
                let stream = if over_tls {
                    Stream::Tls(Box::new(proxy_tls(&tls, &addr, tcp, &shown).await?))
                } else {
                    Stream::Tcp(tcp)
                };
                let mut conn = Conn {
                    stream,
                    proxied: forwarded,
                };
                if !forwarded {
                    tunnel(&mut conn, &shown, &dst, auth.as_ref()).await?;
                }
                Ok(conn)
            }
            Proxy::Socks5 { addr, auth } => {
                let mut socks = SocksV5::new(addr, http);
                if let Some((user, pass)) = auth {
                    socks = socks.with_auth(user, pass);
                }
                let tcp = socks.call(with_default_port(&dst)?).await.map_err(|e| {
                    let why = text::describe(&e);
                    // Refused credentials or a refused destination will not change by retrying.
                    let retryable =
                        !(why.contains("credentials") || why.contains("authentication"));
                    ProxyError::boxed(format!("SOCKS5 proxy {shown}: {why}"), retryable)
                })?;
                Ok(Conn::direct(tcp.into_inner()))
            }
        }
    }
}

/// TLS to an `https://` proxy, verified with the provider's roots (its custom CA, if it has
/// one) and offering its client certificate, as Go's transport does with its TLS config.
async fn proxy_tls(
    tls: &TlsConnector,
    addr: &Uri,
    tcp: TcpStream,
    shown: &str,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let host = addr.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ProxyError::boxed(format!("proxy {shown}: invalid TLS server name"), false))?;
    tls.connect(name, tcp).await.map_err(|e| {
        // Certificates and TLS settings do not fix themselves; a broken connection might.
        let retryable = e.get_ref().is_none_or(|inner| !inner.is::<rustls::Error>());
        ProxyError::boxed(
            format!("TLS handshake with proxy {shown} failed: {e}"),
            retryable,
        )
    })
}

/// The percent-decoded `user[:password]` of a URL, if it has one.
fn userinfo(uri: &Uri) -> Option<(String, String)> {
    let (info, _) = authority(uri).rsplit_once('@')?;
    Some(crate::endpoint::userinfo_parts(info))
}

fn authority(uri: &Uri) -> &str {
    uri.authority().map_or("", |a| a.as_str())
}

/// `http://host:port` of a proxy URL, with the scheme's default port made explicit.
fn proxy_addr(uri: &Uri, default_port: u16) -> Result<Uri, BuildError> {
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| {
        BuildError::invalid(
            FIELD,
            format!(
                "the proxy URL {} has no host",
                text::redact_url(&uri.to_string())
            ),
        )
    })?;
    let port = uri.port_u16().unwrap_or(default_port);
    format!("http://{host}:{port}")
        .parse()
        .map_err(|_| BuildError::invalid(FIELD, "invalid proxy host"))
}

/// A `Basic …` value, marked sensitive.
fn basic_auth(value: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(value).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// The destination with its port made explicit (80 for http, 443 otherwise).
fn with_default_port(dst: &Uri) -> Result<Uri, BoxError> {
    if dst.port().is_some() {
        return Ok(dst.clone());
    }
    let host = dst.host().ok_or("the URL has no host")?;
    let (scheme, port) = match dst.scheme_str() {
        Some("http") => ("http", 80),
        _ => ("https", 443),
    };
    Ok(format!("{scheme}://{host}:{port}").parse()?)
}

/// Sends `CONNECT host:port` and reads the proxy's answer.
///
/// hyper-util's `proxy::Tunnel` would do the same, but it reports every refusal other than
/// `407` as a bare "unsuccessful" without the status: herald could then neither say
/// `HTTP 401 Unauthorized (the proxy rejected the username or password)` nor tell a refusal
/// (4xx, permanent) from a proxy in trouble (5xx, retried). The answer is read byte by byte
/// so that nothing after its header is consumed; `httparse` reads the status.
async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    shown: &str,
    dst: &Uri,
    auth: Option<&HeaderValue>,
) -> Result<(), BoxError> {
    let target = authority(&with_default_port(dst)?).to_owned();
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(auth) = auth {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(auth.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let io_failed = |e: io::Error| {
        let message = if e.kind() == io::ErrorKind::UnexpectedEof {
            format!("proxy {shown} closed the connection during CONNECT {target}")
        } else {
            format!("proxy {shown} failed during CONNECT {target}: {e}")
        };
        ProxyError::boxed(message, true)
    };
    io.write_all(&request).await.map_err(io_failed)?;
    io.flush().await.map_err(io_failed)?;
    let mut answer = Vec::with_capacity(128);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() == MAX_CONNECT_RESPONSE {
            return Err(ProxyError::boxed(
                format!("proxy {shown} sent an over-long answer to CONNECT {target}"),
                true,
            ));
        }
        answer.push(io.read_u8().await.map_err(io_failed)?);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let code = match response.parse(&answer) {
        Ok(httparse::Status::Complete(_)) => response.code.unwrap_or_default(),
        _ => {
            return Err(ProxyError::boxed(
                format!("proxy {shown} answered CONNECT {target} with something that is not HTTP"),
                true,
            ));
        }
    };
    if (200..300).contains(&code) {
        return Ok(());
    }
    Err(ProxyError::boxed(
        format!(
            "proxy {shown} refused CONNECT {target}: {}",
            refusal(code, auth.is_some())
        ),
        code >= 500,
    ))
}

/// `HTTP 407 Proxy Authentication Required (the proxy requires a username and password)`.
pub(crate) fn refusal(code: u16, had_credentials: bool) -> String {
    let status =
        http::StatusCode::from_u16(code).map_or_else(|_| format!("HTTP {code}"), text::status_line);
    let hint = match (code, had_credentials) {
        (401 | 407, true) => " (the proxy rejected the username or password)",
        (401 | 407, false) => " (the proxy requires a username and password)",
        _ => "",
    };
    format!("{status}{hint}")
}

/// Proxies from `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (and their lowercase
/// forms), read once per process as Go does.
pub(crate) fn env_matcher() -> Arc<Matcher> {
    static MATCHER: OnceLock<Arc<Matcher>> = OnceLock::new();
    MATCHER
        .get_or_init(|| Arc::new(Matcher::from_env()))
        .clone()
}

/// The proxy the environment asks for, for `dst`. Like Go, `localhost` and loopback
/// addresses never go through an environment proxy.
pub(crate) fn env_proxy(matcher: &Matcher, dst: &Uri) -> Option<Proxy> {
    let host = dst.host()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    {
        return None;
    }
    let intercept = matcher.intercept(dst)?;
    let uri = intercept.uri();
    let unusable = |e: BuildError| Proxy::Unusable(format!("proxy from the environment: {e}"));
    let http = |tls: bool, port: u16| match proxy_addr(uri, port) {
        Ok(addr) => Proxy::Http {
            addr,
            tls,
            auth: intercept.basic_auth().cloned(),
        },
        Err(e) => unusable(e),
    };
    let proxy = match uri.scheme_str().unwrap_or_default() {
        "http" => http(false, 80),
        "https" => http(true, 443),
        "socks5" | "socks5h" => match proxy_addr(uri, 1080) {
            Ok(addr) => Proxy::Socks5 {
                addr,
                auth: intercept
                    .raw_auth()
                    .map(|(u, p)| (u.to_owned(), p.to_owned())),
            },
            Err(e) => unusable(e),
        },
        other => Proxy::Unusable(format!(
            "the {other}:// proxy set in the environment is not supported; use an http://, https:// or socks5:// proxy"
        )),
    };
    Some(proxy)
}

/// How connections are routed.
#[derive(Clone)]
pub(crate) enum Route {
    /// Always through this proxy.
    Fixed(Arc<Proxy>),
    /// Through the proxy the environment names for each destination, if any.
    Env(Arc<Matcher>),
}

impl Route {
    /// The proxy for `dst`, if any.
    pub(crate) fn proxy_for(&self, dst: &Uri) -> Option<Proxy> {
        match self {
            Route::Fixed(proxy) => Some(Proxy::clone(proxy)),
            Route::Env(matcher) => env_proxy(matcher, dst),
        }
    }
}

/// The byte stream of a connection: TCP, or TLS to an `https://` proxy.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection handed to hyper-rustls: `proxied` when requests on it go to an HTTP proxy in
/// absolute form (hyper then writes `POST http://host/path`).
pub(crate) struct Conn {
    stream: Stream,
    proxied: bool,
}

impl Conn {
    fn direct(tcp: TcpStream) -> Self {
        Conn {
            stream: Stream::Tcp(tcp),
            proxied: false,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connector under hyper-rustls: TCP to the destination, or through a proxy.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    route: Route,
    /// For `https://` proxies: the provider's TLS configuration.
    tls: TlsConnector,
}

impl Connector {
    pub(crate) fn new(route: Route, tls: Arc<ClientConfig>) -> Self {
        let mut http = HttpConnector::new();
        // https destinations are handed over too; hyper-rustls does the TLS.
        http.enforce_http(false);
        http.set_nodelay(true);
        Connector {
            http,
            route,
            tls: TlsConnector::from(tls),
        }
    }
}

impl Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HttpConnector is always ready, and so is every route.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let tls = self.tls.clone();
        let proxy = self.route.proxy_for(&dst);
        Box::pin(async move {
            let conn = match proxy {
                None => Conn::direct(http.call(dst).await?.into_inner()),
                Some(proxy) => proxy.connect(http, tls, dst).await?,
            };
            Ok(TokioIo::new(conn))
        })
    }
}

#[cfg(test)]
mod tests {
    use herald_core::SecretString;

    use super::*;

    fn config(url: &str, user: Option<&str>, pass: Option<&str>) -> ProxyConfig {
        ProxyConfig {
            url: url.to_owned(),
            username: user.map(str::to_owned),
            password: pass.map(SecretString::new),
        }
    }

    #[test]
    fn configured_proxies() {
        match Proxy::from_config(&config("http://proxy.local", Some("u"), Some("p"))).unwrap() {
            Proxy::Http { addr, tls, auth } => {
                assert_eq!(addr, "http://proxy.local:80/");
                assert!(!tls);
                assert_eq!(auth.unwrap(), "Basic dTpw");
            }
            other => panic!("{other:?}"),
        }
        let p = Proxy::from_config(&config("http://proxy.local:3128", Some("u"), None)).unwrap();
        assert!(matches!(&p, Proxy::Http { auth: Some(a), .. } if a == "Basic dTo="));
        assert_eq!(p.describe(), "http://proxy.local:3128");
        // Credentials left in the URL count when the configuration has none.
        let p = Proxy::from_config(&config(
            "http://us%40er:p%3Ass%zz@proxy.local:3128",
            None,
            None,
        ))
        .unwrap();
        assert!(
            matches!(&p, Proxy::Http { auth: Some(a), .. } if a == "Basic dXNAZXI6cDpzcyV6eg==")
        );
        assert_eq!(p.describe(), "http://proxy.local:3128");
        let p = Proxy::from_config(&config("http://x:y@proxy.local:3128", Some("u"), Some("p")))
            .unwrap();
        assert!(matches!(&p, Proxy::Http { auth: Some(a), .. } if a == "Basic dTpw"));
        let p = Proxy::from_config(&config("SOCKS5://127.0.0.1", None, None)).unwrap();
        assert!(matches!(&p, Proxy::Socks5 { auth: None, .. }));
        assert_eq!(p.describe(), "socks5://127.0.0.1:1080");
        let err = |url: &str| {
            Proxy::from_config(&config(url, None, None))
                .unwrap_err()
                .to_string()
        };
        // TLS to the proxy, as Go does; its default port is 443.
        let p = Proxy::from_config(&config("HTTPS://u:p@proxy.local", None, None)).unwrap();
        assert!(matches!(&p, Proxy::Http { tls: true, auth: Some(a), .. } if a == "Basic dTpw"));
        assert_eq!(p.describe(), "https://proxy.local:443");
        assert_eq!(
            err("ftp://proxy.local"),
            "spec.proxy: proxy scheme \"ftp\" is not supported; use http://, https:// or socks5://"
        );
        assert_eq!(
            err("proxy.local:3128"),
            "spec.proxy: the proxy URL needs a scheme: http://, https:// or socks5://"
        );
        assert!(err("http://pro xy").starts_with("spec.proxy: invalid proxy URL"));
    }

    #[test]
    fn environment_proxies_skip_loopback_and_no_proxy() {
        let m = Matcher::builder()
            .http("http://user:pass@proxy.local:3128")
            .https("socks5://s:pw@socks.local")
            .no("internal.example, 10.0.0.0/8")
            .build();
        let route = |url: &str| env_proxy(&m, &url.parse().unwrap()).map(|p| p.describe());
        assert_eq!(
            route("http://hooks.example.com/x").as_deref(),
            Some("http://proxy.local:3128")
        );
        assert_eq!(
            route("https://hooks.example.com/x").as_deref(),
            Some("socks5://socks.local:1080")
        );
        assert_eq!(route("http://a.internal.example/x"), None);
        assert_eq!(route("http://10.1.2.3/x"), None);
        for loopback in [
            "http://localhost:1/",
            "http://LOCALHOST/",
            "http://127.0.0.1:9/",
            "http://127.8.9.1/",
            "http://[::1]:8/",
        ] {
            assert_eq!(route(loopback), None, "{loopback}");
        }
        match env_proxy(&m, &"http://hooks.example.com".parse().unwrap()) {
            Some(Proxy::Http { auth: Some(a), .. }) => assert_eq!(a, "Basic dXNlcjpwYXNz"),
            other => panic!("{other:?}"),
        }
        let m = Matcher::builder().all("https://tls-proxy.local").build();
        let p = env_proxy(&m, &"https://hooks.example.com".parse().unwrap()).unwrap();
        assert_eq!(p.describe(), "https://tls-proxy.local:443");
        let m = Matcher::builder().build();
        assert!(env_proxy(&m, &"https://hooks.example.com".parse().unwrap()).is_none());
    }

    #[test]
    fn only_http_destinations_through_http_proxies_are_forwarded() {
        let http = Proxy::from_config(&config("http://p.local", Some("u"), Some("p"))).unwrap();
        let socks = Proxy::from_config(&config("socks5://p.local", None, None)).unwrap();
        let plain: Uri = "http://h/x".parse().unwrap();
        let secure: Uri = "https://h/x".parse().unwrap();
        assert!(matches!(http.forwards(&plain), Some(Some(a)) if a == "Basic dTpw"));
        assert!(http.forwards(&secure).is_none());
        assert!(socks.forwards(&plain).is_none());
    }

    #[test]
    fn refusals_name_the_status_and_the_credentials() {
        assert_eq!(
            refusal(407, false),
            "HTTP 407 Proxy Authentication Required (the proxy requires a username and password)"
        );
        assert_eq!(
            refusal(401, true),
            "HTTP 401 Unauthorized (the proxy rejected the username or password)"
        );
        assert_eq!(refusal(403, true), "HTTP 403 Forbidden");
        assert_eq!(refusal(599, false), "HTTP 599");
    }

    #[test]
    fn default_ports_are_made_explicit() {
        let d = |u: &str| with_default_port(&u.parse().unwrap()).unwrap().to_string();
        assert_eq!(d("http://a.b"), "http://a.b:80/");
        assert_eq!(d("https://a.b"), "https://a.b:443/");
        assert_eq!(d("https://a.b:8443"), "https://a.b:8443/");
        assert_eq!(d("http://[::1]"), "http://[::1]:80/");
    }
}
