//! The TCP side of a connection: direct, through an HTTP `CONNECT` tunnel or a SOCKS5 proxy,
//! chosen once from the configuration or per destination from the environment.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use base64::Engine as _;
use herald_core::{BuildError, ProxyConfig};
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::SocksV5;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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
    /// HTTP proxy: `CONNECT host:port` for every destination, `http` and `https` alike.
    Http {
        /// `http://host:port`, what the TCP connection goes to.
        addr: Uri,
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
        match scheme.as_str() {
            "http" => Ok(Proxy::Http {
                addr: proxy_addr(&uri, 80)?,
                auth: credentials.map(|(u, p)| basic_auth(&u, &p)),
            }),
            "socks5" | "socks5h" => Ok(Proxy::Socks5 {
                addr: proxy_addr(&uri, 1080)?,
                auth: credentials,
            }),
            "https" => Err(BuildError::invalid(
                FIELD,
                "https:// proxies (TLS to the proxy) are not supported; use an http:// proxy \
                 (HTTPS destinations stay end-to-end encrypted through its CONNECT tunnel)",
            )),
            "" => Err(BuildError::invalid(
                FIELD,
                "the proxy URL needs a scheme: http:// or socks5://",
            )),
            other => Err(BuildError::invalid(
                FIELD,
                format!("proxy scheme {other:?} is not supported; use http:// or socks5://"),
            )),
        }
    }

    /// `http://host:port` or `socks5://host:port`, for messages (never credentials).
    pub(crate) fn describe(&self) -> String {
        match self {
            Proxy::Http { addr, .. } => format!("http://{}", authority(addr)),
            Proxy::Socks5 { addr, .. } => format!("socks5://{}", authority(addr)),
            Proxy::Unusable(why) => format!("unusable proxy ({why})"),
        }
    }

    /// A connection to `dst` through this proxy.
    async fn connect(
        self,
        mut http: HttpConnector,
        dst: Uri,
    ) -> Result<TokioIo<TcpStream>, BoxError> {
        let shown = self.describe();
        match self {
            Proxy::Unusable(why) => Err(ProxyError::boxed(why, false)),
            Proxy::Http { addr, auth } => {
                let io = http.call(addr).await.map_err(|e| {
                    ProxyError::boxed(
                        format!("cannot connect to proxy {shown}: {}", text::describe(&e)),
                        true,
                    )
                })?;
                let mut tcp = io.into_inner();
                tunnel(&mut tcp, &shown, &dst, auth.as_ref()).await?;
                Ok(TokioIo::new(tcp))
            }
            Proxy::Socks5 { addr, auth } => {
                let mut socks = SocksV5::new(addr, http);
                if let Some((user, pass)) = auth {
                    socks = socks.with_auth(user, pass);
                }
                socks.call(with_default_port(&dst)?).await.map_err(|e| {
                    let why = text::describe(&e);
                    // Refused credentials or a refused destination will not change by retrying.
                    let retryable =
                        !(why.contains("credentials") || why.contains("authentication"));
                    ProxyError::boxed(format!("SOCKS5 proxy {shown}: {why}"), retryable)
                })
            }
        }
    }
}

/// The percent-decoded `user[:password]` of a URL, if it has one.
fn userinfo(uri: &Uri) -> Option<(String, String)> {
    let (info, _) = authority(uri).rsplit_once('@')?;
    let (user, pass) = info.split_once(':').unwrap_or((info, ""));
    Some((percent_decode(user), percent_decode(pass)))
}

