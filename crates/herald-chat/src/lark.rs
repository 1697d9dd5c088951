//! `lark`: a Lark (Feishu) custom bot webhook, interactive card (contract section 5.12).
//!
//! Header `💫 <object>` on a `turquoise` template (`🚨` and `red` for errors), one `lark_md`
//! element with the message in bold and one `<key>: <value>` line per metadata entry. Flux
//! posts Lark without the Provider's proxy and custom CA; herald honours both.

use std::fmt::Write as _;

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, Credential, HttpProvider, JsonPost, Setup};

use crate::common;

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
pub(crate) struct Lark {
    post: JsonPost,
}

impl HttpProvider for Lark {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let post = JsonPost::from_setup(setup, "Lark webhook URL", &[Credential::Userinfo])?;
        Ok(Lark { post })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}
