//! `slack`: an incoming webhook, or the Web API's `chat.postMessage` with a bot token
//! (contract section 5.3). The Slack attachment body is shared with Discord and Rocket.Chat.
//!
//! Slack's Web API answers `HTTP 200` with `{"ok":false,"error":"…"}` when it refuses a
//! message. Flux checks that only when the address is exactly
//! `https://slack.com/api/chat.postMessage`; herald checks every JSON answer with `ok:false`
//! (and requires a JSON answer from any `slack.com/api/` address), so a refused message is
//! never reported as delivered. Such a refusal is permanent, except `ratelimited`.

use serde::{Deserialize, Serialize};

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::provider::{self, Credential, HttpProvider, JsonPost, Setup};
use herald_http::{Request, Response};

/// The colours of an attachment: Slack's and Discord's named colours, or Rocket.Chat's hex.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Colors {
    pub(crate) ok: &'static str,
    pub(crate) error: &'static str,
}

/// `good` / `danger`.
pub(crate) const SLACK_COLORS: Colors = Colors {
    ok: "good",
    error: "danger",
};

#[derive(Serialize)]
struct Payload<'a> {
    channel: &'a str,
    username: &'a str,
    icon_url: &'static str,
    icon_emoji: &'static str,
    attachments: [Attachment<'a>; 1],
}

#[derive(Serialize)]
struct Attachment<'a> {
    fallback: String,
    color: &'static str,
    author_name: String,
    text: &'a str,
    mrkdwn_in: [&'static str; 1],
    fields: Vec<Field<'a>>,
}

#[derive(Serialize)]
struct Field<'a> {
    title: &'a str,
    value: &'a str,
    short: bool,
}

/// The Slack-format body: one attachment with the object as author, the message as text and
/// one field per metadata entry (sorted by key). `fallback` is `<object>: <first line>` when
/// `with_fallback`, else empty (Discord, Rocket.Chat).
pub(crate) fn render_attachment(
    event: &Event,
    channel: &str,
    username: &str,
    colors: Colors,
    with_fallback: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    let author = text::obj_dot(event);
    let fallback = if with_fallback {
        format!("{author}: {}", text::first_line(&event.message))
    } else {
        String::new()
    };
    let payload = Payload {
        channel,
        username,
        icon_url: "",
        icon_emoji: "",
        attachments: [Attachment {
            fallback,
            color: if event.severity.is_error() {
                colors.error
            } else {
                colors.ok
            },
            author_name: author,
            text: &event.message,
            mrkdwn_in: ["text"],
            fields: event
                .metadata
                .iter()
                .map(|(title, value)| Field {
                    title,
                    value,
                    short: false,
                })
                .collect(),
        }],
    };
    json::to_vec(&payload)
}

/// The `slack` body: `channel` as configured (may be empty), `username` as configured or
/// else the reporting controller, colours `good`/`danger`, and a fallback text.
pub fn render(event: &Event, channel: &str, username: &str) -> Result<Vec<u8>, serde_json::Error> {
    let username = if username.is_empty() {
        event.reporting_controller.as_str()
    } else {
        username
    };
    render_attachment(event, channel, username, SLACK_COLORS, true)
}

/// Slack's Web API answer.
#[derive(Deserialize)]
struct ApiAnswer {
    ok: Option<bool>,
    #[serde(default)]
    error: String,
}

/// Checks a `2xx` body from Slack. `web_api` is whether the address is Slack's Web API
/// (`slack.com/api/…`), whose answers must be JSON with `ok:true`; any other body passes unless
/// it is JSON with `ok:false`. The error names Slack's reason and is permanent, except for
/// `ratelimited`.
pub fn check_answer(body: &[u8], web_api: bool) -> Result<(), DeliveryError> {
    match serde_json::from_slice::<ApiAnswer>(body) {
        Ok(ApiAnswer { ok: Some(true), .. }) => Ok(()),
        Ok(ApiAnswer {
            ok: Some(false),
            error,
        }) => {
            let message = format!("Slack responded with error: {error}");
            Err(if error == "ratelimited" {
                DeliveryError::transient(message)
            } else {
                DeliveryError::permanent(message)
            }
            .with_status(200))
        }
        Ok(ApiAnswer { ok: None, .. }) | Err(_) if web_api => Err(DeliveryError::permanent(
            "Slack answered HTTP 200 without its JSON `ok` field: the message may not have been \
             posted",
        )
        .with_status(200)),
        _ => Ok(()),
    }
}

/// A validated `slack` Provider.
#[derive(Debug)]
pub(crate) struct Slack {
    post: JsonPost,
    channel: String,
    username: String,
    web_api: bool,
}

impl HttpProvider for Slack {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("Slack URL")?;
        // A bot token wins over the address's userinfo, as in Go.
        let authorization =
            setup.authorization(&endpoint, &[Credential::Bearer, Credential::Userinfo])?;
        Ok(Slack {
            web_api: endpoint.host() == "slack.com" && endpoint.path().starts_with("/api/"),
            post: JsonPost::new(endpoint.url(), authorization),
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

    fn check(&self, response: &Response) -> Result<(), DeliveryError> {
        check_answer(&response.body, self.web_api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_like_slack_means_them() {
        assert!(check_answer(br#"{"ok":true,"channel":"C1"}"#, true).is_ok());
        assert!(check_answer(b"ok", false).is_ok());
        assert!(check_answer(b"", false).is_ok());
        assert!(check_answer(br#"{"success":true}"#, false).is_ok());
        let e = check_answer(br#"{"ok":false,"error":"too_many_attachments"}"#, false).unwrap_err();
        assert_eq!(
            e.message(),
            "Slack responded with error: too_many_attachments"
        );
        assert!(!e.is_retryable());
        assert_eq!(e.status(), Some(200));
        let e = check_answer(br#"{"ok":false,"error":"ratelimited"}"#, true).unwrap_err();
        assert!(e.is_retryable());
        let e = check_answer(b"ok", true).unwrap_err();
        assert!(e.message().contains("without its JSON `ok` field"), "{e}");
        assert!(check_answer(br#"{"error":"x"}"#, true).is_err());
    }
}
