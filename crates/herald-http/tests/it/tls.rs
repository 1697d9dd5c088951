//! Custom CA and client certificates against the HTTPS recorder.

use herald_core::{SecretBytes, TlsMaterial};
use herald_http::HttpClient;
use herald_testkit::{Recorder, ServerTls, TestCa};

use crate::{client, config, post};

fn pem(s: &str) -> Option<SecretBytes> {
    Some(SecretBytes::new(s.as_bytes().to_vec()))
}

#[tokio::test]
async fn a_custom_ca_is_trusted_and_nothing_else() {
    let ca = TestCa::new();
    let rec = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    assert!(rec.url().starts_with("https://127.0.0.1:"));

    let mut cfg = config(&format!("{}/secure", rec.url()));
    cfg.tls.ca_pem = pem(&ca.ca_pem());
    let response = post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(rec.requests()[0].path, "/secure");

    // System roots do not know the test CA: a certificate error, not retried.
    cfg.tls = TlsMaterial::default();
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}/…: TLS handshake failed: invalid peer certificate: UnknownIssuer",
            rec.url()
        )
    );
    assert!(!err.is_retryable());
    // Another CA replaces the system roots and does not know the server either.
    cfg.tls.ca_pem = pem(&TestCa::new().ca_pem());
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    assert_eq!(
        rec.connections(),
        3,
        "one connection per delivery: certificate errors are not retried"
    );
    assert_eq!(rec.requests().len(), 1);
}

#[tokio::test]
async fn client_certificates_open_an_mtls_server() {
    let ca = TestCa::new();
    let rec = Recorder::start_tls(ServerTls::from_ca(&ca).with_client_auth(&ca)).await;
    let (cert, key) = ca.client_cert("herald");
    let mut cfg = config(&rec.url());
    cfg.tls = TlsMaterial {
        ca_pem: pem(&ca.ca_pem()),
        cert_pem: pem(&cert),
        key_pem: pem(&key),
    };
    post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(rec.requests().len(), 1);

    cfg.tls.cert_pem = None;
    cfg.tls.key_pem = None;
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("TLS handshake failed: received fatal alert: CertificateRequired"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(rec.requests().len(), 1);
    assert_eq!(rec.connections(), 2);

    // A certificate from a CA the server does not trust.
    let other = TestCa::new();
    let (cert, key) = other.client_cert("intruder");
    cfg.tls.cert_pem = pem(&cert);
    cfg.tls.key_pem = pem(&key);
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("TLS handshake failed: received fatal alert"),
        "{err}"
    );
    assert_eq!(rec.requests().len(), 1);
}

#[test]
fn bad_pem_is_a_build_error() {
    let mut cfg = config("https://127.0.0.1:1/");
    cfg.tls.ca_pem =
        pem("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
    let err = HttpClient::from_config(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("spec.certSecretRef: failed to parse CA certificate: "),
        "{err}"
    );
    cfg.tls.ca_pem = pem("garbage");
    let err = HttpClient::from_config(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("spec.certSecretRef: failed to parse CA certificate"),
        "{err}"
    );

    let ca = TestCa::new();
    let (cert, _) = ca.client_cert("c");
    cfg.tls = TlsMaterial {
        ca_pem: None,
        cert_pem: pem(&cert),
        key_pem: pem("-----BEGIN PRIVATE KEY-----\nAAAA\n"),
    };
    let err = HttpClient::from_config(&cfg).unwrap_err().to_string();
    assert_eq!(
        err,
        "spec.certSecretRef: failed to parse private key: a PEM block has no END line"
    );
}

#[test]
fn debug_shows_no_tls_material() {
    let ca = TestCa::new();
    let (cert, key) = ca.client_cert("c");
    let mut cfg = config("https://127.0.0.1:1/");
    cfg.tls = TlsMaterial {
        ca_pem: pem(&ca.ca_pem()),
        cert_pem: pem(&cert),
        key_pem: pem(&key),
    };
    let shown = format!("{:?}", HttpClient::from_config(&cfg).unwrap());
    assert!(
        shown.contains("custom_ca: true") && shown.contains("client_cert: true"),
        "{shown}"
    );
    assert!(!shown.contains("BEGIN"), "{shown}");
}
