//! The shape of a commit-status forge ([`StatusForge`]) and the one delivery loop they share:
//! Flux's rules decide what the event posts, the forge's current status of the commit is read,
//! and the status is posted only when the forge does not already show it (contract sections
//! 6.1 and 6.2).

use std::fmt;

use herald_core::template::Templates;
use herald_core::{BuildError, DeliveryError, Event, ProviderConfig, Severity, text};
use herald_http::provider::{self, Entry, Render, Setup};
use herald_http::{HttpClient, Request, Response};

use crate::common::{commit_sha, revision, status_id, status_provider_part};
use crate::delivery::{self, Deliver};
use crate::status_expr::StatusExpr;

/// The reason of events that only say "work in progress".
const PROGRESSING: &str = "Progressing";

/// What a status says about the commit, before the forge's spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    Pending,
}

/// One commit status to set, for one event.
#[derive(Debug)]
pub(crate) struct Status<'e> {
    /// The event the status is about.
    pub(crate) event: &'e Event,
    /// The 40-hex commit SHA.
    pub(crate) sha: &'e str,
    /// The status id (see [`status_id`]).
    pub(crate) id: String,
    /// `desc(reason)`: `reconciliation succeeded`.
    pub(crate) description: String,
    /// The state in the forge's spelling.
    pub(crate) state: &'static str,
}

/// One commit-status forge: its typed configuration, the body of a status (pure), the lookup
/// of what the commit shows, its comparison, and the post. [`StatusNotifier`] does the rest.
pub(crate) trait StatusForge: fmt::Debug + Send + Sync + Sized + 'static {
    /// The forge in Flux's "can't convert to <forge> state" error.
    const NAME: &'static str;
    /// Flux's words for a failed lookup.
    const LOOKUP_FAILED: &'static str;
    /// Flux's words for a failed post.
    const POST_FAILED: &'static str;
    /// Whether `Progressing` events post a pending status (Gitea) instead of nothing.
    const PENDING_ON_PROGRESSING: bool = false;
    /// Whether a `404` from the lookup means the commit has no status of this id yet
    /// (Bitbucket looks a status up by its key).
    const NOT_FOUND_IS_NONE: bool = false;

    /// Validates the configuration once, when the notifier is built.
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError>;

    /// The forge's spelling of an outcome; GitHub's and Gitea's by default.
    fn state(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Pending => "pending",
        }
    }

    /// The body of the status post.
    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError>;

    /// The request that reads what the commit shows.
    fn lookup(&self, status: &Status<'_>) -> Request;

    /// Whether the lookup's answer already shows `status`.
    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError>;

    /// The request that sets the status.
    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request;

    /// Sends one of the forge's requests; a forge whose credentials change (a GitHub App's
    /// installation tokens) authorizes it here.
    fn send(
        &self,
        client: &HttpClient,
        request: Request,
    ) -> impl Future<Output = Result<Response, DeliveryError>> + Send {
        client.send(request)
    }

    /// A request as [`StatusForge::send`] would send it, for a preview, with nothing fetched
    /// (a GitHub App's `Authorization` shown masked); as it is by default.
    fn previewed(&self, request: Request) -> Request {
        request
    }
}

/// The JSON of a status body, as Go's `encoding/json` writes it.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, DeliveryError> {
    herald_core::json::to_vec(value).map_err(|e| provider::encode_error(&e))
}

/// What herald refuses for every git type: settings it cannot honour outside a cluster.
pub(crate) fn refuse_unsupported(config: &ProviderConfig) -> Result<(), BuildError> {
    if config.service_account_name.is_some() {
        return Err(BuildError::invalid(
            "spec.serviceAccountName",
            "workload identity is not supported by herald's git providers; use a token in the \
             Secret",
        ));
    }
    Ok(())
}

/// A forge with the Provider it was configured for.
#[derive(Debug)]
struct Configured<F> {
    forge: F,
    /// The last part of the default status id ([`status_provider_part`]).
    provider_part: String,
    /// `spec.commitStatusExpr`, compiled, and the Provider's object it reads.
    expr: Option<(StatusExpr, serde_json::Value)>,
    /// The Provider's name, for Flux's message about an empty id.
    name: String,
    /// The message templates of the Provider and its Alerts: each renders the description.
    templates: Templates,
}

