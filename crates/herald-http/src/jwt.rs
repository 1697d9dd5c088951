//! Signed assertions and the access tokens they buy, for services that authenticate that way:
//! a GitHub App signs a JWT and exchanges it for an installation token, a Google service
//! account signs one and exchanges it for an OAuth2 access token.
//!
//! [`RsaKey`] reads an RSA private key from PEM (PKCS#1 `RSA PRIVATE KEY`, as GitHub hands it
//! out, or PKCS#8 `PRIVATE KEY`, as Google does) and signs RS256 JWTs with *ring*, which rustls
//! already links. [`TokenCache`] keeps one access token until shortly before it expires, fetches
//! a new one when asked after that, and forgets one the service refused (a `401`), so that the
//! next delivery fetches afresh.
//!
//! It does no HTTP itself: how a token is fetched is the caller's (the provider's) business.

use std::future::Future;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_core::SecretString;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Serialize;

/// Why a private key could not be used. Never holds any part of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text holds no PEM private key.
    #[error(
        "not a PEM private key (expected `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN PRIVATE KEY-----`)"
    )]
    NotPem,
    /// A PEM key of another algorithm (an EC key, say).
    #[error("the private key is not an RSA key")]
    NotRsa,
    /// *ring* refused the RSA key (too short, malformed, ...).
    #[error("the RSA private key was rejected: {0}")]
    Rejected(String),
    /// Signing failed (only on a broken random source).
    #[error("signing with the RSA key failed")]
    Signing,
}

/// An RSA private key that signs RS256 JWTs.
pub struct RsaKey {
    pair: RsaKeyPair,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKey(****)")
    }
}

impl RsaKey {
    /// Reads the first private key of a PEM text, PKCS#1 or PKCS#8.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| KeyError::NotPem)?;
        let pair = match &der {
            PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()),
            _ => return Err(KeyError::NotRsa),
        };
        let pair = pair.map_err(|e| match e.to_string().as_str() {
            // A PKCS#8 key of another algorithm.
            "WrongAlgorithm" => KeyError::NotRsa,
            reason => KeyError::Rejected(reason.to_owned()),
        })?;
        Ok(Self { pair })
    }

    /// The public key as a DER `RSAPublicKey` (PKCS#1), for checking signatures.
    pub fn public_key_der(&self) -> &[u8] {
        self.pair.public().as_ref()
    }

    /// A compact JWT: `{"alg":"RS256","typ":"JWT"[,"kid":kid]}` and `claims`, signed.
    pub fn sign_jwt(&self, kid: Option<&str>, claims: &impl Serialize) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            typ: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            kid: Option<&'a str>,
        }
        let header = Header {
            alg: "RS256",
            typ: "JWT",
            kid,
        };
        let mut jwt = format!("{}.{}", base64_json(&header), base64_json(claims));
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError::Signing)?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// The base64url (unpadded) of a value's JSON, as a JWT segment.
fn base64_json(value: &impl Serialize) -> String {
    // Plain structs of strings and numbers encode into memory without failing.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// An access token and when the service says it expires.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token, as sent in `Authorization`.
    pub token: SecretString,
    /// Its expiry.
    pub expires_at: SystemTime,
}

/// Whether a token expiring at `expires_at` may still be used at `now`: only while more than
/// `margin` is left, so that a request sent with it does not arrive after it expired. A clock
/// that went back keeps the token; one that jumped forward past the margin drops it.
pub fn still_fresh(expires_at: SystemTime, now: SystemTime, margin: Duration) -> bool {
    expires_at
        .duration_since(now)
        .is_ok_and(|left| left > margin)
}

/// One access token, fetched when first needed and again when it is near expiry or refused.
#[derive(Debug)]
pub struct TokenCache {
    margin: Duration,
    current: tokio::sync::Mutex<Option<AccessToken>>,
}

impl TokenCache {
    /// A cache that fetches a new token once less than `margin` of the current one is left.
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The current token, or a new one from `fetch` when there is none or it is near expiry.
    /// Concurrent callers wait for one fetch; a failed fetch is returned and nothing is kept.
    pub async fn get<E, F, Fut>(&self, fetch: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && still_fresh(token.expires_at, SystemTime::now(), self.margin)
        {
            return Ok(token.token.clone());
        }
        let token = fetch().await?;
        let secret = token.token.clone();
        *current = Some(token);
        Ok(secret)
    }

