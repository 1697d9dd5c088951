//! `discord`: Discord's Slack-compatible webhook endpoint (contract section 5.4).
//!
//! The address is a Discord webhook URL; `/slack` is appended to its path unless the path
//! already ends with it, and the query (`?wait=true`, `?thread_id=…`) is kept. Flux looks for
//! the suffix on the whole URL string, so a query made it append `/slack` twice; herald looks
//! at the path. The body is the Slack attachment with an empty `channel` (Discord picks the
//! channel from the webhook) and an empty `fallback`.

use crate::slack::{SLACK_COLORS, render_attachment};
use herald_core::{BuildError, DeliveryError, Event};
use herald_http::Request;
use herald_http::provider::{self, Endpoint, HttpProvider, JsonPost, Setup};

/// The `discord` body: Slack's attachment, `channel` and `fallback` empty, `username` as
/// configured or else the reporting controller, colours `good`/`danger`.
pub fn render(event: &Event, username: &str) -> Result<Vec<u8>, serde_json::Error> {
    let username = if username.is_empty() {
        event.reporting_controller.as_str()
    } else {
        username
    };
    render_attachment(event, "", username, SLACK_COLORS, false)
}

/// The Slack-compatible endpoint of a Discord webhook URL: `/slack` appended to the path
/// unless it ends with it already; the query is kept.
pub fn slack_endpoint(endpoint: &mut Endpoint) {
    let path = endpoint.path().trim_end_matches('/');
    if !path.ends_with("/slack") {
        let joined = format!("{path}/slack");
        endpoint.set_path(&joined);
    }
}

/// A validated `discord` Provider.
#[derive(Debug)]
pub(crate) struct Discord {
    post: JsonPost,
    username: String,
}

impl HttpProvider for Discord {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let mut endpoint = setup.endpoint("Discord webhook URL")?;
        slack_endpoint(&mut endpoint);
        Ok(Discord {
            post: JsonPost::new(endpoint.url(), endpoint.basic().cloned()),
            username: setup.config().username.clone(),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event, &self.username))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(s: &str) -> String {
        let mut endpoint = Endpoint::parse(s, "spec.address", "URL").unwrap();
        slack_endpoint(&mut endpoint);
        endpoint.url()
    }

    #[test]
    fn slack_is_appended_once_and_the_query_kept() {
        for (given, want) in [
            (
                "https://discord.com/api/webhooks/1/tok",
                "https://discord.com/api/webhooks/1/tok/slack",
            ),
            (
                "https://discord.com/api/webhooks/1/tok/",
                "https://discord.com/api/webhooks/1/tok/slack",
            ),
            (
                "https://discord.com/api/webhooks/1/tok/slack",
                "https://discord.com/api/webhooks/1/tok/slack",
            ),
            (
                "https://discord.com/api/webhooks/1/tok?wait=true",
                "https://discord.com/api/webhooks/1/tok/slack?wait=true",
            ),
            (
                "https://discord.com/api/webhooks/1/tok/slack?thread_id=9",
                "https://discord.com/api/webhooks/1/tok/slack?thread_id=9",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/slack"),
            ("http://h/notslack", "http://h/notslack/slack"),
        ] {
            assert_eq!(endpoint(given), want, "{given}");
        }
    }
}
