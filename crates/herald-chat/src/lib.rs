//! herald-chat: the chat providers `slack`, `discord`, `rocket`, `msteams`, `googlechat`,
//! `webex`, `telegram`, `lark`, `matrix`, `zulip` and `zoom` (herald's `chat` feature).
//!
//! Each module turns a Flux event into exactly the request Flux's notification-controller
//! sends to that service (section 5 of the compatibility contract: same fields, same order,
//! Go's JSON escaping and form encoding, metadata in key order where Flux iterates a Go map) and sends it with
//! [`herald_http`]. Rendering is pure (each module's `render`); sending is the only I/O. Every
//! provider honours the Provider's proxy, custom CA, client certificate and timeout (Flux
//! ignores some of them for Discord, Google Chat, Telegram, Lark and Matrix), errors never
//! show a secret, Slack's `HTTP 200 {"ok":false}` refusals are failures, and Matrix
//! deliveries are idempotent.
//!
//! It is not an HTTP client and does no event matching.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::path::Path;
//! use herald_core::{Registry, manifest};
//! use herald_testkit::{Recorder, fixture_event};
//!
//! let slack = Recorder::start().await;
//! let yaml = format!(
//!     "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\n\
//!      metadata:\n  name: slack\n  namespace: flux-system\n\
//!      spec:\n  type: slack\n  channel: general\n  address: {}/api/chat.postMessage\n  secretRef:\n    name: slack-token\n\
//!      ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: slack-token\n  namespace: flux-system\n\
//!      stringData:\n  token: xoxb-example\n",
//!     slack.url()
//! );
//! let (set, errors) = manifest::parse_str(Path::new("providers.yaml"), &yaml);
//! assert!(errors.is_empty(), "{errors:?}");
//! let config = set.provider_config(&set.providers[0]).unwrap();
//!
//! let mut registry = Registry::new();
//! herald_chat::register(&mut registry);
//! let notifier = registry.build(&config).unwrap();
//! notifier.post(&fixture_event()).await.unwrap();
//!
//! let got = slack.wait_for(1, std::time::Duration::from_secs(5)).await.remove(0);
//! assert_eq!(got.path, "/api/chat.postMessage");
//! assert_eq!(got.header("authorization"), Some("Bearer xoxb-example"));
//! assert!(got.body_str().starts_with(r#"{"channel":"general","username":"source-controller""#));
//! # }
//! ```

use herald_core::{Family, ProviderType};
use herald_http::provider::{Table, entry};

mod common;
pub mod discord;
pub mod googlechat;
pub mod lark;
pub mod matrix;
pub mod msteams;
pub mod rocket;
pub mod slack;
pub mod telegram;
pub mod webex;
pub mod zoom;
pub mod zulip;

/// The providers of this crate: one line per type.
const PROVIDERS: Table<11> = Table::new(
    Family::Chat,
    [
        entry::<slack::Slack>(ProviderType::Slack),
        entry::<discord::Discord>(ProviderType::Discord),
        entry::<rocket::Rocket>(ProviderType::Rocket),
        entry::<msteams::Teams>(ProviderType::MsTeams),
        entry::<googlechat::GoogleChat>(ProviderType::GoogleChat),
        entry::<webex::Webex>(ProviderType::Webex),
        entry::<telegram::Telegram>(ProviderType::Telegram),
        entry::<lark::Lark>(ProviderType::Lark),
        entry::<matrix::Matrix>(ProviderType::Matrix),
        entry::<zulip::Zulip>(ProviderType::Zulip),
        entry::<zoom::Zoom>(ProviderType::Zoom),
    ],
);

herald_http::family_api!(PROVIDERS);
