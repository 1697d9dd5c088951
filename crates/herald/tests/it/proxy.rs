//! Proxies through the real binary (`herald send`): `http://` destinations go to an HTTP proxy
//! in absolute form and `https://` ones through `CONNECT`, as Go sends them, and an `https://`
//! proxy is spoken to over TLS. Also the system's CA roots, for Providers without a CA of their
//! own.

use std::path::Path;
use std::process::Output;

use herald_testkit::{Recorder, RecordingProxy, ServerTls, TestCa};

use crate::support::{herald, manifests, repo_root};

/// A `generic` Provider `apps/<name>` to `address` through the proxy of Secret `<name>-proxy`,
/// with the CA of Secret `<name>-ca`.
fn provider(name: &str, address: &str, proxy: &str, ca_pem: &str) -> String {
    let ca = ca_pem.replace('\n', "\n    ");
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  type: generic\n  address: {address}\n  proxySecretRef: {{name: {name}-proxy}}\n  certSecretRef: {{name: {name}-ca}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-proxy, namespace: apps}}\nstringData:\n  address: {proxy}\n  username: herald\n  password: proxy-pass-123\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-ca, namespace: apps}}\nstringData:\n  ca.crt: |\n    {ca}\n"
    )
}

async fn send(dir: &Path, provider: &str) -> Output {
    send_with_env(dir, provider, &[]).await
}

/// `herald send --provider <provider>` of the example event, with `env` set.
async fn send_with_env(dir: &Path, provider: &str, env: &[(&str, &Path)]) -> Output {
    let mut cmd = herald();
    cmd.args(["send", "--provider", provider, "--event"])
        .arg(repo_root().join("examples/events/kustomization-ready.json"))
        .arg("--manifests")
        .arg(dir);
    for (key, value) in env {
        cmd.env(key, value);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn http_targets_are_forwarded_and_https_ones_tunnelled_through_plain_and_tls_proxies() {
    let ca = TestCa::new();
    let plain = Recorder::start().await;
    let secure = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    let http_proxy = RecordingProxy::start().await;
    let tls_proxy = RecordingProxy::start_tls(ServerTls::from_ca(&ca)).await;
    let pem = ca.ca_pem();
    let text = [
        provider(
            "plain",
            &format!("{}/flux", plain.url()),
            &http_proxy.url(),
            &pem,
        ),
        provider(
            "secure",
            &format!("{}/flux", secure.url()),
            &http_proxy.url(),
            &pem,
        ),
        provider(
            "plain-tls",
            &format!("{}/flux", plain.url()),
            &tls_proxy.url(),
            &pem,
        ),
        provider(
            "secure-tls",
            &format!("{}/flux", secure.url()),
            &tls_proxy.url(),
            &pem,
        ),
    ]
    .concat();
    let dir = manifests(&text);
    for name in ["plain", "secure", "plain-tls", "secure-tls"] {
        let out = send(dir.path(), &format!("apps/{name}")).await;
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // base64("herald:proxy-pass-123")
    let auth = Some("Basic aGVyYWxkOnByb3h5LXBhc3MtMTIz");
    for proxy in [&http_proxy, &tls_proxy] {
        let seen = proxy.requests();
        let lines: Vec<(&str, &str, Option<&str>)> = seen
            .iter()
            .map(|r| {
                (
                    r.method.as_str(),
                    r.target.as_str(),
                    r.header("proxy-authorization"),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("POST", format!("{}/flux", plain.url()).as_str(), auth),
                ("CONNECT", secure.addr().to_string().as_str(), auth),
            ],
            "{}",
            proxy.url()
        );
    }
    for rec in [&plain, &secure] {
        let got = rec.requests();
        assert_eq!(got.len(), 2, "{}", rec.url());
        assert!(got.iter().all(|r| r.path == "/flux"));
        assert!(
            got.iter()
                .all(|r| r.header("proxy-authorization").is_none())
        );
    }
}

/// `herald send` to an `https://` Provider without `certSecretRef`, the system's roots being
/// only the PEM file `roots` (rustls-native-certs reads `SSL_CERT_FILE` and `SSL_CERT_DIR`).
async fn send_with_system_roots(address: &str, roots: &Path) -> Output {
    let text = format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: public, namespace: apps}}\nspec:\n  type: generic\n  address: {address}\n"
    );
    let dir = manifests(&text);
    let no_dir = roots.with_extension("none");
    let env = [("SSL_CERT_FILE", roots), ("SSL_CERT_DIR", no_dir.as_path())];
    send_with_env(dir.path(), "apps/public", &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_without_a_ca_of_its_own_is_checked_against_the_system_roots() {
    let ca = TestCa::new();
    let secure = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    let files = tempfile::tempdir().unwrap();
    let ours = files.path().join("ours.pem");
    std::fs::write(&ours, ca.ca_pem()).unwrap();
    let theirs = files.path().join("theirs.pem");
    std::fs::write(&theirs, TestCa::new().ca_pem()).unwrap();
    let address = format!("{}/flux", secure.url());

    let out = send_with_system_roots(&address, &ours).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(secure.requests().len(), 1);

    let out = send_with_system_roots(&address, &theirs).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );
    assert_eq!(secure.requests().len(), 1);
}
