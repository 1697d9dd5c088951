//! `herald receive`: a small webhook receiver that prints what it gets and checks the
//! `generic-hmac` signature (with [`herald_webhook::verify`]). Useful to see what herald (or Flux) sends, and as a reference
//! for anyone writing a receiver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{self, MAX_BODY};

pub use herald_webhook::Signature;
use herald_webhook::verify;

/// One received request, as printed.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method and path.
    pub request_line: String,
    /// `Gotk-Component`, if sent.
    pub component: Option<String>,
    /// The signature check.
    pub signature: Signature,
    /// The body, pretty-printed when it is JSON.
    pub body: String,
}

impl Received {
    /// The text block printed for this request.
    pub fn render(&self) -> String {
        let sig = match self.signature {
            Signature::NotChecked => "not checked (no --hmac-key)",
            Signature::Valid => "valid",
            Signature::Missing => "MISSING",
            Signature::Invalid => "INVALID",
        };
        format!(
            "{}  component={}  signature={sig}\n{}\n",
            self.request_line,
            self.component.as_deref().unwrap_or("-"),
            self.body
        )
    }
}

/// What to do with each request received.
pub type Report = Box<dyn Fn(Received) + Send + Sync>;

/// Serves on `listener` until `stop` turns true, calling `report` for each request (none: a
/// silent sink that does no more work than answering). With a key, requests without a valid
/// signature are answered 401.
pub async fn run(
    listener: TcpListener,
    key: Option<Vec<u8>>,
    stop: watch::Receiver<bool>,
    report: Option<Report>,
) {
    let key = Arc::new(key);
    let report = Arc::new(report);
    server::serve(listener, stop, move |req, _peer: SocketAddr| {
        let key = key.clone();
        let report = report.clone();
        async move { handle(req, key.as_deref(), report.as_deref()).await }
    })
    .await;
}

async fn handle(
    req: Request<Incoming>,
    key: Option<&[u8]>,
    report: Option<&(dyn Fn(Received) + Send + Sync)>,
) -> Response<Full<Bytes>> {
    let request_line = format!("{} {}", req.method(), req.uri());
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let component = header("gotk-component");
    let signature_header = header("x-signature");
    let body = match tokio::time::timeout(
        Duration::from_secs(30),
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return status(StatusCode::BAD_REQUEST),
    };
    let signature = match key {
        None => Signature::NotChecked,
        Some(k) => verify(k, &body, signature_header.as_deref()),
    };
    let ok = matches!(signature, Signature::NotChecked | Signature::Valid);
    if let Some(report) = report {
        let pretty = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        report(Received {
            request_line,
            component,
            signature,
            body: pretty,
        });
    }
    status(if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    })
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}