/// `%XX` escapes decoded; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// `Basic base64(user:pass)`, marked sensitive.
fn basic_auth(user: &str, pass: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
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

/// Sends `CONNECT host:port` on `tcp` and reads the proxy's answer, byte by byte so that
/// nothing after the answer's header is consumed.
async fn tunnel(
    tcp: &mut TcpStream,
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
    let io_failed = |e: std::io::Error| {
        ProxyError::boxed(
            format!("proxy {shown} failed during CONNECT {target}: {e}"),
            true,
        )
    };
    tcp.write_all(&request).await.map_err(io_failed)?;
    let mut answer = Vec::with_capacity(128);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() == MAX_CONNECT_RESPONSE {
            return Err(ProxyError::boxed(
                format!("proxy {shown} sent an over-long answer to CONNECT {target}"),
                true,
            ));
        }
        let byte = tcp.read_u8().await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ProxyError::boxed(
                    format!("proxy {shown} closed the connection during CONNECT {target}"),
                    true,
                )
            } else {
                io_failed(e)
            }
        })?;
        answer.push(byte);
    }
    let status_line =
        String::from_utf8_lossy(&answer[..answer.iter().position(|&b| b == b'\r').unwrap_or(0)])
            .into_owned();
    let mut words = status_line.splitn(3, ' ');
    let (version, code) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let code: u16 = match code.parse() {
        Ok(code) if version.starts_with("HTTP/") => code,
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
    let status =
        http::StatusCode::from_u16(code).map_or_else(|_| format!("HTTP {code}"), text::status_line);
    let hint = match (code, auth.is_some()) {
        (401 | 407, true) => " (the proxy rejected the username or password)",
        (401 | 407, false) => " (the proxy requires a username and password)",
        _ => "",
    };
    Err(ProxyError::boxed(
        format!("proxy {shown} refused CONNECT {target}: {status}{hint}"),
        code >= 500,
    ))
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
    let scheme = uri.scheme_str().unwrap_or_default();
    let proxy = match scheme {
        "http" => match proxy_addr(uri, 80) {
            Ok(addr) => Proxy::Http {
                addr,
                auth: intercept.basic_auth().cloned(),
            },
            Err(e) => Proxy::Unusable(format!("proxy from the environment: {e}")),
        },
        "socks5" | "socks5h" => match proxy_addr(uri, 1080) {
            Ok(addr) => Proxy::Socks5 {
                addr,
                auth: intercept
                    .raw_auth()
                    .map(|(u, p)| (u.to_owned(), p.to_owned())),
            },
            Err(e) => Proxy::Unusable(format!("proxy from the environment: {e}")),
        },
        other => Proxy::Unusable(format!(
            "the {other}:// proxy set in the environment is not supported; use an http:// or socks5:// proxy"
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

/// The connector under hyper-rustls: TCP to the destination or through a proxy.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    route: Route,
}

impl Connector {
    pub(crate) fn new(route: Route) -> Self {
        let mut http = HttpConnector::new();
        // https destinations are handed over too; hyper-rustls does the TLS.
        http.enforce_http(false);
        http.set_nodelay(true);
        Connector { http, route }
    }
}

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HttpConnector is always ready, and so is every route.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let proxy = match &self.route {
            Route::Fixed(proxy) => Some(Proxy::clone(proxy)),
            Route::Env(matcher) => env_proxy(matcher, &dst),
        };
        Box::pin(async move {
            match proxy {
                None => http.call(dst).await.map_err(Into::into),
                Some(proxy) => proxy.connect(http, dst).await,
            }
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
            Proxy::Http { addr, auth } => {
                assert_eq!(addr, "http://proxy.local:80/");
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
        assert!(
            err("https://proxy.local")
                .starts_with("spec.proxy: https:// proxies (TLS to the proxy) are not supported")
        );
        assert_eq!(
            err("ftp://proxy.local"),
            "spec.proxy: proxy scheme \"ftp\" is not supported; use http:// or socks5://"
        );
        assert_eq!(
            err("proxy.local:3128"),
            "spec.proxy: the proxy URL needs a scheme: http:// or socks5://"
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
        assert!(
            matches!(p, Proxy::Unusable(why) if why.contains("https:// proxy set in the environment is not supported"))
        );
        let m = Matcher::builder().build();
        assert!(env_proxy(&m, &"https://hooks.example.com".parse().unwrap()).is_none());
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