    /// Forgets `refused` (the service answered `401` to it), unless another caller already
    /// replaced it with a newer one.
    pub async fn invalidate(&self, refused: &SecretString) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.token.expose() == refused.expose())
        {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn parts(jwt: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let pieces: Vec<&str> = jwt.split('.').collect();
        assert_eq!(pieces.len(), 3, "{jwt}");
        let json = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
        (
            json(pieces[0]),
            json(pieces[1]),
            URL_SAFE_NO_PAD.decode(pieces[2]).unwrap(),
            format!("{}.{}", pieces[0], pieces[1]),
        )
    }

    #[test]
    fn both_pem_forms_sign_jwts_the_public_key_verifies() {
        let public = herald_testkit::rsa_public_key_der();
        for pem in [herald_testkit::RSA_PKCS1_PEM, herald_testkit::RSA_PKCS8_PEM] {
            let key = RsaKey::from_pem(pem).unwrap();
            assert_eq!(key.public_key_der(), public.as_slice());
            let claims = serde_json::json!({"iss": "12345", "iat": 1, "exp": 601});
            let jwt = key.sign_jwt(None, &claims).unwrap();
            let (header, body, signature, signed) = parts(&jwt);
            assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
            assert_eq!(body, claims);
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
                .verify(signed.as_bytes(), &signature)
                .expect("signature verifies");
            let with_kid = key.sign_jwt(Some("key-1"), &claims).unwrap();
            assert_eq!(parts(&with_kid).0["kid"], "key-1");
        }
    }

    #[test]
    fn keys_that_cannot_be_used_say_why_without_quoting_them() {
        // A throw-away P-256 key, as SEC1 and as PKCS#8.
        let ec_sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIK5ETY+eu2x5OrxQcPkERPaj6K4Xxulj6jTUugN9IPEHoAoGCCqGSM49\nAwEHoUQDQgAE38etvS7EMe5GBLl+a+VWcSXJ3bUwZTG1ceLmN10GkVQZ9+ajwYc7\nJxLGnYYyZLY2fT0hYscVQXpd7IplB5FmTQ==\n-----END EC PRIVATE KEY-----\n";
        let ec_pkcs8 = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrkRNj567bHk6vFBw\n+QRE9qPorhfG6WPqNNS6A30g8QehRANCAATfx629LsQx7kYEuX5r5VZxJcndtTBl\nMbVx4uY3XQaRVBn35qPBhzsnEsadhjJktjZ9PSFixxVBel3simUHkWZN\n-----END PRIVATE KEY-----\n";
        let cases = [
            ("", KeyError::NotPem),
            ("ghp_not_a_key", KeyError::NotPem),
            (ec_sec1, KeyError::NotRsa),
            (ec_pkcs8, KeyError::NotRsa),
        ];
        for (pem, want) in cases {
            assert_eq!(RsaKey::from_pem(pem).unwrap_err(), want, "{pem:?}");
        }
        let truncated = herald_testkit::RSA_PKCS1_PEM.replacen("MII", "MIA", 1);
        let err = RsaKey::from_pem(&truncated).unwrap_err();
        assert!(
            matches!(err, KeyError::NotPem | KeyError::Rejected(_)),
            "{err:?}"
        );
        assert!(!err.to_string().contains("MIA"), "{err}");
    }

    #[test]
    fn freshness_keeps_a_margin_and_survives_clock_jumps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let margin = Duration::from_secs(60);
        let cases = [
            (t + Duration::from_secs(3600), t, true),
            (t + Duration::from_secs(61), t, true),
            (t + Duration::from_secs(60), t, false),
            (t + Duration::from_secs(10), t, false),
            (t, t + Duration::from_secs(5), false),
            // The clock went back an hour: the token is still good.
            (
                t + Duration::from_secs(600),
                t - Duration::from_secs(3600),
                true,
            ),
        ];
        for (expires, now, want) in cases {
            assert_eq!(
                still_fresh(expires, now, margin),
                want,
                "{expires:?} {now:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_cache_fetches_once_refetches_near_expiry_and_after_a_refusal() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let fetches = std::sync::atomic::AtomicU32::new(0);
        let fetch = |ttl: u64| {
            let n = fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                Ok::<_, String>(AccessToken {
                    token: SecretString::new(format!("token-{n}")),
                    expires_at: SystemTime::now() + Duration::from_secs(ttl),
                })
            }
        };
        let first = cache.get(|| fetch(3600)).await.unwrap();
        assert_eq!(first.expose(), "token-1");
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap().expose(), "token-1");
        cache.invalidate(&SecretString::new("token-0")).await;
        assert_eq!(cache.get(|| fetch(30)).await.unwrap().expose(), "token-1");
        cache.invalidate(&first).await;
        // A token with less than the margin left is handed out once and replaced next time.
        assert_eq!(cache.get(|| fetch(30)).await.unwrap().expose(), "token-2");
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap().expose(), "token-3");
        let failed: Result<SecretString, String> = TokenCache::new(Duration::ZERO)
            .get(|| async { Err("the token endpoint answered 500".to_owned()) })
            .await;
        assert_eq!(failed.unwrap_err(), "the token endpoint answered 500");
    }
}
