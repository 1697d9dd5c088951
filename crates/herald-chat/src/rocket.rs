//! `rocket`: a Rocket.Chat incoming webhook (contract section 5.5).
//!
//! The body is the Slack attachment with Rocket's colours (`#0076D7`, `#FF0000` for errors),
//! `channel` and `username` exactly as configured (no default: Rocket.Chat uses the
//! webhook's), and an empty `fallback`.

use crate::slack::{Colors, render_attachment};
use herald_core::{BuildError, DeliveryError, Event};
use herald_http::Request;
use herald_http::provider::{self, Credential, HttpProvider, JsonPost, Setup};

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
pub(crate) struct Rocket {
    post: JsonPost,
    channel: String,
    username: String,
}

impl HttpProvider for Rocket {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        Ok(Rocket {
            post: JsonPost::from_setup(setup, "Rocket.Chat webhook URL", &[Credential::Userinfo])?,
            channel: setup.config().channel.clone(),
            username: setup.config().username.clone(),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event, &self.channel, &self.username))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}
