//! Turning a Provider and its Secrets into a [`ProviderConfig`] (Flux's section 4.1).

use std::collections::BTreeMap;

use super::load::MAX_FIELD_LEN;
use super::{Kind, ManifestError, ManifestSet, Provider, Secret};
use crate::{ProviderConfig, ProxyConfig, SecretBytes, SecretString, TlsMaterial};

impl ManifestSet {
    /// Resolves `provider`: its address, credentials, headers, proxy and TLS material from
    /// the Secrets it references (in its own namespace), and its timeout.
    ///
    /// Unlike Flux, a Secret with only `username` or only `password` is not silently ignored:
    /// each key is used as given (a `password`-only Secret works with `spec.username`).
    pub fn provider_config(&self, provider: &Provider) -> Result<ProviderConfig, ManifestError> {
        let spec = &provider.spec;
        let err = |path: &[&str]| {
            ManifestError::at(&provider.origin, path)
                .object(Kind::Provider, &provider.namespace, &provider.name)
                .field(path.join("."))
        };
        let find = |path: &[&str], name: &str| -> Result<&Secret, ManifestError> {
            self.secret(&provider.namespace, name).ok_or_else(|| {
                err(path).message(format!(
                    "Secret {}/{name} not found in the manifests (a Provider's Secrets must be in \
                     its namespace)",
                    provider.namespace
                ))
            })
        };
        let text =
            |secret: &Secret, key: &str, path: &[&str]| -> Result<Option<String>, ManifestError> {
                match secret.data.get(key) {
                    None => Ok(None),
                    Some(bytes) => match std::str::from_utf8(bytes.expose()) {
                        Ok(s) => Ok(Some(s.to_owned())),
                        Err(_) => Err(err(path).message(format!(
                            "key {key:?} of Secret {}/{} is not UTF-8 text",
                            secret.namespace, secret.name
                        ))),
                    },
                }
            };

        let mut config = ProviderConfig::new(
            spec.provider_type,
            provider.namespace.clone(),
            provider.name.clone(),
            spec.address.clone(),
        );
        config.uid = provider.uid.clone();
        config.channel = spec.channel.clone();
        config.username = spec.username.clone();
        config.timeout = spec.timeout.unwrap_or(ProviderConfig::DEFAULT_TIMEOUT);
        config.commit_status_expr = spec.commit_status_expr.clone();
        config.object = provider.object.clone();
        config.service_account_name = spec.service_account_name.clone();

        let mut proxy_url = spec.proxy.clone();
        let secret_path: &[&str] = &["spec", "secretRef", "name"];
        let secret = match &spec.secret_ref {
            Some(name) => Some(find(secret_path, name)?),
            None => None,
        };
        if let Some(secret) = secret {
            if let Some(address) = text(secret, "address", secret_path)? {
                let address = address.trim();
                if address.len() > MAX_FIELD_LEN {
                    return Err(err(secret_path).message(format!(
                        "the Secret's address exceeds the maximum length of {MAX_FIELD_LEN} bytes"
                    )));
                }
                config.address = SecretString::new(address);
                config.address_from_secret = true;
            }
            if let Some(username) = text(secret, "username", secret_path)? {
                config.username = username;
            }
            config.password = text(secret, "password", secret_path)?.map(SecretString::new);
            config.token = text(secret, "token", secret_path)?.map(SecretString::new);
            if let Some(headers) = text(secret, "headers", secret_path)? {
                config.headers = parse_headers(&headers).map_err(|e| {
                    err(secret_path).message(format!(
                        "key \"headers\" of Secret {}/{}: {e}",
                        secret.namespace, secret.name
                    ))
                })?;
            }
            if let Some(proxy) = text(secret, "proxy", secret_path)? {
                proxy_url = Some(proxy.trim().to_owned());
            }
            config.secret_data = secret.data.clone();
        }

        let mut proxy = match proxy_url.filter(|p| !p.is_empty()) {
            Some(url) => Some(parse_proxy(&url).map_err(|e| err(&["spec", "proxy"]).message(e))?),
            None => None,
        };
        if let Some(name) = &spec.proxy_secret_ref {
            let path: &[&str] = &["spec", "proxySecretRef", "name"];
            let ps = find(path, name)?;
            let address = text(ps, "address", path)?
                .map(|a| a.trim().to_owned())
                .unwrap_or_default();
            if address.is_empty() {
                return Err(err(path).message(format!(
                    "Secret {}/{name} has no \"address\" key (the proxy URL)",
                    provider.namespace
                )));
            }
            if address.len() > MAX_FIELD_LEN {
                return Err(
                    err(path).message(format!("the proxy address exceeds {MAX_FIELD_LEN} bytes"))
                );
            }
            let mut parsed = parse_proxy(&address).map_err(|e| err(path).message(e))?;
            if let Some(user) = text(ps, "username", path)? {
                parsed.username = Some(user);
            }
            if let Some(pass) = text(ps, "password", path)? {
                parsed.password = Some(SecretString::new(pass));
            }
            proxy = Some(parsed);
        }
        config.proxy = proxy;

        if let Some(name) = &spec.cert_secret_ref {
            let path: &[&str] = &["spec", "certSecretRef", "name"];
            let cs = find(path, name)?;
            config.tls = tls_material(cs).map_err(|e| err(path).message(e))?;
            if config.tls.is_empty() {
                return Err(err(path).message(format!(
                    "Secret {}/{name} has neither ca.crt nor tls.crt and tls.key",
                    provider.namespace
                )));
            }
        } else if let (Some(secret), true) = (secret, spec.provider_type.is_commit_status()) {
            // Git providers also take TLS material from their main Secret (for GHES and
            // self-hosted forges).
            config.tls = tls_material(secret).map_err(|e| err(secret_path).message(e))?;
        }
        Ok(config)
    }
}

