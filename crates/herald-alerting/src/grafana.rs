//! `grafana`: one annotation per event, POSTed to Grafana's `/api/annotations`.

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, Credential, HttpProvider, JsonPost, Setup};

/// A validated `grafana` Provider.
#[derive(Debug)]
pub(crate) struct Grafana {
    post: JsonPost,
}

impl HttpProvider for Grafana {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        // Flux's order: a token wins; otherwise Basic auth when both username and password
        // are set; otherwise the address's `user:password@`, as Go's HTTP client would use it.
        let order = [Credential::Bearer, Credential::Basic, Credential::Userinfo];
        let post = JsonPost::from_setup(setup, "Grafana URL", &order)?;
        Ok(Grafana { post })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    /// Flux's annotation carries no message: a template sets its `text` (the object otherwise).
    fn render_templated(
        &self,
        event: &Event,
        text: String,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render_with_text(event, text))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

#[derive(Serialize)]
struct Annotation {
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<i64>,
    text: String,
    tags: Vec<String>,
}

/// The request body: `{"when":<Unix seconds>,"time":<Unix milliseconds>,"text":"<OBJ_DOT>",
/// "tags":[…]}`.
///
/// `when` is the Graphite-style field Flux sends; Grafana's `/api/annotations` reads `time`
/// (milliseconds), which herald adds so that the annotation sits at the event's own time
/// rather than at the time of arrival. Both are omitted when the event has no time (Grafana
/// then uses the time of arrival). Tags, in order: `flux`, the reporting controller, one
/// `<key>: <value>` per metadata entry in key order (every `:` inside key and value replaced
/// by `|`), `kind: <Kind>`, `name: <name>`, `namespace: <namespace>`.
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    render_with_text(event, text::obj_dot(event))
}

/// [`render`] with `text` as the annotation's text (a message template's output).
pub fn render_with_text(event: &Event, text: String) -> Result<Vec<u8>, serde_json::Error> {
    let o = &event.involved_object;
    let mut tags = Vec::with_capacity(event.metadata.len() + 5);
    tags.push("flux".to_owned());
    tags.push(event.reporting_controller.clone());
    for (key, value) in &event.metadata {
        tags.push(format!(
            "{}: {}",
            key.replace(':', "|"),
            value.replace(':', "|")
        ));
    }
    tags.push(format!("kind: {}", o.kind));
    tags.push(format!("name: {}", o.name));
    tags.push(format!("namespace: {}", o.namespace));
    json::to_vec(&Annotation {
        when: event.timestamp.map(|t| t.unix()),
        time: event.timestamp.map(|t| t.unix_millis()),
        text,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{ObjectReference, Timestamp};

    #[test]
    fn tags_follow_the_flux_order() {
        let e = Event {
            involved_object: ObjectReference {
                kind: "GitRepository".into(),
                namespace: "gitops-system".into(),
                name: "webapp".into(),
                ..Default::default()
            },
            timestamp: Timestamp::from_unix(1_664_520_029),
            metadata: [
                ("test".to_owned(), "metadata".to_owned()),
                ("a:b".to_owned(), "c:d".to_owned()),
            ]
            .into(),
            reporting_controller: "source-controller".into(),
            ..Default::default()
        };
        let got = String::from_utf8(render(&e).unwrap()).unwrap();
        assert_eq!(
            got,
            r#"{"when":1664520029,"time":1664520029000,"text":"gitrepository/webapp.gitops-system","tags":["flux","source-controller","a|b: c|d","test: metadata","kind: GitRepository","name: webapp","namespace: gitops-system"]}"#
        );
        let none = Event {
            timestamp: None,
            ..e
        };
        let got = String::from_utf8(render(&none).unwrap()).unwrap();
        assert!(got.starts_with(r#"{"text":"#), "{got}");
    }
}
