//! `googlechat`: a Google Chat incoming webhook, Cards v1 (contract section 5.7).
//!
//! One card: the object as title, the reporting controller as subtitle, a section with the
//! message (in red `<font>` for errors) and, when there is metadata, a section with one
//! key-value widget per entry, in key order.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use herald_core::{
    BuildError, DeliveryError, Event, Notifier, ProviderConfig, SecretString, json, text,
};
use herald_http::{HeaderValue, Request, RetryPolicy};

use crate::common::{self, Chat};

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
struct GoogleChat {
    url: SecretString,
    authorization: Option<HeaderValue>,
}

pub(crate) fn build(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let endpoint = common::endpoint(config, "Google Chat webhook URL")?;
    let chat = GoogleChat {
        url: endpoint.url.as_str().into(),
        authorization: endpoint.basic.clone(),
    };
    let extra: Vec<_> = endpoint.password.iter().collect();
    common::notifier(chat, config, retry, &extra)
}

impl Chat for GoogleChat {
    fn request(&self, event: &Event) -> Result<Request, DeliveryError> {
        let body = render(event).map_err(|e| common::render_error(&e))?;
        Ok(common::post_json(
            &self.url,
            body,
            self.authorization.as_ref(),
        ))
    }
}
