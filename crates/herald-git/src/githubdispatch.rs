//! `githubdispatch`: `repository_dispatch` events on GitHub's REST API
//! (<https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event>).

use herald_core::{BuildError, DeliveryError, Event, text};
use herald_http::Request;
use herald_http::provider::{HttpProvider, Setup};

use crate::github::Api;
use crate::status::{refuse_unsupported, to_json};

/// A validated `githubdispatch` Provider.
#[derive(Debug)]
pub(crate) struct Dispatch {
    api: Api,
}

/// `{"event_type":"<Kind>/<name>.<namespace>","client_payload":<the event>}`, every severity
/// and reason.
pub(crate) fn render(event: &Event) -> Result<Vec<u8>, DeliveryError> {
    let event_type = to_json(&text::kind_name_dot_namespace(event))?;
    let payload = to_json(event)?;
    let mut body = Vec::with_capacity(event_type.len() + payload.len() + 36);
    body.extend_from_slice(b"{\"event_type\":");
    body.extend_from_slice(&event_type);
    body.extend_from_slice(b",\"client_payload\":");
    body.extend_from_slice(&payload);
    body.push(b'}');
    Ok(body)
}

impl HttpProvider for Dispatch {
    const SEND_FAILED: Option<&'static str> =
        Some("could not send github repository dispatch webhook");

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        refuse_unsupported(setup.config())?;
        Ok(Dispatch {
            api: Api::from_config(setup)?,
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        render(event).map(Some)
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.api.post_json("dispatches", body))
    }
}
