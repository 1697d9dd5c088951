//! The event endpoint's optional defences: TLS, a bearer token, an `X-Signature` HMAC check,
//! and the per-connection limits (connection cap, header and body timeouts).
//!
//! Everything here is off by default, as in Flux, whose event server sits on a cluster's
//! private network. A [`Guard`] is built from [`crate::Options`] at start and re-reads its
//! files (certificate, key, token, HMAC key) on reload, keeping the previous ones when the new
//! ones are unusable. It holds secrets, so it never prints them: its `Debug` says only what is
//! configured, and errors name files, never their contents.
//!
//! It is not the HTTP server: `server.rs` asks it for a TLS acceptor, the limits, and whether a
//! request is authorized. The HMAC scheme is `generic-hmac`'s, checked by
//! [`herald_webhook::verify`], so one herald's `generic-hmac` Provider can feed another herald.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderMap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::Options;
use herald_webhook::{Signature, verify};

/// Why the event endpoint's defences cannot be set up; every message names the flag or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// `--events-max-connections 0`.
    #[error("--events-max-connections must be at least 1")]
    NoConnections,
    /// A zero header or read timeout.
    #[error("--events-header-timeout and --events-read-timeout must be more than 0s")]
    ZeroTimeout,
    /// A certificate without a key, or a key without a certificate.
    #[error("--events-tls-cert and --events-tls-key must be given together")]
    HalfTls,
    /// A file cannot be read.
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Read {
        /// `bearer token`, `HMAC key`, `TLS key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A secret file holds only whitespace.
    #[error("the {what} file {} is empty", path.display())]
    Empty {
        /// `bearer token`, `HMAC key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The certificate file is not PEM.
    #[error("cannot read PEM certificates from {}: {message}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The certificate file holds no certificate.
    #[error("no PEM certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no usable key (its content is never shown).
    #[error("no usable PEM private key in {}", .0.display())]
    NoKey(PathBuf),
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The key does not belong to the certificate.
    #[error("the TLS certificate {} and key {} do not work together: {message}", cert.display(), key.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        message: String,
    },
}

/// Why a request was refused before its event was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization: Bearer` header, or the wrong token.
    Token,
    /// No `X-Signature`, or one that does not match the body.
    Signature,
}

/// The event listener's defences and limits (see the module documentation).
pub(crate) struct Guard {
    tls_files: Option<(PathBuf, PathBuf)>,
    token_file: Option<PathBuf>,
    hmac_key_file: Option<PathBuf>,
    tls: RwLock<Option<TlsAcceptor>>,
    /// SHA-256 of the token: compared in constant time, and the token itself is not kept.
    token_digest: RwLock<Option<[u8; 32]>>,
    hmac_key: RwLock<Option<Arc<Vec<u8>>>>,
    /// Connections served at once; further ones are shed.
    pub(crate) max_connections: usize,
    /// Time allowed for a TLS handshake and for each request head.
    pub(crate) header_timeout: Duration,
    /// Time allowed for a request body.
    pub(crate) read_timeout: Duration,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("tls", &self.tls_files.is_some())
            .field("token", &self.token_file.is_some())
            .field("hmac", &self.hmac_key_file.is_some())
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl Guard {
    /// Reads every configured file; an error names the file and what is wrong with it.
    pub(crate) fn load(options: &Options) -> Result<Guard, GuardError> {
        if options.events_max_connections == 0 {
            return Err(GuardError::NoConnections);
        }
        if options.events_header_timeout.is_zero() || options.events_read_timeout.is_zero() {
            return Err(GuardError::ZeroTimeout);
        }
        let tls_files = match (&options.events_tls_cert, &options.events_tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => return Err(GuardError::HalfTls),
        };
        let guard = Guard {
            tls_files,
            token_file: options.events_token_file.clone(),
            hmac_key_file: options.events_hmac_key_file.clone(),
            tls: RwLock::new(None),
            token_digest: RwLock::new(None),
            hmac_key: RwLock::new(None),
            max_connections: options.events_max_connections,
            header_timeout: options.events_header_timeout,
            read_timeout: options.events_read_timeout,
        };
        guard.reload()?;
        Ok(guard)
    }

    /// Re-reads the files. On an error nothing changes: the previous certificate, token and
    /// key stay in force.
    pub(crate) fn reload(&self) -> Result<(), GuardError> {
        let tls = match &self.tls_files {
            Some((cert, key)) => Some(load_tls(cert, key)?),
            None => None,
        };
        let token = match &self.token_file {
            Some(path) => Some(token_digest(path, "bearer token")?),
            None => None,
        };
        let hmac_key = match &self.hmac_key_file {
            Some(path) => Some(Arc::new(read_secret_file(path, "HMAC key")?)),
            None => None,
        };
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
        *self.token_digest.write().unwrap_or_else(|e| e.into_inner()) = token;
        *self.hmac_key.write().unwrap_or_else(|e| e.into_inner()) = hmac_key;
        Ok(())
    }

    /// Whether anything is re-read on reload.
    pub(crate) fn has_files(&self) -> bool {
        self.tls_files.is_some() || self.token_file.is_some() || self.hmac_key_file.is_some()
    }

    /// The TLS acceptor, when the event server speaks TLS.
    pub(crate) fn tls(&self) -> Option<TlsAcceptor> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks `Authorization: Bearer <token>` when a token is configured.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(expected) = *self.token_digest.read().unwrap_or_else(|e| e.into_inner()) else {
            return Ok(());
        };
        if bearer_matches(headers, &expected) {
            Ok(())
        } else {
            Err(Refusal::Token)
        }
    }

