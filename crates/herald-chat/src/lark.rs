//! `lark`: a Lark (Feishu) custom bot webhook, interactive card (contract section 5.12).
//!
//! Header `💫 <object>` on a `turquoise` template (`🚨` and `red` for errors), one `lark_md`
//! element with the message in bold and one `<key>: <value>` line per metadata entry. Flux
//! posts Lark without the Provider's proxy and custom CA; herald honours both.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use herald_core::{
    BuildError, DeliveryError, Event, Notifier, ProviderConfig, SecretString, json, text,
};
use herald_http::{HeaderValue, Request, RetryPolicy};

use crate::common::{self, Chat};

#[derive(Serialize)]
struct Payload {
    msg_type: &'static str,
    card: Card,
}

#[derive(Serialize)]
struct Card {
    config: CardConfig,
    header: Header,
    elements: [Element; 1],
}

#[derive(Serialize)]
struct CardConfig {
    wide_screen_mode: bool,
}

#[derive(Serialize)]
struct Header {
    title: Text,
    template: &'static str,
}

#[derive(Serialize)]
struct Element {
    tag: &'static str,
    text: Text,
}

#[derive(Serialize)]
struct Text {
    tag: &'static str,
    content: String,
}

/// The `lark` body.
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let mut content = String::with_capacity(16 + event.message.len());
    // Writing to a String cannot fail.
    let _ = write!(content, "**{}**\n\n", event.message);
    for (k, v) in &event.metadata {
        let _ = writeln!(content, "{k}: {v}");
    }
    json::to_vec(&Payload {
        msg_type: "interactive",
        card: Card {
            config: CardConfig {
                wide_screen_mode: true,
            },
            header: Header {
                title: Text {
                    tag: "plain_text",
                    content: format!("{} {}", common::emoji(event), text::obj_dot(event)),
                },
                template: if event.severity.is_error() {
                    "red"
                } else {
                    "turquoise"
                },
            },
            elements: [Element {
                tag: "div",
                text: Text {
                    tag: "lark_md",
                    content,
                },
            }],
        },
    })
}

/// A validated `lark` Provider.
#[derive(Debug)]
struct Lark {
    url: SecretString,
    authorization: Option<HeaderValue>,
}

pub(crate) fn build(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let endpoint = common::endpoint(config, "Lark webhook URL")?;
    let lark = Lark {
        url: endpoint.url.as_str().into(),
        authorization: endpoint.basic.clone(),
    };
    let extra: Vec<_> = endpoint.password.iter().collect();
    common::notifier(lark, config, retry, &extra)
}

impl Chat for Lark {
    fn request(&self, event: &Event) -> Result<Request, DeliveryError> {
        let body = render(event).map_err(|e| common::render_error(&e))?;
        Ok(common::post_json(
            &self.url,
            body,
            self.authorization.as_ref(),
        ))
    }
}
