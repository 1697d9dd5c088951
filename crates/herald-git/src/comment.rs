//! The shape of a change-request comment forge ([`CommentForge`]) and the upsert loop the
//! three comment types share (contract section 7): one comment per object per Provider on the
//! pull or merge request the event's `change_request` metadata names, found again by a hidden
//! marker and edited in place.

use std::fmt;

use herald_core::text::{CHANGE_REQUEST_KEY, flux_status_markdown};
use herald_core::{BuildError, DeliveryError, Event, ProviderConfig, ProviderType};
use herald_http::provider::{Entry, Render, Setup};
use herald_http::{HttpClient, Request, Response};
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::delivery::{self, Deliver};
use crate::status::{refuse_unsupported, to_json};

/// How many comments are read: the first page of 100, oldest first, as Flux does (the comment
/// is usually written soon after the change request is opened).
pub(crate) const PAGE: u32 = 100;

/// One comment of a change request, as the forge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comment {
    pub(crate) id: u64,
    /// The author's login (GitHub, Gitea) or username (GitLab).
    pub(crate) author: String,
    pub(crate) body: String,
}

/// One change-request comment forge: its typed configuration, who its credentials act as,
/// and the list, edit and create requests. [`Commenting`] does the rest.
pub(crate) trait CommentForge: fmt::Debug + Send + Sync + Sized + 'static {
    /// `flux-pr-comment-key` or `flux-mr-comment-key`.
    const PREFIX: &'static str;
    /// Flux's words for a failed list, update and create.
    const LIST_FAILED: &'static str;
    const UPDATE_FAILED: &'static str;
    const CREATE_FAILED: &'static str;
    /// The Go function Flux parses the number with, as its error names it.
    const PARSER: &'static str = "strconv.Atoi";

    /// Validates the configuration once, when the notifier is built.
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError>;

    /// The login the forge shows as the author of comments written with these credentials.
    fn identity(
        &self,
        client: &HttpClient,
    ) -> impl Future<Output = Result<String, DeliveryError>> + Send;

    /// The request listing the first [`PAGE`] comments of change request `number`, oldest first.
    fn list(&self, number: i64) -> Request;

    /// The comments of the list's answer.
    fn comments(&self, answer: &[u8]) -> Result<Vec<Comment>, DeliveryError>;

    /// The request replacing the body of comment `id`.
    fn edit(&self, number: i64, id: u64, body: Vec<u8>) -> Request;

    /// The request adding a comment to change request `number`.
    fn create(&self, number: i64, body: Vec<u8>) -> Request;

    /// Sends one of the forge's requests (GitHub authorizes App requests here).
    fn send(
        &self,
        client: &HttpClient,
        request: Request,
    ) -> impl Future<Output = Result<Response, DeliveryError>> + Send {
        client.send(request)
    }

    /// A request as [`CommentForge::send`] would send it, for a preview, with nothing fetched
    /// (a GitHub App's `Authorization` shown masked); as it is by default.
    fn previewed(&self, request: Request) -> Request {
        request
    }
}

/// The body of every comment request: `{"body":"…"}`.
#[derive(Serialize)]
struct CommentBody<'a> {
    body: &'a str,
}

/// The change request an event names, as an integer; Flux's errors otherwise.
pub(crate) fn change_request(event: &Event, parser: &str) -> Result<i64, DeliveryError> {
    let value = event.metadata.get(CHANGE_REQUEST_KEY).ok_or_else(|| {
        DeliveryError::permanent(format!("missing {CHANGE_REQUEST_KEY:?} metadata key"))
    })?;
    value.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        DeliveryError::permanent(format!(
            "invalid {CHANGE_REQUEST_KEY:?} metadata value {value:?}: {parser}: parsing \
             {value:?}: {why}"
        ))
    })
}

/// The hidden marker that finds the comment again:
/// `<!-- <prefix>:<provider uid>/<Kind>/<namespace>/<name> -->`.
pub(crate) fn marker(prefix: &str, uid: &str, event: &Event) -> String {
    let o = &event.involved_object;
    format!(
        "<!-- {prefix}:{uid}/{}/{}/{} -->",
        o.kind, o.namespace, o.name
    )
}

/// A comment forge with the Provider UID its markers carry and the identity it reads once.
#[derive(Debug)]
pub(crate) struct Commenting<F> {
    forge: F,
    uid: String,
    identity: OnceCell<String>,
}

impl<F: CommentForge> Commenting<F> {
    /// The change request and the comment body (marker, blank line, Markdown post) for an
    /// event; pure.
    fn comment(&self, event: &Event) -> Result<(i64, String), DeliveryError> {
        let number = change_request(event, F::PARSER)?;
        let body = format!(
            "{}\n\n{}",
            marker(F::PREFIX, &self.uid, event),
            flux_status_markdown(event)
        );
        Ok((number, body))
    }
}

