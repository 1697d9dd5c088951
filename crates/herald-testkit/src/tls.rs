//! A throw-away certificate authority and the TLS side of the [`crate::Recorder`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority made up for one test run: it issues server certificates for
/// `localhost` and `127.0.0.1`, and client certificates for mTLS.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestCa(herald test CA)")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl TestCa {
    /// A new CA with a fresh ECDSA P-256 key.
    pub fn new() -> Self {
        let key = KeyPair::generate().expect("generate the CA key");
        let mut params = CertificateParams::default();
        // A distinct name per CA, so that a certificate from another TestCa is "unknown
        // issuer" rather than "bad signature" to a verifier.
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        params.distinguished_name.push(
            DnType::CommonName,
            format!("herald test CA {}-{n}", std::process::id()),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// A server certificate valid for `localhost` and `127.0.0.1`: `(cert_pem, key_pem)`.
    pub fn server_cert(&self) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("localhost and 127.0.0.1 are valid names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(&params)
    }

    /// A client certificate with common name `name`: `(cert_pem, key_pem)`.
    pub fn client_cert(&self, name: &str) -> (String, String) {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&params)
    }

    fn issue(&self, params: &CertificateParams) -> (String, String) {
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// What an HTTPS [`crate::Recorder`] presents and, optionally, requires.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The server certificate chain, PEM.
    pub cert_pem: String,
    /// The server private key, PEM.
    pub key_pem: String,
    /// When set, a client certificate issued by this CA is *required* (mTLS).
    pub client_ca_pem: Option<String>,
}

impl ServerTls {
    /// A server certificate from `ca` for `localhost` and `127.0.0.1`, no client auth.
    pub fn from_ca(ca: &TestCa) -> Self {
        let (cert_pem, key_pem) = ca.server_cert();
        ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: None,
        }
    }

    /// The same, requiring client certificates issued by `ca`.
    pub fn with_client_auth(mut self, ca: &TestCa) -> Self {
        self.client_ca_pem = Some(ca.ca_pem());
        self
    }

    /// The rustls server configuration (ring provider, ALPN `http/1.1`). Panics on bad PEM.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("ServerTls::cert_pem is not valid PEM");
        assert!(
            !certs.is_empty(),
            "ServerTls::cert_pem holds no certificate"
        );
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .expect("ServerTls::key_pem holds no valid private key");
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots
                        .add(cert.expect("ServerTls::client_ca_pem is not valid PEM"))
                        .expect("ServerTls::client_ca_pem holds an unusable certificate");
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("build the client certificate verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .expect("ServerTls certificate and key do not match");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
