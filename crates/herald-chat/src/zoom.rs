//! `zoom`: a Zoom Team Chat incoming-webhook message in the rich (`format=full`) format
//! (contract section 5.23; a type of Flux's main branch, not of a release yet).
//!
//! `POST <address>` with `format=full` added to the query unless it names a `format`, and the
//! raw verification token as `Authorization` (no scheme). The body is a card: the object as
//! heading, the severity as sub-heading, the message, and the metadata as fields.

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::provider::{self, HttpProvider, JsonPost, Setup, TOKEN_FIELD};
use herald_http::{Request, form};

/// A validated `zoom` Provider. The Secret's `token` (the verification token) is required.
#[derive(Debug)]
pub(crate) struct Zoom {
    post: JsonPost,
}

impl HttpProvider for Zoom {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let mut endpoint = setup.endpoint("Zoom incoming webhook URL")?;
        let token = setup.require_token("empty Zoom verification token")?;
        let authorization = setup.header(token.expose(), TOKEN_FIELD)?;
        if let Some(query) = full_format_query(endpoint.query().unwrap_or_default()) {
            endpoint.set_query(&query);
        }
        Ok(Zoom {
            post: JsonPost::new(endpoint.url(), Some(authorization)),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

/// The query with `format=full` added, re-encoded as Go re-encodes it (keys sorted), when the
/// query has no non-empty `format`; `None` when it has one, which is then kept as written.
pub fn full_format_query(query: &str) -> Option<String> {
    let mut pairs = form::decode(query);
    // Go's `Query().Get("format")`: the first value, where an empty one counts as none.
    let format = pairs.iter().find(|(k, _)| k == "format").map(|(_, v)| v);
    if format.is_some_and(|v| !v.is_empty()) {
        return None;
    }
    pairs.retain(|(k, _)| k != "format");
    pairs.push(("format".to_owned(), "full".to_owned()));
    Some(form::encode(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

#[derive(Serialize)]
struct Payload<'a> {
    content: Content<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    head: Head<'a>,
    body: Vec<BodyItem<'a>>,
}

#[derive(Serialize)]
struct Head<'a> {
    text: String,
    sub_head: SubHead<'a>,
}

#[derive(Serialize)]
struct SubHead<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct BodyItem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    text: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    items: Vec<Field<'a>>,
}

#[derive(Serialize)]
struct Field<'a> {
    key: &'a str,
    value: &'a str,
}

/// The body: `{"content":{"head":{"text":"<kind>/<name>.<namespace>","sub_head":{"text":
/// "<severity>"}},"body":[{"type":"message","text":"<message>"},{"type":"fields","items":[{"key":
/// …,"value":…}…]}]}}`, the fields item only with metadata (in key order, where Flux iterates a
/// Go map).
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = vec![BodyItem {
        kind: "message",
        text: &event.message,
        items: Vec::new(),
    }];
    if !event.metadata.is_empty() {
        body.push(BodyItem {
            kind: "fields",
            text: "",
            items: event
                .metadata
                .iter()
                .map(|(key, value)| Field { key, value })
                .collect(),
        });
    }
    json::to_vec(&Payload {
        content: Content {
            head: Head {
                text: text::obj_dot(event),
                sub_head: SubHead {
                    text: event.severity.as_str(),
                },
            },
            body,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_full_is_added_unless_a_format_is_named() {
        assert_eq!(full_format_query("").as_deref(), Some("format=full"));
        assert_eq!(
            full_format_query("z=1&a=b%20c").as_deref(),
            Some("a=b+c&format=full&z=1"),
            "Go re-encodes the whole query, sorted"
        );
        assert_eq!(full_format_query("format=fields"), None);
        assert_eq!(
            full_format_query("format=&x=1").as_deref(),
            Some("format=full&x=1"),
            "an empty format counts as none"
        );
    }
}
