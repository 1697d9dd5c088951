//! herald-testkit: helpers for herald's tests. It offers a recording HTTP/1.1 server on
//! loopback with scripted replies ([`Recorder`], plain or TLS with optional client
//! certificates), a recording HTTP(S) proxy ([`RecordingProxy`]), a throw-away certificate
//! authority ([`TestCa`]), the Flux test event ([`fixture_event`]), golden-file comparison
//! ([`assert_golden`]), the harness every provider family's tests share ([`Family`],
//! [`golden_cases`], [`request_summary`]) with the layout check of the provider recipe
//! ([`assert_family_layout`]), and the start and stop wrappers for the real services whose
//! scripts live in this crate's `peers/` folder ([`start_peer`], [`stop_peer`],
//! [`peer_command`]), and the loading of templated manifests as the daemon does it
//! ([`ready_catalog`], [`notifier_and_alert`]). Its one binary, `herald-ceiling`, is a tool of
//! `cargo xtask bench daemon` (a durable forwarder on herald's stack; see its own docs).
//!
//! It is *not* part of herald: it is a dev-dependency only. It panics freely, with messages
//! meant for whoever reads a failing test, and it never talks to anything but 127.0.0.1.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use herald_testkit::{Recorder, Reply};
//! let rec = Recorder::start().await;
//! rec.push_reply(Reply::status(503).body("try later"));
//! assert!(rec.url().starts_with("http://127.0.0.1:"));
//! assert!(rec.requests().is_empty());
//! # }
//! ```

mod bench;
mod fixture;
mod golden;
mod harness;
mod keys;
mod peer;
mod proxy;
mod recorder;
mod templates;
mod tls;

pub use bench::measure;
pub use fixture::{bench_event, fixture, fixture_event};
pub use golden::assert_golden;
pub use harness::{
    Family, assert_family_layout, golden_cases, golden_path, provider_config, request_summary,
};
pub use keys::{RSA_PKCS1_PEM, RSA_PKCS8_PEM, rsa_public_key_der};
pub use peer::{
    in_ci, peer_command, peer_script, run_peer, start_peer, start_peer_with, stop_peer,
};
pub use proxy::{Proxied, RecordingProxy};
pub use recorder::{Recorded, Recorder, Reply};
pub use templates::{notifier_and_alert, ready_catalog};
pub use tls::{ServerTls, TestCa};
