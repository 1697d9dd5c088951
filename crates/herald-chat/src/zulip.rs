//! `zulip`: a stream message through Zulip's `POST /api/v1/messages` (contract section 5.21).
//!
//! The body is a form, `type=stream`, `to=<stream>`, `topic=<topic>` and `content=<the Flux
//! Status Markdown post>`, encoded as Go's `url.Values` encodes it (keys sorted); the channel is
//! `<stream>/<topic>`, and the bot's email and API key are the `username` and `password` of
//! Basic auth.

use herald_core::{BuildError, DeliveryError, Event, SecretString, text};
use herald_http::provider::{HttpProvider, Setup, TOKEN_FIELD};
use herald_http::{HeaderValue, Request, form};

/// The messages API, which replaces any path of the address.
const MESSAGES_PATH: &str = "/api/v1/messages";

/// A validated `zulip` Provider.
#[derive(Debug)]
pub(crate) struct Zulip {
    url: SecretString,
    authorization: Option<HeaderValue>,
    stream: String,
    topic: String,
}

impl HttpProvider for Zulip {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let mut endpoint = setup.endpoint("Zulip endpoint URL")?;
        endpoint.set_path(MESSAGES_PATH);
        let (stream, topic) = stream_and_topic(&setup.config().channel)?;
        let config = setup.config();
        let password = config.password.as_ref().map_or("", |p| p.expose());
        // As Go's SetBasicAuth in Flux: sent when either part is set.
        let authorization = if !config.username.is_empty() || !password.is_empty() {
            Some(setup.basic(&config.username, password, TOKEN_FIELD)?)
        } else {
            endpoint.basic().cloned()
        };
        Ok(Zulip {
            url: SecretString::new(endpoint.url()),
            authorization,
            stream,
            topic,
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        Ok(Some(render(event, &self.stream, &self.topic).into_bytes()))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        let request = Request::post_form(self.url.expose(), body);
        Ok(match &self.authorization {
            Some(value) => request.header(herald_http::provider::AUTHORIZATION, value.clone()),
            None => request,
        })
    }
}

/// `<stream>/<topic>`, split at the first `/`; both parts must be non-empty (Flux's error).
fn stream_and_topic(channel: &str) -> Result<(String, String), BuildError> {
    match channel.split_once('/') {
        Some((stream, topic)) if !stream.is_empty() && !topic.is_empty() => {
            Ok((stream.to_owned(), topic.to_owned()))
        }
        _ => Err(BuildError::invalid(
            "spec.channel",
            format!("invalid Zulip channel format, expected <channel>/<topic>, got '{channel}'"),
        )),
    }
}

/// The form body: `content=…&to=<stream>&topic=<topic>&type=stream`.
pub fn render(event: &Event, stream: &str, topic: &str) -> String {
    let content = text::flux_status_markdown(event);
    form::encode([
        ("type", "stream"),
        ("to", stream),
        ("topic", topic),
        ("content", content.as_str()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_split_at_the_first_slash() {
        assert_eq!(
            stream_and_topic("general/announcements/2026").unwrap(),
            ("general".to_owned(), "announcements/2026".to_owned())
        );
        for bad in ["invalid_format", "/topic", "stream/", ""] {
            assert_eq!(
                stream_and_topic(bad).unwrap_err().to_string(),
                format!(
                    "spec.channel: invalid Zulip channel format, expected <channel>/<topic>, got '{bad}'"
                )
            );
        }
    }
}
