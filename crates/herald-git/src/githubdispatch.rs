//! `githubdispatch`: `repository_dispatch` events on GitHub's REST API
//! (<https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event>).

use herald_core::template::Templates;
use herald_core::{BuildError, DeliveryError, Event, ProviderConfig, ProviderType, text};
use herald_http::provider::{Entry, Render, Setup};
use herald_http::{HttpClient, Request};

use crate::delivery::{self, Deliver};

use crate::github::Api;
use crate::status::{refuse_unsupported, to_json};

/// A validated `githubdispatch` Provider.
#[derive(Debug)]
pub(crate) struct Dispatch {
    api: Api,
    /// The message templates of the Provider and its Alerts: each renders the whole body
    /// (`event_type` and `client_payload`, checked at load).
    templates: Templates,
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

impl Deliver for Dispatch {
    const STEPS: &'static str = "posting the dispatch (and fetching a GitHub App token)";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        refuse_unsupported(setup.config())?;
        Ok(Dispatch {
            api: Api::from_config(setup, false)?,
            templates: setup.config().templates.clone(),
        })
    }

    async fn deliver(
        &self,
        client: &HttpClient,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let request = self.api.post_json("dispatches", self.body(event, alert)?);
        self.api
            .send(client, request)
            .await
            .map_err(|e| e.context("could not send github repository dispatch webhook"))?;
        Ok(())
    }

    fn preview(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<Request>, DeliveryError> {
        let request = self.api.post_json("dispatches", self.body(event, alert)?);
        Ok(vec![self.api.previewed(request)])
    }
}

impl Dispatch {
    /// The dispatch body for `event`, matched by `alert`: its template's (the Alert's, else the
    /// Provider's), else Flux's.
    fn body(&self, event: &Event, alert: &serde_json::Value) -> Result<Vec<u8>, DeliveryError> {
        match self.templates.for_alert(alert) {
            Some(template) => Ok(template.render(event, alert)?.into_bytes()),
            None => render(event),
        }
    }
}

impl Render for Dispatch {
    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        render(event).map(Some)
    }
}

fn renderer(config: &ProviderConfig) -> Result<Box<dyn Render>, BuildError> {
    Ok(Box::new(Dispatch::from_config(&mut Setup::new(config))?))
}

/// The table line of `githubdispatch`.
pub(crate) const ENTRY: Entry = Entry {
    ty: ProviderType::GitHubDispatch,
    build: delivery::notifier::<Dispatch>,
    render: renderer,
};
