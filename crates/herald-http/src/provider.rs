//! The shape every HTTP provider has, and what they share.
//!
//! A provider is one module with four parts: a typed configuration built from the
//! [`ProviderConfig`] ([`HttpProvider::from_config`], through a [`Setup`] that parses the
//! endpoint, reads the credentials and learns every secret it derives), a pure render from
//! event to body ([`HttpProvider::render`]), the request that carries the body
//! ([`HttpProvider::request`]) and the check of a `2xx` answer ([`HttpProvider::check`]).
//! [`notifier`] does the rest (HTTP client, masking, error context), and a family lists its
//! providers in a [`Table`], one [`entry`] per type.
//!
//! Credentials follow one rule. A `token` loses its surrounding whitespace. Flux sends tokens in
//! headers, and Go trims the spaces and tabs around a header value when it writes it, so for
//! every token Flux can deliver with, the trimmed token is exactly what its requests carry; a
//! trailing line break (the usual `echo` mistake) makes Go refuse the header ("invalid header
//! field value"), so Flux fails every delivery where herald delivers. A `username` and
//! `password` are used exactly as stored, as Flux does (they travel base64-encoded, untouched
//! by Go). Key material is not a credential here: `generic-hmac` signs with the raw `token`,
//! as Flux does.

use std::fmt;
use std::sync::Arc;

use herald_core::template::{MessageTemplate, Templates};
use herald_core::{
    BuildError, DeliveryError, Event, Family, Masker, Notifier, NotifyFuture, Preview,
    ProviderConfig, ProviderType, Registry, SecretString, TlsMaterial,
};
use http::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

pub use crate::endpoint::{Endpoint, path_segment};
use crate::{HttpClient, Request, Response, RetryPolicy};

/// One HTTP provider type: its typed configuration and the four steps of a delivery.
pub trait HttpProvider: fmt::Debug + Send + Sync + Sized + 'static {
    /// Words put before a failed send, where Flux has them (`could not send github repository
    /// dispatch webhook`).
    const SEND_FAILED: Option<&'static str> = None;

    /// Validates the configuration once, when the notifier is built.
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError>;

    /// The body for `event`, a pure function of the event and the configuration; `None` when
    /// the event sends nothing (Sentry's `trace` events).
    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError>;

    /// The body for `event` that `alert` matched: the Alert's manifest object as written
    /// ([`Notifier::post_for`]; `null` when the caller has none). [`HttpProvider::render`] by
    /// default; a provider whose payload names the Alert (`otel`'s trace) reads it here.
    fn render_for(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        let _ = alert;
        self.render(event)
    }

    /// The body when a message template (`herald_core::template`) rendered `text` for `event`.
    /// By default the text takes the place of the event's message in the service's usual body
    /// (card, attachment, colours and fields stay); a type whose template sets more (the whole
    /// body, say) overrides this.
    fn render_templated(
        &self,
        event: &Event,
        text: String,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        let templated = Event {
            message: text,
            ..event.clone()
        };
        self.render(&templated)
    }

    /// The request that carries `body`: method, URL and headers.
    fn request(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError>;

    /// Checks a `2xx` answer (Slack's `ok:false`); the default accepts every one.
    fn check(&self, _response: &Response) -> Result<(), DeliveryError> {
        Ok(())
    }

    /// The further requests of a delivery that takes more than one (PagerDuty's change event
    /// after the event of an `info`), in order; none by default. They are prepared with the
    /// first, before anything is sent, and each is sent once the one before it succeeded and
    /// passed [`HttpProvider::check`].
    fn follow_ups(&self, _event: &Event) -> Result<Vec<FollowUp>, DeliveryError> {
        Ok(Vec::new())
    }
}

/// A further request of one delivery ([`HttpProvider::follow_ups`]).
#[derive(Debug)]
pub struct FollowUp {
    /// The request.
    pub request: Request,
    /// Words put before its failure, as [`HttpProvider::SEND_FAILED`] for the first request.
    pub send_failed: Option<&'static str>,
}

