//! The notifier every git type shares: a delivery of several requests (read what the forge
//! shows, then write), bounded as a whole by `spec.timeout`, with every secret the Provider
//! knows masked from its errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{
    BuildError, DeliveryError, Event, Masker, Notifier, NotifyFuture, Preview, ProviderConfig,
};
use herald_http::provider::{self, Setup};
use herald_http::{HttpClient, Request, RetryPolicy};

/// One git type's delivery of an event.
pub(crate) trait Deliver: fmt::Debug + Send + Sync + Sized + 'static {
    /// What one delivery does, for the timeout message ("reading the existing statuses and
    /// posting").
    const STEPS: &'static str;

    /// Validates the configuration once, when the notifier is built.
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError>;

    /// Delivers one event that `alert` matched (the Alert's manifest object; `null` when the
    /// event comes without one, as from `herald send`).
    fn deliver(
        &self,
        client: &HttpClient,
        event: &Event,
        alert: &serde_json::Value,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;

    /// The write [`Deliver::deliver`] would make for the event, without its lookups (nothing is
    /// fetched: the forge's current statuses or comments are not read, so the write is shown
    /// even when the forge already shows it); empty when the event posts nothing.
    fn preview(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<Request>, DeliveryError>;
}

/// A [`Deliver`] with its client, masker and time bound.
#[derive(Debug)]
struct DeliveryNotifier<D> {
    delivery: D,
    client: HttpClient,
    masker: Masker,
    /// `namespace/name` of the Provider, for messages.
    id: String,
    /// `spec.timeout`: bounds the whole delivery, retries included.
    timeout: Duration,
}

impl<D: Deliver> Notifier for DeliveryNotifier<D> {
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        // No Alert: `alert` is an empty map.
        self.post_for(event, &serde_json::Value::Null)
    }

    fn post_for<'a>(&'a self, event: &'a Event, alert: &'a serde_json::Value) -> NotifyFuture<'a> {
        Box::pin(async move {
            let delivery = self.delivery.deliver(&self.client, event, alert);
            let result = match tokio::time::timeout(self.timeout, delivery).await {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::transient(format!(
                    "provider {}: timed out after {:?} (spec.timeout bounds the whole delivery: \
                     {})",
                    self.id,
                    self.timeout,
                    D::STEPS
                ))),
            };
            result.map_err(|e| provider::mask(&self.masker, &e))
        })
    }

    fn preview(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<Preview>, DeliveryError> {
        let requests = self
            .delivery
            .preview(event, alert)
            .map_err(|e| provider::mask(&self.masker, &e))?;
        Ok(requests
            .iter()
            .map(|request| herald_http::preview::of(request, &self.masker))
            .collect())
    }
}

/// Builds the notifier of `D` for `config`.
pub(crate) fn notifier<D: Deliver>(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let mut setup = Setup::new(config);
    let delivery = D::from_config(&mut setup)?;
    let client = setup.client(retry)?;
    let mut masker = setup.masker().clone();
    masker.extend(client.masker());
    Ok(Arc::new(DeliveryNotifier {
        delivery,
        client,
        masker,
        id: config.id(),
        timeout: config.timeout,
    }))
}
