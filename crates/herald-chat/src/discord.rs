//! `discord`: Discord's Slack-compatible webhook endpoint (contract section 5.4).
//!
//! The address is a Discord webhook URL; `/slack` is appended to its path unless the path
//! already ends with it, and the query (`?wait=true`, `?thread_id=…`) is kept. Flux looks for
//! the suffix on the whole URL string, so a query made it append `/slack` twice; herald looks
//! at the path. The body is the Slack attachment with an empty `channel` (Discord picks the
//! channel from the webhook) and an empty `fallback`.

use std::sync::Arc;

use herald_core::{BuildError, DeliveryError, Event, Notifier, ProviderConfig, SecretString};
use herald_http::{HeaderValue, Request, RetryPolicy};

use crate::common::{self, Chat};
use crate::slack::{SLACK_COLORS, render_attachment};

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
pub fn slack_endpoint(url: &mut url::Url) {
    let path = url.path().trim_end_matches('/');
    if !path.ends_with("/slack") {
        let joined = format!("{path}/slack");
        url.set_path(&joined);
    }
}

/// A validated `discord` Provider.
#[derive(Debug)]
struct Discord {
    url: SecretString,
    username: String,
    authorization: Option<HeaderValue>,
}

pub(crate) fn build(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let mut endpoint = common::endpoint(config, "Discord webhook URL")?;
    slack_endpoint(&mut endpoint.url);
    let discord = Discord {
        url: endpoint.url.as_str().into(),
        username: config.username.clone(),
        authorization: endpoint.basic.clone(),
    };
    let extra: Vec<_> = endpoint.password.iter().collect();
    common::notifier(discord, config, retry, &extra)
}

impl Chat for Discord {
    fn request(&self, event: &Event) -> Result<Request, DeliveryError> {
        let body = render(event, &self.username).map_err(|e| common::render_error(&e))?;
        Ok(common::post_json(
            &self.url,
            body,
            self.authorization.as_ref(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(s: &str) -> String {
        let mut url = url::Url::parse(s).unwrap();
        slack_endpoint(&mut url);
        url.to_string()
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