/// What [`HttpProvider::from_config`] works with: the configuration, and the masker that
/// every secret the provider derives from it is added to.
#[derive(Debug)]
pub struct Setup<'a> {
    config: &'a ProviderConfig,
    masker: Masker,
    system_roots: bool,
}

/// A credential a provider may authorize with, in [`Setup::authorization`]'s order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Basic` from the Secret's `username` and `password`, when both are set.
    Basic,
    /// `Bearer <token>`, when the Secret has a token.
    Bearer,
    /// `Basic` from the address's `user:password@` (what Go's client does when nothing else is
    /// set).
    Userinfo,
}

impl<'a> Setup<'a> {
    /// A setup whose masker knows every secret of `config`.
    pub fn new(config: &'a ProviderConfig) -> Self {
        Setup {
            config,
            masker: config.masker(),
            system_roots: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &'a ProviderConfig {
        self.config
    }

    /// Where the address came from, for messages (never echoed: webhook URLs carry tokens).
    pub fn address_field(&self) -> &'static str {
        address_field(self.config)
    }

    /// The Provider's address as an [`Endpoint`]; `what` names it in messages ("Slack URL").
    /// The userinfo password and the `Basic` value made from it are masked from now on.
    pub fn endpoint(&mut self, what: &str) -> Result<Endpoint, BuildError> {
        let endpoint = Endpoint::parse(self.config.address.expose(), self.address_field(), what)?;
        if let Some(password) = endpoint.password() {
            self.secret(password.expose());
        }
        if let Some(basic) = endpoint.basic().and_then(|v| v.to_str().ok()) {
            self.secret(basic);
        }
        Ok(endpoint)
    }

    /// The Secret's `token` without surrounding whitespace, or `None` when that leaves nothing.
    pub fn token(&self) -> Option<SecretString> {
        trimmed(self.config.token.as_ref())
    }

    /// The token, or else the Secret's `password` (Flux's fallback for the git forges),
    /// trimmed as a token.
    pub fn token_or_password(&self) -> Option<SecretString> {
        self.token()
            .or_else(|| trimmed(self.config.password.as_ref()))
    }

    /// [`Setup::token`], or else the error `secret key "token": <why>`.
    pub fn require_token(&self, why: &str) -> Result<SecretString, BuildError> {
        self.token()
            .ok_or_else(|| BuildError::invalid(TOKEN_FIELD, why))
    }

    /// [`Setup::token_or_password`], or else the error `secret key "token": <why>`.
    pub fn require_token_or_password(&self, why: &str) -> Result<SecretString, BuildError> {
        self.token_or_password()
            .ok_or_else(|| BuildError::invalid(TOKEN_FIELD, why))
    }

    /// The `username` and `password`, as stored, when both are set.
    pub fn user_password(&self) -> Option<(&'a str, &'a SecretString)> {
        match &self.config.password {
            Some(password) if !self.config.username.is_empty() && !password.is_empty() => {
                Some((self.config.username.as_str(), password))
            }
            _ => None,
        }
    }

    /// Masks a secret the provider derived (a key, a `user:password` part), as written and as
    /// it appears in a URL path.
    pub fn secret(&mut self, value: &str) {
        self.masker.add(value);
        self.masker.add(&path_segment(value));
    }

    /// A sensitive header value made from a secret, masked from now on; `field` names the
    /// setting when it cannot be a header value.
    pub fn header(&mut self, value: &str, field: &str) -> Result<HeaderValue, BuildError> {
        let header = sensitive(value, field)?;
        self.secret(value);
        Ok(header)
    }

    /// `Bearer <token>`, or `Bearer` alone without a token (what Go puts on the wire for
    /// `"Bearer " + ""`).
    pub fn bearer(&mut self, token: Option<&SecretString>) -> Result<HeaderValue, BuildError> {
        match token {
            Some(t) => self.header(&format!("Bearer {}", t.expose()), TOKEN_FIELD),
            None => Ok(HeaderValue::from_static("Bearer")),
        }
    }

