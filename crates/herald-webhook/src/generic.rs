//! `generic`: the Flux event itself, as JSON, POSTed to the Provider's address.
//!
//! Headers: `Content-Type: application/json`, `Gotk-Component: <reporting controller>`, then
//! the Secret's `headers` (which may replace either), then, as Go's client does, `Basic` auth
//! from the address's `user:password@` unless a header already set `Authorization`.

use herald_core::{BuildError, DeliveryError, Event, SecretString};
use herald_http::provider::{self, HttpProvider, Setup};
use herald_http::{HeaderName, HeaderValue, Request};

/// A validated `generic` Provider.
#[derive(Debug)]
pub(crate) struct Generic {
    url: SecretString,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Generic {
    /// The request carrying `body`, before any signature.
    pub(crate) fn post(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        let component = HeaderValue::from_str(&event.reporting_controller).map_err(|_| {
            DeliveryError::permanent("reportingController is not a valid HTTP header value")
        })?;
        Ok(Request::post_json(self.url.expose(), body)
            .header(HeaderName::from_static("gotk-component"), component)
            .headers(&self.headers))
    }
}

impl HttpProvider for Generic {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("hook URL")?;
        let mut headers = Vec::with_capacity(setup.config().headers.len() + 1);
        for (name, value) in &setup.config().headers {
            let header = herald_http::parse_header(name, value.expose())
                .map_err(|e| BuildError::invalid("secret key \"headers\"", e))?;
            headers.push(header);
        }
        if let Some(basic) = endpoint.basic()
            && !headers.iter().any(|(n, _)| *n == provider::AUTHORIZATION)
        {
            headers.push((provider::AUTHORIZATION, basic.clone()));
        }
        Ok(Generic {
            url: SecretString::new(endpoint.url()),
            headers,
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        Ok(Some(crate::render_body(event)))
    }

    /// A template renders the whole body (checked at load to be JSON, unless the Provider or
    /// Alert gives another content type).
    fn render_templated(
        &self,
        _event: &Event,
        text: String,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        Ok(Some(text.into_bytes()))
    }

    fn request(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        self.post(event, body)
    }
}