fn tls_material(secret: &Secret) -> Result<TlsMaterial, String> {
    let get = |key: &str, legacy: &str| -> Option<SecretBytes> {
        secret
            .data
            .get(key)
            .or_else(|| secret.data.get(legacy))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let tls = TlsMaterial {
        ca_pem: get("ca.crt", "caFile"),
        cert_pem: get("tls.crt", "certFile"),
        key_pem: get("tls.key", "keyFile"),
    };
    match (&tls.cert_pem, &tls.key_pem) {
        (Some(_), None) => Err(format!(
            "Secret {}/{} has tls.crt but no tls.key: a client certificate needs both",
            secret.namespace, secret.name
        )),
        (None, Some(_)) => Err(format!(
            "Secret {}/{} has tls.key but no tls.crt: a client certificate needs both",
            secret.namespace, secret.name
        )),
        _ => Ok(tls),
    }
}

/// The Secret's `headers` key: a YAML map of header name to value.
fn parse_headers(text: &str) -> Result<BTreeMap<String, SecretString>, String> {
    let map: Option<BTreeMap<String, String>> = serde_yaml_ng::from_str(text).map_err(|e| {
        format!(
            "not a YAML map of header names to string values: {}",
            super::load::without_values(&e.to_string())
        )
    })?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, SecretString::new(v)))
        .collect())
}

/// Parses `scheme://[user[:password]@]host[:port][/]` into a proxy without credentials in the
/// URL. The scheme must be `http`, `https` or `socks5`.
pub(crate) fn parse_proxy(url: &str) -> Result<ProxyConfig, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("invalid proxy URL: expected scheme://host:port".to_owned());
    };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "socks5") {
        return Err(format!(
            "unsupported proxy scheme {scheme:?}: use http, https or socks5"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err("invalid proxy URL: no host".to_owned());
    }
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = match u.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (u, None),
            };
            (
                Some(percent_decode(user)?),
                pass.map(percent_decode).transpose()?.map(SecretString::new),
            )
        }
    };
    Ok(ProxyConfig {
        url: format!("{scheme}://{host}"),
        username,
        password,
    })
}

/// Decodes the percent-encoding of URL userinfo. A `%` not followed by two hex digits is an
/// error, as in Go's URL parser (the decoder alone would keep it as it is).
fn percent_decode(s: &str) -> Result<String, String> {
    let escapes_valid = s.split('%').skip(1).all(|rest| {
        rest.as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_valid {
        return Err("invalid percent-encoding in the proxy credentials".to_owned());
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| "proxy credentials are not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_proxy;

    #[test]
    fn proxy_urls() {
        let p = parse_proxy("http://herald:s%40cret@127.0.0.1:18888").unwrap();
        assert_eq!(p.url, "http://127.0.0.1:18888");
        assert_eq!(p.username.as_deref(), Some("herald"));
        assert_eq!(p.password.unwrap().expose(), "s@cret");
        let p = parse_proxy("socks5://proxy:1080/").unwrap();
        assert_eq!((p.url.as_str(), p.username), ("socks5://proxy:1080", None));
        assert!(
            parse_proxy("ftp://x")
                .unwrap_err()
                .contains("unsupported proxy scheme")
        );
        assert!(parse_proxy("127.0.0.1:8080").is_err());
        assert!(parse_proxy("http://u:%zz@h").is_err());
        assert!(parse_proxy("http://u:50%@h").is_err());
        assert!(parse_proxy("http://u:%ff@h").is_err(), "not UTF-8");
        let p = parse_proxy("http://us%65r:p%2fw%3A@h:1").unwrap();
        assert_eq!(p.username.as_deref(), Some("user"));
        assert_eq!(p.password.unwrap().expose(), "p/w:");
    }
}