    /// `Basic base64(<user>:<password>)`.
    pub fn basic(
        &mut self,
        user: &str,
        password: &str,
        field: &str,
    ) -> Result<HeaderValue, BuildError> {
        self.header(&crate::endpoint::basic_value(user, password), field)
    }

    /// The first of `order` that the configuration has, as an `Authorization` value.
    pub fn authorization(
        &mut self,
        endpoint: &Endpoint,
        order: &[Credential],
    ) -> Result<Option<HeaderValue>, BuildError> {
        for credential in order {
            match credential {
                Credential::Basic => {
                    if let Some((user, password)) = self.user_password() {
                        return self.basic(user, password.expose(), TOKEN_FIELD).map(Some);
                    }
                }
                Credential::Bearer => {
                    if let Some(token) = self.token() {
                        return self.bearer(Some(&token)).map(Some);
                    }
                }
                Credential::Userinfo => {
                    if let Some(basic) = endpoint.basic() {
                        return Ok(Some(basic.clone()));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Verifies servers against the system roots even when the Provider has a custom CA (as
    /// Flux does for github.com: custom TLS material is for GitHub Enterprise).
    pub fn use_system_roots(&mut self) {
        self.system_roots = true;
    }

    /// Everything the provider has made secret so far.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// The provider's HTTP client (timeout, proxy, TLS), with `retry` or Flux's policy.
    pub fn client(&self, retry: Option<RetryPolicy>) -> Result<HttpClient, BuildError> {
        let client = if self.system_roots && !self.config.tls.is_empty() {
            let mut public = self.config.clone();
            public.tls = TlsMaterial::default();
            HttpClient::from_config(&public)?
        } else {
            HttpClient::from_config(self.config)?
        };
        Ok(client.with_retry_policy(retry.unwrap_or_default()))
    }
}

/// The field of the Secret's token, for messages.
pub const TOKEN_FIELD: &str = "secret key \"token\"";

/// Where the address of `config` came from, for messages.
pub fn address_field(config: &ProviderConfig) -> &'static str {
    if config.address_from_secret {
        "secret key \"address\""
    } else {
        "spec.address"
    }
}

fn trimmed(value: Option<&SecretString>) -> Option<SecretString> {
    value
        .map(|t| t.expose().trim())
        .filter(|t| !t.is_empty())
        .map(SecretString::new)
}

/// A header value marked sensitive; `field` names the setting when it cannot be one. The
/// error never shows the value.
pub fn sensitive(value: &str, field: &str) -> Result<HeaderValue, BuildError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        BuildError::invalid(
            field,
            "contains characters that are not allowed in an HTTP header (a line break or another \
             control character)",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The `authorization` header name.
pub const AUTHORIZATION: HeaderName = http::header::AUTHORIZATION;

/// A JSON `POST` to one URL with an optional `Authorization`: what most providers send.
#[derive(Clone, Debug)]
pub struct JsonPost {
    url: SecretString,
    authorization: Option<HeaderValue>,
}

impl JsonPost {
    /// A post to the Provider's address (`what` names it in messages), authorized with the
    /// first of `order` the configuration has.
    pub fn from_setup(
        setup: &mut Setup<'_>,
        what: &str,
        order: &[Credential],
    ) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint(what)?;
        let authorization = setup.authorization(&endpoint, order)?;
        Ok(JsonPost::new(endpoint.url(), authorization))
    }

    /// A post to `url` (kept secret: webhook URLs carry tokens).
    pub fn new(url: impl Into<String>, authorization: Option<HeaderValue>) -> Self {
        JsonPost {
            url: SecretString::new(url),
            authorization,
        }
    }

    /// The request for `body`.
    pub fn request(&self, body: Vec<u8>) -> Request {
        let request = Request::post_json(self.url.expose(), body);
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }
}

/// A body that could not be encoded (cannot happen for string-only payloads, but is never a
/// panic).
pub fn encode_error(err: &dyn fmt::Display) -> DeliveryError {
    DeliveryError::permanent(format!("cannot encode the request body: {err}"))
}

/// A render function's result as [`HttpProvider::render`] returns it.
pub fn rendered<E: fmt::Display>(
    body: Result<Vec<u8>, E>,
) -> Result<Option<Vec<u8>>, DeliveryError> {
    body.map(Some).map_err(|e| encode_error(&e))
}

/// Decodes a service's JSON answer; the error says the answer is not what the API documents.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, DeliveryError> {
    serde_json::from_slice(body).map_err(|e| {
        DeliveryError::permanent(format!(
            "the answer is not the JSON the service's API documents: {e}"
        ))
    })
}

/// The error with every value `masker` knows masked, keeping its classification and status.
pub fn mask(masker: &Masker, err: &DeliveryError) -> DeliveryError {
    let message = masker.mask(err.message());
    let masked = if err.is_retryable() {
        DeliveryError::transient(message)
    } else {
        DeliveryError::permanent(message)
    };
    match err.status() {
        Some(status) => masked.with_status(status),
        None => masked,
    }
}

/// An [`HttpProvider`] with its HTTP client and masker: the notifier of every HTTP provider.
struct HttpNotifier<P> {
    provider: P,
    client: HttpClient,
    masker: Masker,
    id: String,
    /// The message templates of the Provider and its Alerts (compiled at load).
    templates: Templates,
}

impl<P: HttpProvider> fmt::Debug for HttpNotifier<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpNotifier")
            .field("provider", &self.id)
            .field("config", &self.provider)
            .field("client", &self.client)
            .finish()
    }
}

impl<P: HttpProvider> HttpNotifier<P> {
    /// The body for `event`: the template's, when the Provider or the Alert (`alert`, its
    /// manifest object or `null`) has one; else the provider's own render for that Alert.
    fn body(
        &self,
        event: &Event,
        template: Option<&MessageTemplate>,
        alert: &serde_json::Value,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        match template {
            Some(t) => {
                let text = t.render(event, alert)?;
                self.provider.render_templated(event, text)
            }
            None => self.provider.render_for(event, alert),
        }
    }

    /// Every request of one delivery, in order, prepared before anything is sent: the body
    /// (templated or not), the request, the follow-ups, for the Alert that matched (`null` when
    /// there is none). Empty when the event sends nothing. Delivery and preview both start
    /// here, so a preview shows what a delivery sends.
    fn prepare(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<FollowUp>, DeliveryError> {
        let template = self.templates.for_alert(alert);
        let prepared = self.body(event, template, alert).and_then(|body| {
            let Some(body) = body else {
                return Ok(Vec::new());
            };
            let mut request = self.provider.request(event, body)?;
            if let Some(content_type) = template.and_then(MessageTemplate::content_type) {
                set_content_type(&mut request, content_type)?;
            }
            let first = FollowUp {
                request,
                send_failed: P::SEND_FAILED,
            };
            let mut all = vec![first];
            all.extend(self.provider.follow_ups(event)?);
            Ok(all)
        });
        prepared.map_err(|e| e.context(format!("provider {}", self.id)))
    }

    async fn deliver(&self, event: &Event, alert: &serde_json::Value) -> Result<(), DeliveryError> {
        for step in self.prepare(event, alert)? {
            self.send(step.request, step.send_failed).await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        request: Request,
        send_failed: Option<&'static str>,
    ) -> Result<(), DeliveryError> {
        let response = self
            .client
            .send_ref(&request)
            .await
            .map_err(|e| match send_failed {
                Some(context) => e.context(context),
                None => e,
            })?;
        // The context is built only for a refusal: a delivery that succeeds pays nothing.
        self.provider.check(&response).map_err(|e| {
            e.context(format!(
                "provider {}: {} {}",
                self.id,
                request.method,
                crate::redact_url(&request.url)
            ))
        })
    }
}

/// Replaces the `Content-Type` of `request` (in its place) with a template's.
fn set_content_type(request: &mut Request, content_type: &str) -> Result<(), DeliveryError> {
    let value = HeaderValue::from_str(content_type).map_err(|_| {
        DeliveryError::permanent("the template's content type is not a valid HTTP header value")
    })?;
    match request
        .headers
        .iter_mut()
        .find(|(n, _)| *n == http::header::CONTENT_TYPE)
    {
        Some((_, v)) => *v = value,
        None => request.headers.push((http::header::CONTENT_TYPE, value)),
    }
    Ok(())
}

impl<P: HttpProvider> Notifier for HttpNotifier<P> {
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        self.post_for(event, &serde_json::Value::Null)
    }

    fn post_for<'a>(&'a self, event: &'a Event, alert: &'a serde_json::Value) -> NotifyFuture<'a> {
        Box::pin(async move {
            self.deliver(event, alert)
                .await
                .map_err(|e| mask(&self.masker, &e))
        })
    }

    fn preview(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<Preview>, DeliveryError> {
        let steps = self
            .prepare(event, alert)
            .map_err(|e| mask(&self.masker, &e))?;
        Ok(steps
            .iter()
            .map(|step| crate::preview::of(&step.request, &self.masker))
            .collect())
    }
}

/// Builds the notifier of provider `P` for `config`.
pub fn notifier<P: HttpProvider>(
    config: &ProviderConfig,
    retry: Option<RetryPolicy>,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let mut setup = Setup::new(config);
    let provider = P::from_config(&mut setup)?;
    let client = setup.client(retry)?;
    let mut masker = setup.masker;
    masker.extend(client.masker());
    Ok(Arc::new(HttpNotifier {
        provider,
        client,
        masker,
        id: config.id(),
        templates: config.templates.clone(),
    }))
}

/// What a provider would send for an event, without any I/O (benchmarks, tests, dry runs).
pub trait Render: fmt::Debug + Send + Sync {
    /// The body for `event`, or `None` when the event sends nothing. Errors are those a
    /// delivery would return before any request.
    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError>;
}

#[derive(Debug)]
struct Rendering<P>(P);

impl<P: HttpProvider> Render for Rendering<P> {
    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        self.0.render(event)
    }
}

/// The renderer of provider `P`, validating `config` as [`notifier`] does (minus the client).
pub fn renderer<P: HttpProvider>(config: &ProviderConfig) -> Result<Box<dyn Render>, BuildError> {
    Ok(Box::new(Rendering(P::from_config(&mut Setup::new(
        config,
    ))?)))
}

/// Builds a notifier, with a retry policy other than Flux's if given.
pub type BuildFn =
    fn(&ProviderConfig, Option<RetryPolicy>) -> Result<Arc<dyn Notifier>, BuildError>;

/// Builds a renderer.
pub type RenderFn = fn(&ProviderConfig) -> Result<Box<dyn Render>, BuildError>;

/// One line of a family's [`Table`]: a type and how it is built.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The type.
    pub ty: ProviderType,
    /// Its notifier.
    pub build: BuildFn,
    /// Its renderer.
    pub render: RenderFn,
}

