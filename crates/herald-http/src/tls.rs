//! The rustls client configuration: system or custom roots, optional client certificate.

use std::sync::{Arc, OnceLock};

use herald_core::{BuildError, TlsMaterial};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The manifest field TLS material comes from.
const FIELD: &str = "spec.certSecretRef";

/// Reads the system roots, with a warning for what could not be read. Empty if none could be.
fn load_system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    for err in &found.errors {
        tracing::warn!(error = %err, "could not load some system CA certificates");
    }
    if added == 0 {
        tracing::warn!(
            "no system CA certificates found: HTTPS to public services will fail \
             unless the provider has a certSecretRef with ca.crt"
        );
    }
    tracing::debug!(added, ignored, "loaded system CA certificates");
    roots
}

/// Checks servers against the system roots, which it loads when the first certificate comes
/// to be checked, once per process: a daemon whose Providers all speak plain HTTP never reads
/// the system's CA bundle nor keeps it in memory (about 250 KiB with Debian's). It does what
/// rustls's own WebPKI verifier does, which it hands the check to.
#[derive(Debug)]
struct SystemRootsVerifier {
    provider: Arc<CryptoProvider>,
    /// `None` when the system has no usable root: every certificate then has an unknown issuer.
    webpki: OnceLock<Option<Arc<WebPkiServerVerifier>>>,
}

impl SystemRootsVerifier {
    /// The one verifier of the process (its roots are loaded once).
    fn shared(provider: &Arc<CryptoProvider>) -> Arc<SystemRootsVerifier> {
        static VERIFIER: OnceLock<Arc<SystemRootsVerifier>> = OnceLock::new();
        VERIFIER
            .get_or_init(|| {
                Arc::new(SystemRootsVerifier {
                    provider: provider.clone(),
                    webpki: OnceLock::new(),
                })
            })
            .clone()
    }

    fn webpki(&self) -> Option<&Arc<WebPkiServerVerifier>> {
        self.webpki
            .get_or_init(|| {
                let roots = Arc::new(load_system_roots());
                WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

impl ServerCertVerifier for SystemRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki() {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What is wrong with some PEM, without quoting any of it (it may be a private key).
fn pem_problem(err: &pem::Error) -> &'static str {
    match err {
        pem::Error::NoItemsFound => "no PEM block of the expected type found",
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64",
        pem::Error::SectionTooLarge => "a PEM block is too large",
        _ => "the PEM data is malformed",
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            BuildError::invalid(
                FIELD,
                format!("failed to parse {what}: {}", pem_problem(&e)),
            )
        })?;
    if certs.is_empty() {
        return Err(BuildError::invalid(
            FIELD,
            format!("failed to parse {what}: no \"BEGIN CERTIFICATE\" block found"),
        ));
    }
    Ok(certs)
}

/// The client configuration for `tls`: *ring*, TLS 1.2 and 1.3, ALPN `http/1.1`. A CA bundle
/// replaces the system roots; a certificate and key give a client certificate.
pub(crate) fn client_config(tls: &TlsMaterial) -> Result<Arc<ClientConfig>, BuildError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::invalid(FIELD, format!("TLS setup failed: {e}")))?;
    let builder = match &tls.ca_pem {
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(SystemRootsVerifier::shared(&provider)),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem.expose(), "CA certificate")? {
                roots.add(cert).map_err(|e| {
                    BuildError::invalid(FIELD, format!("failed to parse CA certificate: {e}"))
                })?;
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut config = match (&tls.cert_pem, &tls.key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(BuildError::invalid(
                FIELD,
                "a client certificate (tls.crt) needs its private key (tls.key), which is missing",
            ));
        }
        (None, Some(_)) => {
            return Err(BuildError::invalid(
                FIELD,
                "a private key (tls.key) needs its client certificate (tls.crt), which is missing",
            ));
        }
        (Some(cert), Some(key)) => {
            let chain = certificates(cert.expose(), "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key.expose()).map_err(|e| {
                BuildError::invalid(
                    FIELD,
                    format!("failed to parse private key: {}", pem_problem(&e)),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                BuildError::invalid(
                    FIELD,
                    format!("client certificate and key are not usable: {e}"),
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use herald_core::SecretBytes;
    use herald_testkit::TestCa;

    use super::*;

    fn material(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> TlsMaterial {
        let wrap = |v: Option<&str>| v.map(|s| SecretBytes::new(s.as_bytes().to_vec()));
        TlsMaterial {
            ca_pem: wrap(ca),
            cert_pem: wrap(cert),
            key_pem: wrap(key),
        }
    }

    fn err(m: &TlsMaterial) -> String {
        client_config(m).unwrap_err().to_string()
    }

    #[test]
    fn valid_material_builds_with_http11_alpn() {
        let ca = TestCa::new();
        let (cert, key) = ca.client_cert("c");
        for m in [
            material(None, None, None),
            material(Some(&ca.ca_pem()), None, None),
            material(Some(&ca.ca_pem()), Some(&cert), Some(&key)),
            material(None, Some(&cert), Some(&key)),
        ] {
            let config = client_config(&m).unwrap();
            assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        }
    }

    #[test]
    fn bad_material_is_a_build_error_that_quotes_nothing() {
        let ca = TestCa::new();
        let (cert, key) = ca.client_cert("c");
        let e = err(&material(Some("not a certificate"), None, None));
        assert_eq!(
            e,
            "spec.certSecretRef: failed to parse CA certificate: no \"BEGIN CERTIFICATE\" block found"
        );
        let e = err(&material(
            Some("-----BEGIN CERTIFICATE-----\nSECRETSTUFF!!\n-----END CERTIFICATE-----\n"),
            None,
            None,
        ));
        assert!(
            e.starts_with("spec.certSecretRef: failed to parse CA certificate: "),
            "{e}"
        );
        assert!(!e.contains("SECRETSTUFF"), "{e}");
        let e = err(&material(
            Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            None,
            None,
        ));
        assert!(
            e.starts_with("spec.certSecretRef: failed to parse CA certificate: "),
            "{e}"
        );
        assert!(err(&material(None, Some(&cert), None)).contains("tls.key"));
        assert!(err(&material(None, None, Some(&key))).contains("tls.crt"));
        let broken_key = key.replace("-----END PRIVATE KEY-----", "");
        let e = err(&material(None, Some(&cert), Some(&broken_key)));
        assert_eq!(
            e,
            "spec.certSecretRef: failed to parse private key: a PEM block has no END line"
        );
        let e = err(&material(None, Some(&cert), Some(&cert)));
        assert_eq!(
            e,
            "spec.certSecretRef: failed to parse private key: no PEM block of the expected type found"
        );
        let (_, other_key) = ca.client_cert("d");
        let e = err(&material(None, Some(&cert), Some(&other_key)));
        assert!(
            e.starts_with("spec.certSecretRef: client certificate and key are not usable"),
            "{e}"
        );
    }
}
