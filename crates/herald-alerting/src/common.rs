//! Pieces the four providers share: the address, the credentials, masking and sending.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

use herald_core::{BuildError, DeliveryError, Masker, ProviderConfig, SecretString};
use herald_http::{HeaderName, HeaderValue, HttpClient, Request, RetryPolicy};

/// Where the address came from, for error messages (it is never echoed: it may hold a token).
pub(crate) fn address_field(config: &ProviderConfig) -> &'static str {
    if config.address_from_secret {
        "secret key \"address\""
    } else {
        "spec.address"
    }
}

/// A validated `http`/`https` address with any `user:password@` removed.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The URL requests go to, without userinfo.
    pub(crate) url: SecretString,
    /// `user:password@` from the address, percent-decoded: Go's HTTP client turns it into
    /// Basic auth, and so do we.
    pub(crate) userinfo: Option<(String, SecretString)>,
}

/// Parses the Provider's address. `what` names the address in messages ("Alertmanager URL").
pub(crate) fn endpoint(config: &ProviderConfig, what: &str) -> Result<Endpoint, BuildError> {
    let invalid =
        |why: String| BuildError::invalid(address_field(config), format!("invalid {what}: {why}"));
    let raw = config.address.expose().trim();
    if raw.is_empty() {
        return Err(invalid("the address is empty".to_owned()));
    }
    // The url crate's errors never quote the input, so they are safe to show.
    let mut url =
        url::Url::parse(raw).map_err(|e| invalid(format!("not an absolute URL ({e})")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(invalid(format!("scheme {other:?} is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    let userinfo = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        let password = SecretString::new(decode(url.password().unwrap_or_default()));
        // Cannot fail for an http(s) URL with a host.
        let cleared = url.set_username("").is_ok() && url.set_password(None).is_ok();
        if !cleared {
            return Err(invalid(
                "the user name and password cannot be removed from it".to_owned(),
            ));
        }
        Some((user, password))
    };
    Ok(Endpoint {
        url: SecretString::new(url.as_str()),
        userinfo,
    })
}

/// A token from the Secret, if it is not empty.
pub(crate) fn token(config: &ProviderConfig) -> Option<&SecretString> {
    config.token.as_ref().filter(|t| !t.is_empty())
}

/// The Secret's username and password, when both are set and not empty.
pub(crate) fn user_password(config: &ProviderConfig) -> Option<(&str, &SecretString)> {
    match &config.password {
        Some(password) if !config.username.is_empty() && !password.is_empty() => {
            Some((config.username.as_str(), password))
        }
        _ => None,
    }
}

/// An `Authorization` header value, marked sensitive.
pub(crate) fn authorization(value: &str, field: &str) -> Result<HeaderValue, BuildError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        BuildError::invalid(
            field,
            "contains characters that are not allowed in an HTTP header (a trailing newline?)",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// `Basic base64(user:password)`.
pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The `authorization` header name.
pub(crate) fn authorization_name() -> HeaderName {
    HeaderName::from_static("authorization")
}

/// The HTTP client of one notifier, with a masker that also knows the credentials herald
/// derived itself (URL userinfo, Basic values, the Sentry key).
#[derive(Debug)]
pub(crate) struct Sender {
    client: HttpClient,
    masker: Masker,
}

impl Sender {
    pub(crate) fn new(
        config: &ProviderConfig,
        retry: Option<RetryPolicy>,
        extra_secrets: &[&str],
    ) -> Result<Self, BuildError> {
        let mut client = HttpClient::from_config(config)?;
        if let Some(policy) = retry {
            client = client.with_retry_policy(policy);
        }
        let mut masker = config.masker();
        for secret in extra_secrets {
            masker.add(secret);
        }
        Ok(Sender { client, masker })
    }

    /// Sends `request`; any 2xx is success.
    pub(crate) async fn send(&self, request: Request) -> Result<(), DeliveryError> {
        match self.client.send(request).await {
            Ok(_) => Ok(()),
            Err(err) => Err(mask(&self.masker, &err)),
        }
    }
}

/// The error with every known secret masked, keeping its classification.
pub(crate) fn mask(masker: &Masker, err: &DeliveryError) -> DeliveryError {
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

/// A rendering failure (cannot happen for string-only payloads, but is never a panic).
pub(crate) fn render_error(provider: &str, err: &serde_json::Error) -> DeliveryError {
    DeliveryError::permanent(format!("{provider}: cannot encode the request body: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ProviderType;

    fn cfg(address: &str) -> ProviderConfig {
        ProviderConfig::new(ProviderType::Alertmanager, "ns", "p", address)
    }

    #[test]
    fn userinfo_is_removed_and_decoded() {
        let e = endpoint(
            &cfg(" https://us%40er:p%3Ass@am.example.com:9093/api/v2/alerts?x=1 "),
            "URL",
        )
        .unwrap();
        assert_eq!(
            e.url.expose(),
            "https://am.example.com:9093/api/v2/alerts?x=1"
        );
        let (user, pass) = e.userinfo.unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("us@er", "p:ss"));
        let e = endpoint(&cfg("http://127.0.0.1:1/"), "URL").unwrap();
        assert!(e.userinfo.is_none());
        let e = endpoint(&cfg("http://onlyuser@h/"), "URL").unwrap();
        assert_eq!(e.userinfo.unwrap().1.expose(), "");
    }

    #[test]
    fn bad_addresses_are_named_and_not_echoed() {
        for (address, want) in [
            ("", "the address is empty"),
            ("not a url", "not an absolute URL"),
            ("ftp://h/x", "scheme \"ftp\""),
            ("mailto:someone", "scheme \"mailto\""),
        ] {
            let err = endpoint(&cfg(address), "Alertmanager URL")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("spec.address: invalid Alertmanager URL"),
                "{err}"
            );
            assert!(err.contains(want), "{address}: {err}");
        }
        let mut c = cfg("gopher://secret-token-xyz@h/");
        c.address_from_secret = true;
        let err = endpoint(&c, "URL").unwrap_err().to_string();
        assert!(err.starts_with("secret key \"address\""), "{err}");
        assert!(!err.contains("secret-token-xyz"), "{err}");
    }

    #[test]
    fn basic_matches_the_flux_golden() {
        assert_eq!(basic("user", "password"), "Basic dXNlcjpwYXNzd29yZA==");
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
}