/// The table line of HTTP provider `P`.
pub const fn entry<P: HttpProvider>(ty: ProviderType) -> Entry {
    Entry {
        ty,
        build: notifier::<P>,
        render: renderer::<P>,
    }
}

/// A family's providers: one [`Entry`] per type.
#[derive(Debug)]
pub struct Table<const N: usize> {
    family: Family,
    entries: [Entry; N],
}

impl<const N: usize> Table<N> {
    /// The table of `family`.
    pub const fn new(family: Family, entries: [Entry; N]) -> Self {
        Table { family, entries }
    }

    /// How many types the table has.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the table has no type.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// The types, in table order.
    pub const fn types(&self) -> [ProviderType; N] {
        let mut out = [ProviderType::Generic; N];
        let mut i = 0;
        while i < N {
            out[i] = self.entries[i].ty;
            i += 1;
        }
        out
    }

    /// Registers the family, and `factory` for every type of the table.
    pub fn register(&self, registry: &mut Registry, factory: herald_core::Factory) {
        registry.add_family(self.family);
        for entry in &self.entries {
            registry.register(entry.ty, factory);
        }
    }

    /// Builds the notifier of `config`'s type.
    pub fn build(
        &self,
        config: &ProviderConfig,
        retry: Option<RetryPolicy>,
    ) -> Result<Arc<dyn Notifier>, BuildError> {
        (self.entry(config.provider_type)?.build)(config, retry)
    }