    /// Checks `X-Signature` against `body` when an HMAC key is configured.
    pub(crate) fn verify_body(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let key = self
            .hmac_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(key) = key else {
            return Ok(());
        };
        let header = headers.get("x-signature").and_then(|v| v.to_str().ok());
        match verify(&key, body, header) {
            Signature::Valid | Signature::NotChecked => Ok(()),
            Signature::Missing | Signature::Invalid => Err(Refusal::Signature),
        }
    }
}

/// A bearer token read from a file and re-read on reload, kept only as its digest: the status
/// API's `--api-token-file`.
pub(crate) struct BearerToken {
    file: PathBuf,
    digest: RwLock<[u8; 32]>,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl BearerToken {
    /// Reads the token in `file`; an error names the file, never its content.
    pub(crate) fn load(file: &Path) -> Result<BearerToken, GuardError> {
        Ok(BearerToken {
            digest: RwLock::new(token_digest(file, "API token")?),
            file: file.to_owned(),
        })
    }

    /// Re-reads the file; on an error the previous token stays in force.
    pub(crate) fn reload(&self) -> Result<(), GuardError> {
        let digest = token_digest(&self.file, "API token")?;
        *self.digest.write().unwrap_or_else(|e| e.into_inner()) = digest;
        Ok(())
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let expected = *self.digest.read().unwrap_or_else(|e| e.into_inner());
        bearer_matches(headers, &expected)
    }
}

/// The digest of the token in `path`.
fn token_digest(path: &Path, what: &'static str) -> Result<[u8; 32], GuardError> {
    Ok(digest(&read_secret_file(path, what)?))
}

/// Whether `Authorization: Bearer <token>` is present with the token whose digest is
/// `expected` (compared in constant time).
fn bearer_matches(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .is_some_and(|presented| constant_time_eq(&digest(presented.as_bytes()), expected))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Reads a secret file: surrounding whitespace and line ends are dropped (as Kubernetes Secret
/// volumes and `echo` leave them); an empty file is an error. Errors never include the content.
fn read_secret_file(path: &Path, what: &'static str) -> Result<Vec<u8>, GuardError> {
    let raw = std::fs::read(path).map_err(|source| GuardError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    let text = raw.trim_ascii();
    if text.is_empty() {
        return Err(GuardError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(text.to_vec())
}

/// Builds a TLS 1.2/1.3 acceptor with *ring*, announcing HTTP/1.1 only.
fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, GuardError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| GuardError::Certificates {
            path: cert.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(GuardError::NoCertificate(cert.to_owned()));
    }
    // The error of a key file is not printed: a malformed key's text could appear in it.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::Io(source) => GuardError::Read {
            what: "TLS key",
            path: key.to_owned(),
            source,
        },
        _ => GuardError::NoKey(key.to_owned()),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GuardError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| GuardError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let a = digest(b"token");
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!constant_time_eq(&a, &b));
    }

    #[test]
    fn secret_files_are_trimmed_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("herald-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "  s3cr3t-value\n").unwrap();
        assert_eq!(
            read_secret_file(&path, "bearer token").unwrap(),
            b"s3cr3t-value"
        );
        std::fs::write(&path, "\n\n").unwrap();
        let err = read_secret_file(&path, "bearer token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");
        std::fs::write(
            dir.join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\ns3cr3t-key\n",
        )
        .unwrap();
        std::fs::write(dir.join("cert.pem"), "").unwrap();
        let Err(err) = load_tls(&dir.join("cert.pem"), &dir.join("key.pem")) else {
            panic!("bad TLS files were accepted");
        };
        let err = err.to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        std::fs::write(
            dir.join("cert.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let Err(err) = load_tls(&dir.join("cert.pem"), &dir.join("key.pem")) else {
            panic!("bad TLS files were accepted");
        };
        let err = err.to_string();
        assert!(err.contains("no usable PEM private key"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