/// The Provider's `metadata.uid`, which Flux puts in every marker. Without it herald cannot
/// write the marker Flux writes (a comment left by Flux would not be found and edited), so the
/// Provider is refused rather than given an id of herald's own.
fn provider_uid(config: &ProviderConfig) -> Result<String, BuildError> {
    match config.uid.as_deref().map(str::trim) {
        Some(uid) if !uid.is_empty() => Ok(uid.to_owned()),
        _ => Err(BuildError::invalid(
            "metadata.uid",
            "provider UID cannot be empty: the comment types need the Provider's metadata.uid \
             (as `kubectl get provider -o yaml` exports it), which the hidden marker of every \
             comment carries so that the same comment is found and edited",
        )),
    }
}

impl<F: CommentForge> Deliver for Commenting<F> {
    const STEPS: &'static str = "reading the identity and the comments, and writing one";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let config = setup.config();
        refuse_unsupported(config)?;
        let uid = provider_uid(config)?;
        Ok(Commenting {
            forge: F::from_config(setup)?,
            uid,
            identity: OnceCell::new(),
        })
    }

    /// Who am I, the first page of comments, then edit ours or create it.
    async fn deliver(
        &self,
        client: &HttpClient,
        event: &Event,
        _alert: &serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let (number, text) = self.comment(event)?;
        let body = to_json(&CommentBody { body: &text })?;
        let me = self
            .identity
            .get_or_try_init(|| self.forge.identity(client))
            .await
            .map_err(|e| e.context("failed to get authenticated user info"))?;
        let listed = self
            .forge
            .send(client, self.forge.list(number))
            .await
            .and_then(|answer| self.forge.comments(&answer.body))
            .map_err(|e| e.context(F::LIST_FAILED))?;
        let marker = marker(F::PREFIX, &self.uid, event);
        let ours = listed
            .iter()
            .find(|c| c.author == *me && c.body.contains(&marker));
        let (request, failed) = match ours {
            Some(c) => (self.forge.edit(number, c.id, body), F::UPDATE_FAILED),
            None => (self.forge.create(number, body), F::CREATE_FAILED),
        };
        self.forge
            .send(client, request)
            .await
            .map_err(|e| e.context(failed))?;
        Ok(())
    }

    /// The comment's creation: neither the identity nor the comments are read, so the edit of
    /// an existing comment that the delivery may make instead is not shown.
    fn preview(
        &self,
        event: &Event,
        _alert: &serde_json::Value,
    ) -> Result<Vec<Request>, DeliveryError> {
        let (number, text) = self.comment(event)?;
        let body = to_json(&CommentBody { body: &text })?;
        Ok(vec![self.forge.previewed(self.forge.create(number, body))])
    }
}

impl<F: CommentForge> Render for Commenting<F> {
    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        let (_, text) = self.comment(event)?;
        to_json(&CommentBody { body: &text }).map(Some)
    }
}

fn renderer<F: CommentForge>(config: &ProviderConfig) -> Result<Box<dyn Render>, BuildError> {
    Ok(Box::new(Commenting::<F>::from_config(&mut Setup::new(
        config,
    ))?))
}

/// The table line of comment forge `F`.
pub(crate) const fn entry<F: CommentForge>(ty: ProviderType) -> Entry {
    Entry {
        ty,
        build: delivery::notifier::<Commenting<F>>,
        render: renderer::<F>,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn change_request_numbers_are_integers_as_go_parses_them() {
        let mut e = Event::default();
        assert_eq!(
            change_request(&e, "strconv.Atoi").unwrap_err().to_string(),
            "missing \"change_request\" metadata key"
        );
        for (value, want) in [("42", 42), ("+7", 7), ("-3", -3)] {
            e.metadata.insert("change_request".into(), value.into());
            assert_eq!(change_request(&e, "strconv.Atoi").unwrap(), want);
        }
        e.metadata.insert("change_request".into(), "#12".into());
        let err = change_request(&e, "strconv.Atoi").unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "invalid \"change_request\" metadata value \"#12\": strconv.Atoi: parsing \"#12\": invalid syntax"
        );
        e.metadata
            .insert("change_request".into(), "99999999999999999999".into());
        assert!(
            change_request(&e, "strconv.ParseInt")
                .unwrap_err()
                .to_string()
                .ends_with(
                    "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
                )
        );
    }

    #[test]
    fn markers_name_the_provider_and_the_object() {
        let e: Event = serde_json::from_str(
            r#"{"involvedObject":{"kind":"Kustomization","namespace":"apps","name":"web"}}"#,
        )
        .unwrap();
        assert_eq!(
            marker("flux-pr-comment-key", "0c9c2e41-d2f5", &e),
            "<!-- flux-pr-comment-key:0c9c2e41-d2f5/Kustomization/apps/web -->"
        );
    }
}
