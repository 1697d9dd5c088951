//! `opsgenie`: one alert per event, POSTed to the Opsgenie Alert API with `GenieKey` auth.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use herald_core::{BuildError, DeliveryError, Event, ProviderConfig, json};
use herald_http::Request;
use herald_http::provider::{self, HttpProvider, JsonPost, Setup, TOKEN_FIELD};

/// A validated `opsgenie` Provider. The Secret's `token` (the API key) is required.
#[derive(Debug)]
pub(crate) struct Opsgenie {
    post: JsonPost,
    provider_id: String,
}

impl HttpProvider for Opsgenie {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("Opsgenie URL")?;
        let token = setup.require_token(
            "the Opsgenie API key is empty (set `token` in the Secret named by spec.secretRef)",
        )?;
        let authorization = setup.header(&format!("GenieKey {}", token.expose()), TOKEN_FIELD)?;
        Ok(Opsgenie {
            post: JsonPost::new(endpoint.url(), Some(authorization)),
            provider_id: provider_id(setup.config()),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event, &self.provider_id))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

/// The stable provider id that stands in for Flux's Provider UID in the alias:
/// `<namespace>/<name>` of the Provider. herald has no Kubernetes UID; the namespace and
/// name identify a Provider just as well and survive restarts and re-applies.
pub fn provider_id(config: &ProviderConfig) -> String {
    config.id()
}

#[derive(Serialize)]
struct Alert<'a> {
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    alias: String,
    description: &'a str,
    details: BTreeMap<&'a str, &'a str>,
}

/// The request body: `{"message":"<Kind>/<name>","alias":…,"description":"<message>",
/// "details":{<metadata>…,"severity":"<severity>"}}` (`severity` overrides a metadata key of
/// the same name).
pub fn render(event: &Event, provider_id: &str) -> Result<Vec<u8>, serde_json::Error> {
    let o = &event.involved_object;
    let mut details: BTreeMap<&str, &str> = event
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    details.insert("severity", event.severity.as_str());
    json::to_vec(&Alert {
        message: format!("{}/{}", o.kind, o.name),
        alias: alias(provider_id, event),
        description: &event.message,
        details,
    })
}

/// Opsgenie's de-duplication key, as newer Flux computes it: the lower-case hex SHA-256 of
/// `<provider id>/<Kind>/<namespace>/<name>/<reason>` (64 characters). Repeats of the same
/// reason for the same object through the same Provider update one open alert instead of
/// opening new ones.
pub fn alias(provider_id: &str, event: &Event) -> String {
    let o = &event.involved_object;
    let key = format!(
        "{provider_id}/{}/{}/{}/{}",
        o.kind, o.namespace, o.name, event.reason
    );
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ObjectReference;

    fn event() -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "GitRepository".into(),
                namespace: "gitops-system".into(),
                name: "webapp".into(),
                ..Default::default()
            },
            reason: "reason".into(),
            ..Default::default()
        }
    }

    #[test]
    fn alias_is_the_sha256_of_the_flux_key() {
        // Flux's own vector (compatibility contract section 8.3): the key with UID
        // `test-provider-uid-123`. The digest is checked with an independent implementation.
        let got = alias("test-provider-uid-123", &event());
        let want = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(
                    b"test-provider-uid-123/GitRepository/gitops-system/webapp/reason",
                )?;
                child.wait_with_output()
            })
            .unwrap();
        let want = String::from_utf8(want.stdout).unwrap();
        assert_eq!(got.len(), 64);
        assert_eq!(got, want.split_whitespace().next().unwrap());
        assert_eq!(alias("test-provider-uid-123", &event()), got, "stable");
        let mut other = event();
        other.reason = "other".into();
        assert_ne!(alias("test-provider-uid-123", &other), got);
    }

    #[test]
    fn severity_overrides_metadata() {
        let mut e = event();
        e.metadata.insert("severity".into(), "spoofed".into());
        e.severity = herald_core::Severity::Error;
        let body: serde_json::Value = serde_json::from_slice(&render(&e, "ns/p").unwrap()).unwrap();
        assert_eq!(body["details"]["severity"], "error");
        assert_eq!(body["message"], "GitRepository/webapp");
    }
}
