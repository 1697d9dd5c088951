//! `matrix`: a Matrix homeserver's client-server API (contract section 5.13).
//!
//! `PUT <address>/_matrix/client/r0/rooms/<room>/send/m.room.message/<txnId>` with
//! `Authorization: Bearer <token>` and `{"body":"…","msgtype":"m.text"}`. The transaction id
//! is the lowercase hex SHA-1 of the event's JSON (Go's encoding, byte for byte), so a retry
//! or a redelivery of the same event is stored once by the homeserver. Unlike Flux, the room
//! id is escaped as a path segment (a plain `!opaque:server` id is unchanged; `#`, `/`, `?`
//! and `%` cannot break the URL), a trailing `/` of the address is dropped, an empty room or
//! token is a configuration error, and the Provider's proxy is honoured.

use std::fmt::Write as _;

use serde::Serialize;
use sha1::{Digest as _, Sha1};

use herald_core::{BuildError, DeliveryError, Event, SecretString, json, text};
use herald_http::provider::{self, HttpProvider, Setup, path_segment};
use herald_http::{HeaderValue, Method, Request};

use crate::common;

#[derive(Serialize)]
struct Payload {
    body: String,
    msgtype: &'static str,
}

/// The message: `<emoji> <object>`, the message, then `- <key>: <value>` per metadata entry.
pub fn body(event: &Event) -> String {
    let mut out = String::with_capacity(64 + event.message.len());
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{} {}\n{}\n",
        common::emoji(event),
        text::obj_dot(event),
        event.message
    );
    for (k, v) in &event.metadata {
        let _ = writeln!(out, "- {k}: {v}");
    }
    out
}

/// The `m.room.message` content.
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    json::to_vec(&Payload {
        body: body(event),
        msgtype: "m.text",
    })
}

/// The transaction id: lowercase hex SHA-1 of the event as Go's `json.Marshal` encodes it.
pub fn txn_id(event: &Event) -> Result<String, serde_json::Error> {
    let digest = Sha1::digest(json::to_vec(event)?);
    let mut out = String::with_capacity(40);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    Ok(out)
}

/// A validated `matrix` Provider.
#[derive(Debug)]
pub(crate) struct Matrix {
    /// `<address>/_matrix/client/r0/rooms/<escaped room>/send/m.room.message/`.
    prefix: SecretString,
    authorization: HeaderValue,
}

impl HttpProvider for Matrix {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let base = setup.endpoint("Matrix homeserver URL")?.base()?;
        let room = setup.config().channel.trim();
        if room.is_empty() {
            return Err(BuildError::invalid(
                "spec.channel",
                "empty Matrix room id: set the id of the room to post to (!opaque:example.org)",
            ));
        }
        let token = setup.require_token(
            "empty Matrix access token: put the access token of the posting user in the \
             Secret's `token` key",
        )?;
        Ok(Matrix {
            prefix: SecretString::new(format!(
                "{base}/_matrix/client/r0/rooms/{}/send/m.room.message/",
                path_segment(room)
            )),
            authorization: setup.bearer(Some(&token))?,
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    fn request(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        let txn = txn_id(event).map_err(|e| provider::encode_error(&e))?;
        let mut request = Request::post_json(format!("{}{txn}", self.prefix.expose()), body)
            .header(provider::AUTHORIZATION, self.authorization.clone());
        request.method = Method::PUT;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{Severity, Timestamp};

    #[test]
    fn txn_id_matches_the_flux_golden() {
        // Contract section 8.3: the minimal event of Flux's matrix_test.go.
        let event = Event {
            severity: Severity::Info,
            timestamp: Timestamp::parse("2021-08-24T16:18:00Z").ok(),
            message: "update successful".into(),
            reason: "update sucesful".into(),
            ..Event::default()
        };
        assert_eq!(
            String::from_utf8(json::to_vec(&event).unwrap()).unwrap(),
            r#"{"involvedObject":{},"severity":"info","timestamp":"2021-08-24T16:18:00Z","message":"update successful","reason":"update sucesful","reportingController":""}"#
        );
        assert_eq!(
            txn_id(&event).unwrap(),
            "37d91b4f6a1e44c6a38273b0a0fd408fade7b0f5"
        );
        // Flux's test event (the HMAC golden body), hashed independently with Python's hashlib.
        assert_eq!(
            txn_id(&herald_testkit_free_fixture()).unwrap(),
            "c93b00ed30c4305f7128cd98ef51762a150fa0ad"
        );
    }

    /// `testEvent()` of Flux's notifier tests (herald-testkit is not a dependency of unit tests).
    fn herald_testkit_free_fixture() -> Event {
        serde_json::from_str(r#"{"involvedObject":{"kind":"GitRepository","namespace":"gitops-system","name":"webapp"},"severity":"info","timestamp":"2022-09-30T06:40:29Z","message":"message","reason":"reason","metadata":{"test":"metadata"},"reportingController":"source-controller","reportingInstance":"source-controller-xyz"}"#).unwrap()
    }
}
