//! `googlechat`: a Google Chat incoming webhook, Cards v1 (contract section 5.7).
//!
//! One card: the object as title, the reporting controller as subtitle, a section with the
//! message (in red `<font>` for errors) and, when there is metadata, a section with one
//! key-value widget per entry, in key order.

use std::borrow::Cow;

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, Credential, HttpProvider, JsonPost, Setup};

#[derive(Serialize)]
struct Payload<'a> {
    cards: [Card<'a>; 1],
}

#[derive(Serialize)]
struct Card<'a> {
    header: Header<'a>,
    sections: Vec<Section<'a>>,
}

#[derive(Serialize)]
struct Header<'a> {
    title: String,
    subtitle: &'a str,
    #[serde(rename = "imageUrl")]
    image_url: Option<&'a str>,
    #[serde(rename = "imageStyle")]
    image_style: Option<&'a str>,
}

#[derive(Serialize)]
struct Section<'a> {
    header: &'static str,
    widgets: Vec<Widget<'a>>,
}

#[derive(Serialize)]
struct Widget<'a> {
    #[serde(rename = "textParagraph")]
    text_paragraph: Option<TextParagraph<'a>>,
    #[serde(rename = "keyValue")]
    key_value: Option<KeyValue<'a>>,
}

#[derive(Serialize)]
struct TextParagraph<'a> {
    text: Cow<'a, str>,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    #[serde(rename = "topLabel")]
    top_label: &'a str,
    content: &'a str,
    #[serde(rename = "contentMultiline")]
    content_multiline: bool,
    #[serde(rename = "bottomLabel")]
    bottom_label: Option<&'a str>,
    icon: Option<&'a str>,
}

/// The `googlechat` body.
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let message: Cow<'_, str> = if event.severity.is_error() {
        Cow::Owned(format!("<font color=\"#ff0000\">{}</font>", event.message))
    } else {
        Cow::Borrowed(&event.message)
    };
    let mut sections = Vec::with_capacity(2);
    sections.push(Section {
        header: "",
        widgets: vec![Widget {
            text_paragraph: Some(TextParagraph { text: message }),
            key_value: None,
        }],
    });
    if !event.metadata.is_empty() {
        sections.push(Section {
            header: "",
            widgets: event
                .metadata
                .iter()
                .map(|(k, v)| Widget {
                    text_paragraph: None,
                    key_value: Some(KeyValue {
                        top_label: k,
                        content: v,
                        content_multiline: false,
                        bottom_label: None,
                        icon: None,
                    }),
                })
                .collect(),
        });
    }
    json::to_vec(&Payload {
        cards: [Card {
            header: Header {
                title: text::obj_dot(event),
                subtitle: &event.reporting_controller,
                image_url: None,
                image_style: None,
            },
            sections,
        }],
    })
}

/// A validated `googlechat` Provider.
#[derive(Debug)]
pub(crate) struct GoogleChat {
    post: JsonPost,
}

impl HttpProvider for GoogleChat {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let what = "Google Chat webhook URL";
        let post = JsonPost::from_setup(setup, what, &[Credential::Userinfo])?;
        Ok(GoogleChat { post })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}