impl<F: StatusForge> Deliver for Configured<F> {
    const STEPS: &'static str = "reading the existing statuses and posting";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let config = setup.config();
        refuse_unsupported(config)?;
        let provider_part = status_provider_part(config);
        let expr = match config.commit_status_expr.as_deref() {
            // As in Flux, an empty expression is no expression.
            None | Some("") => None,
            Some(source) => {
                let compiled = StatusExpr::compile(source)
                    .map_err(|e| BuildError::invalid("spec.commitStatusExpr", e))?;
                Some((compiled, config.object.clone()))
            }
        };
        Ok(Configured {
            forge: F::from_config(setup)?,
            provider_part,
            expr,
            name: config.name.clone(),
            templates: config.templates.clone(),
        })
    }

    /// Lookup, compare, post: the loop every forge shares.
    async fn deliver(
        &self,
        client: &HttpClient,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<(), DeliveryError> {
        let Some(status) = self.status(event, alert)? else {
            return Ok(());
        };
        let body = self.forge.render(&status)?;
        let shown = match self.forge.send(client, self.forge.lookup(&status)).await {
            Ok(answer) => self.forge.shows(&status, &answer.body),
            // No status with this id yet.
            Err(e) if F::NOT_FOUND_IS_NONE && e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        };
        if shown.map_err(|e| e.context(F::LOOKUP_FAILED))? {
            return Ok(());
        }
        self.forge
            .send(client, self.forge.post(&status, body))
            .await
            .map_err(|e| e.context(F::POST_FAILED))?;
        Ok(())
    }

    /// The status post alone: the lookup is not made, so it is shown even when the commit
    /// already shows this status (which the delivery would skip).
    fn preview(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<Request>, DeliveryError> {
        let Some(status) = self.status(event, alert)? else {
            return Ok(Vec::new());
        };
        let body = self.forge.render(&status)?;
        Ok(vec![self.forge.previewed(self.forge.post(&status, body))])
    }
}

impl<F: StatusForge> Configured<F> {
    /// The status id of `event`, matched by the Alert `alert`: `spec.commitStatusExpr`'s
    /// result, else [`status_id`]. Like Flux, it is made before anything else is looked at.
    fn id(&self, event: &Event, alert: &serde_json::Value) -> Result<String, DeliveryError> {
        match &self.expr {
            None => Ok(status_id(event, &self.provider_part)),
            Some((expr, provider)) => match expr.evaluate(event, alert, provider) {
                Ok(id) if id.is_empty() => Err(DeliveryError::permanent(format!(
                    "failed to initialize notifier for provider '{}': failed to initialize \
                     notifier: commit status cannot be empty",
                    self.name
                ))),
                Ok(id) => Ok(id),
                Err(e) => Err(DeliveryError::permanent(format!(
                    "failed to create commit status: failed to evaluate the \
                     spec.commitStatusExpr CEL expression for the event: {e}"
                ))),
            },
        }
    }

    /// Flux's commit-status rules for one event: `Ok(None)` when the event posts nothing
    /// (reason `Progressing`, unless the forge posts `pending` for it), an error when the
    /// status id cannot be made, the revision is missing or malformed or the severity is
    /// neither `info` nor `error`.
    fn status<'e>(
        &self,
        event: &'e Event,
        alert: &serde_json::Value,
    ) -> Result<Option<Status<'e>>, DeliveryError> {
        let id = self.id(event, alert)?;
        let progressing = event.reason == PROGRESSING;
        if progressing && !F::PENDING_ON_PROGRESSING {
            return Ok(None);
        }
        let revision = revision(event).ok_or_else(|| {
            DeliveryError::permanent(
                "missing revision metadata: the event has none of the metadata keys commit, \
                 originRevision, revision",
            )
        })?;
        let sha = commit_sha(revision).map_err(DeliveryError::permanent)?;
        let outcome = match (&event.severity, progressing) {
            (_, true) => Outcome::Pending,
            (Severity::Info, false) => Outcome::Success,
            (Severity::Error, false) => Outcome::Failure,
            (other, false) => {
                return Err(DeliveryError::permanent(format!(
                    "can't convert to {} state: severity {:?} is neither info nor error",
                    F::NAME,
                    other.as_str()
                )));
            }
        };
        Ok(Some(Status {
            event,
            sha,
            id,
            description: match self.templates.for_alert(alert) {
                Some(template) => template.render(event, alert)?,
                None => text::reason_words(&event.reason),
            },
            state: F::state(outcome),
        }))
    }
}

impl<F: StatusForge> Render for Configured<F> {
    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        // No Alert: `alert` is an empty map.
        match self.status(event, &serde_json::Value::Null)? {
            Some(status) => self.forge.render(&status).map(Some),
            None => Ok(None),
        }
    }
}

fn renderer<F: StatusForge>(config: &ProviderConfig) -> Result<Box<dyn Render>, BuildError> {
    Ok(Box::new(Configured::<F>::from_config(&mut Setup::new(
        config,
    ))?))
}

/// The table line of commit-status forge `F`.
pub(crate) const fn entry<F: StatusForge>(ty: herald_core::ProviderType) -> Entry {
    Entry {
        ty,
        build: delivery::notifier::<Configured<F>>,
        render: renderer::<F>,
    }
}
