//! `generic-hmac`: `generic`, with the exact body bytes signed:
//! `X-Signature: sha256=<hex HMAC-SHA256(key = the Secret's token, body)>` (replacing any
//! `X-Signature` from the Secret's `headers`). The key is the token as stored, untrimmed, as
//! Flux signs with it.

use herald_core::{BuildError, DeliveryError, Event, SecretString};
use herald_http::provider::{HttpProvider, Setup, TOKEN_FIELD};
use herald_http::{HeaderName, HeaderValue, Request};

use crate::generic::Generic;

/// A validated `generic-hmac` Provider.
#[derive(Debug)]
pub(crate) struct GenericHmac {
    generic: Generic,
    key: SecretString,
}

impl HttpProvider for GenericHmac {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let generic = Generic::from_config(setup)?;
        match &setup.config().token {
            Some(key) if !key.is_empty() => Ok(GenericHmac {
                generic,
                key: key.clone(),
            }),
            _ => Err(BuildError::invalid(TOKEN_FIELD, "HMAC key is empty")),
        }
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        self.generic.render(event)
    }

    /// The template's body, signed as rendered.
    fn render_templated(
        &self,
        event: &Event,
        text: String,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        self.generic.render_templated(event, text)
    }

    fn request(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        let signature = crate::sign(self.key.expose().as_bytes(), &body);
        let value = HeaderValue::from_str(&signature)
            .map_err(|_| DeliveryError::permanent("bad signature header"))?;
        Ok(self
            .generic
            .post(event, body)?
            .header(HeaderName::from_static("x-signature"), value))
    }
}