    /// Builds the renderer of `config`'s type.
    pub fn renderer(&self, config: &ProviderConfig) -> Result<Box<dyn Render>, BuildError> {
        (self.entry(config.provider_type)?.render)(config)
    }

    fn entry(&self, ty: ProviderType) -> Result<&Entry, BuildError> {
        if let Some(entry) = self.entries.iter().find(|e| e.ty == ty) {
            return Ok(entry);
        }
        let family = self.family;
        Err(if ty.family() == family {
            BuildError::NotImplemented { ty, family }
        } else {
            let article = if family.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            BuildError::invalid(
                "spec.type",
                format!("`{ty}` is not {article} {family} provider type"),
            )
        })
    }
}

/// The public API of a family crate over its `const` [`Table`]: `TYPES`, `register`, `build`
/// and `build_with_retry_policy`. The crate names `herald_core` among its dependencies.
///
/// ```text
/// const PROVIDERS: Table<1> = Table::new(Family::Chat, [entry::<Slack>(ProviderType::Slack)]);
/// herald_http::family_api!(PROVIDERS);
/// ```
#[macro_export]
macro_rules! family_api {
    ($table:ident) => {
        /// The provider types this crate implements, in table order.
        pub const TYPES: [::herald_core::ProviderType; $table.len()] = $table.types();

        /// Registers this family and every type of [`TYPES`].
        pub fn register(registry: &mut ::herald_core::Registry) {
            $table.register(registry, build);
        }

        /// Builds the notifier of a Provider of one of [`TYPES`], validating its
        /// configuration once.
        pub fn build(
            config: &::herald_core::ProviderConfig,
        ) -> ::std::result::Result<
            ::std::sync::Arc<dyn ::herald_core::Notifier>,
            ::herald_core::BuildError,
        > {
            $table.build(config, None)
        }

        /// [`build`] with a retry policy other than Flux's (2 s doubling, 4 retries): tests,
        /// impatient callers.
        pub fn build_with_retry_policy(
            config: &::herald_core::ProviderConfig,
            retry: $crate::RetryPolicy,
        ) -> ::std::result::Result<
            ::std::sync::Arc<dyn ::herald_core::Notifier>,
            ::herald_core::BuildError,
        > {
            $table.build(config, Some(retry))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(address: &str) -> ProviderConfig {
        ProviderConfig::new(ProviderType::Slack, "ns", "p", address)
    }

    #[test]
    fn tokens_are_trimmed_and_passwords_kept() {
        let mut c = cfg("http://h/");
        assert!(Setup::new(&c).token().is_none());
        c.token = Some(SecretString::new(" \n"));
        assert!(Setup::new(&c).token().is_none());
        c.password = Some(SecretString::new(" pass\n"));
        assert_eq!(Setup::new(&c).token_or_password().unwrap().expose(), "pass");
        c.token = Some(SecretString::new("xoxb-1\n"));
        assert_eq!(Setup::new(&c).token().unwrap().expose(), "xoxb-1");
        assert!(Setup::new(&c).user_password().is_none());
        c.username = "u".into();
        let setup = Setup::new(&c);
        let (user, password) = setup.user_password().unwrap();
        assert_eq!((user, password.expose()), ("u", " pass\n"));
    }

    #[test]
    fn headers_are_checked_masked_and_never_echoed() {
        let c = cfg("http://h/");
        let mut setup = Setup::new(&c);
        assert_eq!(setup.bearer(None).unwrap(), "Bearer");
        let err = setup
            .bearer(Some(&SecretString::new("a\u{1}b-secret")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("secret key \"token\": "), "{err}");
        assert!(!err.contains("b-secret"), "{err}");
        let value = setup.basic("user", "password", "f").unwrap();
        assert!(value.is_sensitive());
        setup.secret("123:bot/token");
        assert_eq!(
            setup
                .masker()
                .mask("Basic dXNlcjpwYXNzd29yZA== 123:bot%2Ftoken 123:bot/token"),
            "***** ***** *****"
        );
    }

    #[test]
    fn authorization_takes_the_first_credential_present() {
        let mut c = cfg("http://url-user:url-pass@h/");
        c.token = Some("tok".into());
        c.username = "user".into();
        c.password = Some("password".into());
        let order = [Credential::Basic, Credential::Bearer, Credential::Userinfo];
        let auth = |c: &ProviderConfig, order: &[Credential]| {
            let mut setup = Setup::new(c);
            let endpoint = setup.endpoint("URL").unwrap();
            setup
                .authorization(&endpoint, order)
                .unwrap()
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            auth(&c, &order).as_deref(),
            Some("Basic dXNlcjpwYXNzd29yZA==")
        );
        assert_eq!(auth(&c, &order[1..]).as_deref(), Some("Bearer tok"));
        c.token = None;
        assert_eq!(
            auth(&c, &order[1..]).as_deref(),
            Some("Basic dXJsLXVzZXI6dXJsLXBhc3M=")
        );
        c.address = "http://h/".into();
        assert_eq!(auth(&c, &order[1..]), None);
    }

    #[test]
    fn masking_keeps_the_classification() {
        let mut m = Masker::new();
        m.add("hunter22");
        let e = mask(
            &m,
            &DeliveryError::permanent("bad hunter22").with_status(401),
        );
        assert_eq!(
            (e.message(), e.status(), e.is_retryable()),
            ("bad *****", Some(401), false)
        );
        let e = mask(&m, &DeliveryError::transient("x"));
        assert!(e.is_retryable());
        assert_eq!(e.status(), None);
    }

    #[derive(Debug)]
    struct Echo(JsonPost);

    impl HttpProvider for Echo {
        fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
            let endpoint = setup.endpoint("echo URL")?;
            Ok(Echo(JsonPost::new(
                endpoint.url(),
                endpoint.basic().cloned(),
            )))
        }
        fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
            Ok((!event.message.is_empty()).then(|| event.message.clone().into_bytes()))
        }
        fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
            Ok(self.0.request(body))
        }
    }

    const TABLE: Table<1> = Table::new(Family::Chat, [entry::<Echo>(ProviderType::Slack)]);

    #[test]
    fn tables_build_their_types_and_name_the_others() {
        assert_eq!(TABLE.types(), [ProviderType::Slack]);
        let r = TABLE.renderer(&cfg("http://h/")).unwrap();
        let event = Event {
            message: "hi".into(),
            ..Event::default()
        };
        assert_eq!(r.render(&event).unwrap(), Some(b"hi".to_vec()));
        assert_eq!(r.render(&Event::default()).unwrap(), None);
        assert!(TABLE.build(&cfg("http://h/"), None).is_ok());
        let err = TABLE.build(&cfg(""), None).unwrap_err().to_string();
        assert_eq!(err, "spec.address: invalid echo URL: the address is empty");
        let mut other = cfg("http://h/");
        other.provider_type = ProviderType::Zulip;
        assert!(matches!(
            TABLE.build(&other, None),
            Err(BuildError::NotImplemented { .. })
        ));
        other.provider_type = ProviderType::Grafana;
        let err = TABLE.build(&other, None).unwrap_err().to_string();
        assert_eq!(err, "spec.type: `grafana` is not a chat provider type");
        let mut registry = Registry::new();
        TABLE.register(&mut registry, |c| TABLE.build(c, None));
        assert_eq!(registry.types().collect::<Vec<_>>(), [ProviderType::Slack]);
    }

    #[tokio::test]
    async fn the_notifier_sends_checks_and_masks() {
        let rec = herald_testkit::Recorder::start().await;
        let host = rec.url().trim_start_matches("http://").to_owned();
        rec.push_reply(herald_testkit::Reply::status(400).body("no p4ss-word-x here"));
        let c = cfg(&format!("http://u:p4ss-word-x@{host}/hook"));
        let n = TABLE.build(&c, None).unwrap();
        let event = Event {
            message: "hi".into(),
            ..Event::default()
        };
        let err = n.post(&event).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "provider ns/p: POST {}/…: HTTP 400 Bad Request: no ***** here",
                rec.url()
            )
        );
        assert_eq!(err.status(), Some(400));
        n.post(&event).await.unwrap();
        n.post(&Event::default()).await.unwrap();
        let got = rec.requests();
        assert_eq!(
            got.len(),
            2,
            "nothing is sent for an event that renders nothing"
        );
        assert_eq!((got[1].path.as_str(), got[1].body_str()), ("/hook", "hi"));
        assert_eq!(
            got[1].header("authorization"),
            Some("Basic dTpwNHNzLXdvcmQteA==")
        );
    }

    /// Echo that renders the name of the Alert it is posted for.
    #[derive(Debug)]
    struct AlertName(Echo);

    impl HttpProvider for AlertName {
        fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
            Echo::from_config(setup).map(AlertName)
        }
        fn render(&self, _event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
            Ok(Some(b"no alert".to_vec()))
        }
        fn render_for(
            &self,
            event: &Event,
            alert: &serde_json::Value,
        ) -> Result<Option<Vec<u8>>, DeliveryError> {
            match alert["metadata"]["name"].as_str() {
                Some(name) => Ok(Some(name.as_bytes().to_vec())),
                None => self.render(event),
            }
        }
        fn request(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
            self.0.request(event, body)
        }
    }

    #[tokio::test]
    async fn post_for_hands_the_alert_to_render_for() {
        let rec = herald_testkit::Recorder::start().await;
        let n = notifier::<AlertName>(&cfg(&format!("{}/hook", rec.url())), None).unwrap();
        let alert = serde_json::json!({"metadata": {"name": "on-call"}});
        n.post_for(&Event::default(), &alert).await.unwrap();
        n.post(&Event::default()).await.unwrap();
        let bodies: Vec<String> = rec
            .requests()
            .iter()
            .map(|r| r.body_str().to_owned())
            .collect();
        assert_eq!(bodies, ["on-call", "no alert"]);
    }

    /// Echo, then the same body again to `/again` as a follow-up.
    #[derive(Debug)]
    struct Twice(Echo);

    impl HttpProvider for Twice {
        const SEND_FAILED: Option<&'static str> = Some("failed sending the first");
        fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
            Echo::from_config(setup).map(Twice)
        }
        fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
            self.0.render(event)
        }
        fn request(&self, event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
            self.0.request(event, body)
        }
        fn follow_ups(&self, event: &Event) -> Result<Vec<FollowUp>, DeliveryError> {
            let mut request = self.0.request(event, event.message.clone().into_bytes())?;
            request.url.push_str("/again");
            Ok(vec![FollowUp {
                request,
                send_failed: Some("failed sending the second"),
            }])
        }
    }

    #[tokio::test]
    async fn follow_ups_go_after_a_first_request_that_succeeded() {
        let rec = herald_testkit::Recorder::start().await;
        let c = cfg(&format!("{}/hook", rec.url()));
        let n = notifier::<Twice>(&c, None).unwrap();
        let event = Event {
            message: "hi".into(),
            ..Event::default()
        };
        n.post(&event).await.unwrap();
        let paths: Vec<String> = rec.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/hook", "/hook/again"]);

        rec.push_reply(herald_testkit::Reply::status(400));
        let err = n.post(&event).await.unwrap_err().to_string();
        assert!(err.starts_with("failed sending the first: "), "{err}");
        assert_eq!(rec.requests().len(), 3, "no follow-up after a failure");

        rec.push_reply(herald_testkit::Reply::status(200));
        rec.push_reply(herald_testkit::Reply::status(404));
        let err = n.post(&event).await.unwrap_err().to_string();
        assert!(err.starts_with("failed sending the second: "), "{err}");
        assert_eq!(rec.requests().len(), 5);
        n.post(&Event::default()).await.unwrap();
        assert_eq!(rec.requests().len(), 5, "nothing rendered, nothing sent");
    }
}
