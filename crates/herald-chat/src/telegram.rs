//! `telegram`: the Bot API's `sendMessage` with MarkdownV2 (contract section 5.11).
//!
//! `POST <base>/bot<token>/sendMessage`, where `<base>` is the Provider's address when it is
//! set (the Flux v1beta1/v1beta2 docs told users to set `https://api.telegram.org`; a Bot API
//! server of your own, or a loopback test server, works too) and `https://api.telegram.org`
//! otherwise. Flux always ignores the address. `channel` is `<chat>` or `<chat>:<thread>`.
//! The bot token is part of the URL path, so it is masked in every error and log line (and
//! herald shows URLs only as `scheme://host/…` anyway).

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, HttpProvider, JsonPost, Setup, path_segment};

use crate::common;

/// The Bot API base used when the Provider has no address.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// The characters MarkdownV2 requires to be escaped, in Flux's order.
const SPECIAL: &str = "\\.-_[]()~>`#+=|{}!*";

/// Escapes `s` for MarkdownV2: a backslash before each of `` \ . - _ [ ] ( ) ~ > ` # + = | { } ! * ``.
///
/// Flux inserts the backslashes one character class at a time, the backslash itself first,
/// so inserted backslashes are never escaped again; that is the same as one pass that
/// prefixes every special character once, which is what this does.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8 + 4);
    escape_into(&mut out, s);
    out
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        if SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The message text: `*<esc(emoji object)>*`, the escaped message, then
/// `\- *<esc(key)>*: <esc(value)>` per metadata entry, each line ending in `\n`.
pub fn message(event: &Event) -> String {
    let mut out = String::with_capacity(64 + event.message.len() * 9 / 8);
    out.push('*');
    escape_into(&mut out, common::emoji(event));
    out.push(' ');
    escape_into(&mut out, &text::obj_slash3(event));
    out.push_str("*\n");
    escape_into(&mut out, &event.message);
    out.push('\n');
    for (k, v) in &event.metadata {
        out.push_str("\\- *");
        escape_into(&mut out, k);
        out.push_str("*: ");
        escape_into(&mut out, v);
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct Payload<'a> {
    chat_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message_thread_id: &'a str,
    text: String,
    parse_mode: &'static str,
}

/// The `sendMessage` body for `channel` (`<chat>` or `<chat>:<thread>`; the thread id is sent
/// as a JSON string, as Flux does).
pub fn render(event: &Event, channel: &str) -> Result<Vec<u8>, serde_json::Error> {
    render_text(message(event), channel)
}

/// The `sendMessage` body carrying `text`, MarkdownV2 as it is: a template's output, whose
/// values the template escapes itself (its `telegram` filter).
pub fn render_text(text: String, channel: &str) -> Result<Vec<u8>, serde_json::Error> {
    let (chat_id, thread) = channel.split_once(':').unwrap_or((channel, ""));
    json::to_vec(&Payload {
        chat_id,
        message_thread_id: thread,
        text,
        parse_mode: "MarkdownV2",
    })
}

/// A validated `telegram` Provider.
#[derive(Debug)]
pub(crate) struct Telegram {
    /// `<base>/bot<token>/sendMessage`: holds the token.
    post: JsonPost,
    channel: String,
}

impl HttpProvider for Telegram {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let config = setup.config();
        if config.channel.trim().is_empty() {
            return Err(BuildError::invalid(
                "spec.channel",
                "empty Telegram channel: set a chat id (-1001234567890), a chat id and a topic \
                 id (-1001234567890:1) or a channel username (@name)",
            ));
        }
        let token = setup.require_token(
            "empty Telegram token: put the bot token from @BotFather in the Secret's `token` key",
        )?;
        setup.secret(token.expose());
        let (base, authorization) = if config.address.expose().trim().is_empty() {
            (DEFAULT_API_BASE.to_owned(), None)
        } else {
            let endpoint = setup
                .endpoint("Telegram Bot API base URL (for example https://api.telegram.org)")?;
            (endpoint.base()?, endpoint.basic().cloned())
        };
        let url = format!("{base}/bot{}/sendMessage", path_segment(token.expose()));
        Ok(Telegram {
            post: JsonPost::new(url, authorization),
            channel: config.channel.trim().to_owned(),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event, &self.channel))
    }

    /// A template writes the whole MarkdownV2 message (heading and metadata included).
    fn render_templated(
        &self,
        _event: &Event,
        text: String,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render_text(text, &self.channel))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flux's `escapeString`, transcribed literally (one pass per special character).
    fn flux_escape(s: &str) -> String {
        let mut s = s.to_owned();
        for c in SPECIAL.chars() {
            let mut start = 0;
            while start < s.len() {
                match s[start..].find(c) {
                    Some(i) => {
                        let at = start + i;
                        s.insert(at, '\\');
                        start = at + 2;
                    }
                    None => break,
                }
            }
        }
        s
    }

    #[test]
    fn every_special_character_is_escaped_once() {
        assert_eq!(
            escape("\\.-_[]()~>`#+=|{}!*"),
            "\\\\\\.\\-\\_\\[\\]\\(\\)\\~\\>\\`\\#\\+\\=\\|\\{\\}\\!\\*"
        );
        assert_eq!(escape("gitops-system"), "gitops\\-system");
        assert_eq!(escape("some.value"), "some\\.value");
        assert_eq!(escape("a\\.b"), "a\\\\\\.b");
        assert_eq!(escape("plain ünï 🚀 <&>"), "plain ünï 🚀 <&\\>");
        for s in [
            "",
            "\\\\..--",
            "[link](http://x.y/z?a=b&c=d#f)",
            "`code` *bold* _it_ ~s~ ||sp|| {x} !",
            "é\\\u{1F680}.\\",
        ] {
            assert_eq!(escape(s), flux_escape(s), "{s:?}");
        }
    }
}
