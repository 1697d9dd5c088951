//! herald-http against real servers on loopback: the testkit's recorder (HTTP and HTTPS, with
//! and without client certificates), closed ports, a SOCKS5 server written here, and the real
//! authenticated proxy of herald-testkit's `peers/proxy.sh`.

mod errors;
mod headers;
mod proxy;
mod retry;
mod tls;

use std::time::Duration;

use herald_core::{DeliveryError, ProviderConfig, ProviderType};
use herald_http::{HttpClient, Request, Response, RetryPolicy};

/// Retries that keep the tests fast: 4 retries, 10 ms doubling, at most 50 ms.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

/// A `generic` provider `test/hook` posting to `url`.
fn config(url: &str) -> ProviderConfig {
    ProviderConfig::new(ProviderType::Generic, "test", "hook", url)
}

/// A client for `cfg` with the quick retry policy.
fn client(cfg: &ProviderConfig) -> HttpClient {
    HttpClient::from_config(cfg)
        .expect("the client builds")
        .with_retry_policy(quick())
}

/// POSTs `{}` to the provider's address.
async fn post(client: &HttpClient, cfg: &ProviderConfig) -> Result<Response, DeliveryError> {
    client
        .send(Request::post_json(cfg.address.expose(), "{}"))
        .await
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}
