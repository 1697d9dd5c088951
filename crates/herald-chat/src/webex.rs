//! `webex`: the Webex messages API (contract section 5.8).
//!
//! `POST <address>` (normally `https://webexapis.com/v1/messages`) with
//! `Authorization: Bearer <token>` and `{"roomId":"<channel>","markdown":"<md>"}`; both fields
//! are left out when empty. As in Flux the header is sent even without a token (Go then puts
//! `Bearer` alone on the wire).

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use herald_core::{
    BuildError, DeliveryError, Event, Notifier, ProviderConfig, SecretString, json, text,
};
use herald_http::{HeaderValue, Request, RetryPolicy};

use crate::common::{self, Chat};

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
struct Webex {
    url: SecretString,
    room_id: String,
    authorization: HeaderValue,
}

pub(crate) fn build(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let endpoint = common::endpoint(config, "Webex API URL")?;
    let token = common::token(config);
    let webex = Webex {
        url: endpoint.url.as_str().into(),
        room_id: config.channel.clone(),
        authorization: common::bearer(token.as_ref())?,
    };
    let extra: Vec<_> = endpoint.password.iter().collect();
    common::notifier(webex, config, retry, &extra)
}

impl Chat for Webex {
    fn request(&self, event: &Event) -> Result<Request, DeliveryError> {
        let body = render(event, &self.room_id).map_err(|e| common::render_error(&e))?;
        Ok(common::post_json(
            &self.url,
            body,
            Some(&self.authorization),
        ))
    }
}
