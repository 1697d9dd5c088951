//! The two ways a provider can fail: building it, and delivering to it.

use std::fmt;
use std::time::Duration;

use crate::{Family, ProviderType};

/// A provider could not be built from its configuration. Never retried: the configuration
/// has to change first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The type is known, but its family is not compiled into this build.
    #[error(
        "provider type `{ty}` needs the `{feature}` feature, which this build of herald does not \
         include (compiled families: {compiled}); rebuild with `--features {feature}`"
    )]
    NotCompiledIn {
        /// The type asked for.
        ty: ProviderType,
        /// The cargo feature that would compile it in.
        feature: &'static str,
        /// The families this build has, comma-separated.
        compiled: String,
    },
    /// The family is compiled in but has no implementation of this type.
    #[error("provider type `{ty}` is not implemented by herald's `{family}` family")]
    NotImplemented {
        /// The type asked for.
        ty: ProviderType,
        /// Its family.
        family: Family,
    },
    /// A configuration value is wrong. `field` names it, for example `spec.address`.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a manifest path (`spec.address`, `secret key "token"`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl BuildError {
    /// A bad value in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A delivery failed. The message never contains a secret: whoever builds it masks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    message: String,
    retryable: bool,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

impl DeliveryError {
    /// A failure that a later attempt may not repeat (connection refused, 5xx, 429, timeout).
    pub fn transient(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            retryable: true,
            status: None,
            retry_after: None,
        }
    }

    /// A failure that will repeat until something changes (4xx, bad payload, auth).
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            retryable: false,
            status: None,
            retry_after: None,
        }
    }

    /// Attaches the HTTP status the service answered.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Attaches the wait the service asked for before the next attempt (`Retry-After`).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Whether delivering the same event again later is worth it.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The wait the service asked for before the next attempt, if it said (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the service said it is rate limiting (HTTP 429): the whole Provider should slow
    /// down, not just this delivery.
    pub fn is_rate_limited(&self) -> bool {
        self.status == Some(429)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Rewrites the message (to mask it, say), keeping the classification.
    pub fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    /// Prefixes the message with context, keeping the classification.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeliveryError {}
