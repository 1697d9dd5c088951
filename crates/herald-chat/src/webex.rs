//! `webex`: the Webex messages API (contract section 5.8).
//!
//! `POST <address>` (normally `https://webexapis.com/v1/messages`) with
//! `Authorization: Bearer <token>` and `{"roomId":"<channel>","markdown":"<md>"}`; both fields
//! are left out when empty. As in Flux the header is sent even without a token (Go then puts
//! `Bearer` alone on the wire).

use std::fmt::Write as _;

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, HttpProvider, JsonPost, Setup};

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "roomId", skip_serializing_if = "str::is_empty")]
    room_id: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    markdown: String,
}

/// The message: `✅ **<object>**` (`💣` for errors), the message, then `>**<key>**: <value>`
/// per metadata entry, each line ending in `\n`.
pub fn markdown(event: &Event) -> String {
    let emoji = if event.severity.is_error() {
        "💣"
    } else {
        "✅"
    };
    let mut md = String::with_capacity(64 + event.message.len());
    // Writing to a String cannot fail.
    let _ = write!(
        md,
        "{emoji} **{}**\n{}\n",
        text::obj_dot(event),
        event.message
    );
    for (k, v) in &event.metadata {
        let _ = writeln!(md, ">**{k}**: {v}");
    }
    md
}

/// The `webex` body for room `room_id`.
pub fn render(event: &Event, room_id: &str) -> Result<Vec<u8>, serde_json::Error> {
    json::to_vec(&Payload {
        room_id,
        markdown: markdown(event),
    })
}

/// A validated `webex` Provider.
#[derive(Debug)]
pub(crate) struct Webex {
    post: JsonPost,
    room_id: String,
}

impl HttpProvider for Webex {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("Webex API URL")?;
        let token = setup.token();
        Ok(Webex {
            post: JsonPost::new(endpoint.url(), Some(setup.bearer(token.as_ref())?)),
            room_id: setup.config().channel.clone(),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event, &self.room_id))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}
