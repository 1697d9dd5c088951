//! `rocket`: a Rocket.Chat incoming webhook (contract section 5.5).
//!
//! The body is the Slack attachment with Rocket's colours (`#0076D7`, `#FF0000` for errors),
//! `channel` and `username` exactly as configured (no default: Rocket.Chat uses the
//! webhook's), and an empty `fallback`.

use std::sync::Arc;

use herald_core::{BuildError, DeliveryError, Event, Notifier, ProviderConfig, SecretString};
use herald_http::{HeaderValue, Request, RetryPolicy};

use crate::common::{self, Chat};
use crate::slack::{Colors, render_attachment};

const ROCKET_COLORS: Colors = Colors {
    ok: "#0076D7",
    error: "#FF0000",
};

/// The `rocket` body.
pub fn render(event: &Event, channel: &str, username: &str) -> Result<Vec<u8>, serde_json::Error> {
    render_attachment(event, channel, username, ROCKET_COLORS, false)
}

/// A validated `rocket` Provider.
#[derive(Debug)]
struct Rocket {
    url: SecretString,
    channel: String,
    username: String,
    authorization: Option<HeaderValue>,
}

pub(crate) fn build(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let endpoint = common::endpoint(config, "Rocket.Chat webhook URL")?;
    let rocket = Rocket {
        url: endpoint.url.as_str().into(),
        channel: config.channel.clone(),
        username: config.username.clone(),
        authorization: endpoint.basic.clone(),
    };
    let extra: Vec<_> = endpoint.password.iter().collect();
    common::notifier(rocket, config, retry, &extra)
}

impl Chat for Rocket {
    fn request(&self, event: &Event) -> Result<Request, DeliveryError> {
        let body =
            render(event, &self.channel, &self.username).map_err(|e| common::render_error(&e))?;
        Ok(common::post_json(
            &self.url,
            body,
            self.authorization.as_ref(),
        ))
    }
}
