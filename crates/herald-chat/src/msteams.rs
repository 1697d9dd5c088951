//! `msteams`: Microsoft Teams (contract section 5.6).
//!
//! The body's schema follows the address's host, as in Flux: a host ending in
//! `.webhook.office.com` (port ignored) is a retired Office 365 connector and gets a legacy
//! **MessageCard**; every other host (Power Automate Workflows: `*.logic.azure.com`,
//! `*.environment.api.powerplatform.com`, ...) gets an **Adaptive Card 1.4**, full width.
//! Errors are coloured (`FF0000` theme, `attention` text). Facts list `summary` first, then
//! the other metadata keys in order (Flux sorts only the Adaptive Card's; herald sorts both).

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, HttpProvider, JsonPost, Setup};

/// Which card format a Teams address receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// The Office 365 connector MessageCard (hosts ending in `.webhook.office.com`).
    MessageCard,
    /// An Adaptive Card 1.4 in a `message` (Workflows and everything else).
    AdaptiveCard,
}

/// The schema for a webhook host (lower-case, without its port: [`Endpoint::host`]), chosen
/// by suffix: `XXX.WEBHOOK.OFFICE.COM:443` is a connector, the lookalike
/// `xxx-webhook.office.com` is not.
///
/// [`Endpoint::host`]: herald_http::provider::Endpoint::host
pub fn schema_for(host: &str) -> Schema {
    if host.ends_with(".webhook.office.com") {
        Schema::MessageCard
    } else {
        Schema::AdaptiveCard
    }
}

/// `summary` first (if present), then the other entries in key order.
fn facts(event: &Event) -> impl Iterator<Item = (&str, &str)> {
    let summary = event.metadata.get_key_value("summary");
    summary
        .into_iter()
        .chain(
            event
                .metadata
                .iter()
                .filter(|(k, _)| k.as_str() != "summary"),
        )
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

#[derive(Serialize)]
struct MessageCard<'a> {
    #[serde(rename = "@type")]
    ty: &'static str,
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "themeColor")]
    theme_color: &'static str,
    summary: &'a str,
    sections: [Section<'a>; 1],
}

#[derive(Serialize)]
struct Section<'a> {
    #[serde(rename = "activityTitle")]
    activity_title: &'a str,
    #[serde(rename = "activitySubtitle")]
    activity_subtitle: &'a str,
    facts: Vec<ConnectorFact<'a>>,
}

#[derive(Serialize)]
struct ConnectorFact<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct AdaptiveMessage<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    attachments: [AdaptiveAttachment<'a>; 1],
}

#[derive(Serialize)]
struct AdaptiveAttachment<'a> {
    #[serde(rename = "contentType")]
    content_type: &'static str,
    content: AdaptiveContent<'a>,
}

#[derive(Serialize)]
struct AdaptiveContent<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    version: &'static str,
    body: [Container<'a>; 1],
    msteams: MsTeams,
}

#[derive(Serialize)]
struct Container<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    items: (TextBlock<'a>, TextBlock<'a>, FactSet<'a>),
}

/// Go's `omitempty` on every field but `type`.
#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    text: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    size: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    weight: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    color: &'static str,
    #[serde(skip_serializing_if = "is_false")]
    wrap: bool,
}

#[derive(Serialize)]
struct FactSet<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    facts: Vec<AdaptiveFact<'a>>,
}

#[derive(Serialize)]
struct AdaptiveFact<'a> {
    title: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct MsTeams {
    width: &'static str,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The Teams body for `schema`.
pub fn render(event: &Event, schema: Schema) -> Result<Vec<u8>, serde_json::Error> {
    let object = text::obj_dot(event);
    let error = event.severity.is_error();
    match schema {
        Schema::MessageCard => json::to_vec(&MessageCard {
            ty: "MessageCard",
            context: "http://schema.org/extensions",
            theme_color: if error { "FF0000" } else { "0076D7" },
            summary: &object,
            sections: [Section {
                activity_title: &event.message,
                activity_subtitle: &object,
                facts: facts(event)
                    .map(|(name, value)| ConnectorFact { name, value })
                    .collect(),
            }],
        }),
        Schema::AdaptiveCard => json::to_vec(&AdaptiveMessage {
            ty: "message",
            attachments: [AdaptiveAttachment {
                content_type: "application/vnd.microsoft.card.adaptive",
                content: AdaptiveContent {
                    schema: "http://adaptivecards.io/schemas/adaptive-card.json",
                    ty: "AdaptiveCard",
                    version: "1.4",
                    body: [Container {
                        ty: "Container",
                        items: (
                            TextBlock {
                                ty: "TextBlock",
                                text: &object,
                                size: "large",
                                weight: "bolder",
                                color: "",
                                wrap: true,
                            },
                            TextBlock {
                                ty: "TextBlock",
                                text: &event.message,
                                size: "",
                                weight: "",
                                color: if error { "attention" } else { "" },
                                wrap: true,
                            },
                            FactSet {
                                ty: "FactSet",
                                facts: facts(event)
                                    .map(|(title, value)| AdaptiveFact { title, value })
                                    .collect(),
                            },
                        ),
                    }],
                    msteams: MsTeams { width: "Full" },
                },
            }],
        }),
    }
}

/// A validated `msteams` Provider.
#[derive(Debug)]
pub(crate) struct Teams {
    post: JsonPost,
    schema: Schema,
}

impl HttpProvider for Teams {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("Microsoft Teams webhook URL")?;
        Ok(Teams {
            schema: schema_for(endpoint.host()),
            post: JsonPost::new(endpoint.url(), endpoint.basic().cloned()),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event, self.schema))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_follows_the_host_suffix() {
        for (url, want) in [
            ("https://xxx.webhook.office.com", Schema::MessageCard),
            ("https://xxx.webhook.office.com:443", Schema::MessageCard),
            (
                "https://XXX.Webhook.Office.com/webhookb2/x",
                Schema::MessageCard,
            ),
            ("https://xxx-webhook.office.com", Schema::AdaptiveCard),
            ("https://webhook.office.com", Schema::AdaptiveCard),
            (
                "https://prod-1.westeurope.logic.azure.com:443/workflows/x",
                Schema::AdaptiveCard,
            ),
            ("http://127.0.0.1:8080/", Schema::AdaptiveCard),
        ] {
            let endpoint = herald_http::provider::Endpoint::parse(url, "f", "URL").unwrap();
            assert_eq!(schema_for(endpoint.host()), want, "{url}");
        }
    }
}
