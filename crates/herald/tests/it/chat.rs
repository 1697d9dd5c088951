//! The chat family through `herald serve`: Zulip on a recording server, through its normal
//! manifest configuration (address, channel, a Secret with the bot's email and API key).

use std::time::Duration;

use herald_http::form;

use crate::support::{Daemon, alert, flux_event, manifests, provider, request};

#[tokio::test(flavor = "multi_thread")]
async fn zulip_gets_the_flux_status_post_through_the_daemon() {
    let zulip = herald_testkit::Recorder::start().await;
    let dir = manifests(
        &[
            provider("zulip", "apps", "zulip", &zulip.url())
                + "  channel: deployments/flux events\n  secretRef: {name: zulip-bot}\n",
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: zulip-bot, namespace: apps}\nstringData:\n  username: flux-bot@zulip.example.com\n  password: zulip-e2e-api-key\n".to_owned(),
            alert(
                "to-zulip",
                "apps",
                "zulip",
                "  eventSources: [{kind: Kustomization, name: '*'}]\n  eventMetadata: {env: e2e}",
            ),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    let r = request(
        &d.events,
        "POST",
        "/",
        &[],
        flux_event("validation error from the e2e test").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202);
    let got = zulip.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "herald logs:\n{}", d.logs());
    let got = &got[0];
    assert_eq!(got.path, "/api/v1/messages");
    assert_eq!(
        got.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // base64("flux-bot@zulip.example.com:zulip-e2e-api-key")
    assert_eq!(
        got.header("authorization"),
        Some("Basic Zmx1eC1ib3RAenVsaXAuZXhhbXBsZS5jb206enVsaXAtZTJlLWFwaS1rZXk=")
    );
    let content = "## Flux Status\n\n⚠️ Kustomization/apps/webapp\n\nvalidation error from the e2e test\n\nMetadata:\n* `env`: e2e\n* `revision`: main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1\n";
    assert_eq!(
        got.body_str(),
        form::encode([
            ("type", "stream"),
            ("to", "deployments"),
            ("topic", "flux events"),
            ("content", content),
        ])
    );
    assert!(
        got.body_str()
            .ends_with("&to=deployments&topic=flux+events&type=stream"),
        "{}",
        got.body_str()
    );
}
