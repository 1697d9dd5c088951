//! `herald serve` against a recording receiver: response codes, matching, metadata,
//! duplicates, reload, shutdown, metrics, hostile input.

use std::time::{Duration, Instant};

use herald_testkit::{Recorder, Reply};

use crate::support::{Daemon, alert, flux_event, manifests, provider, request};

const WAIT: Duration = Duration::from_secs(20);

fn all_kustomizations(extra: &str) -> String {
    format!(
        "  eventSources:\n    - kind: Kustomization\n      name: '*'\n      namespace: apps\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn response_codes_match_flux() {
    let rec = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "flux-system", "generic", &rec.url()),
            alert("all", "flux-system", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);

    // Any path, any method: 202 with an empty body.
    let r = request(
        &d.events,
        "PUT",
        "/any/path",
        &[("Content-Type", "application/json")],
        flux_event("first").as_bytes(),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (202, 0));
    assert_eq!(
        r.headers.get("x-ratelimit-limit").map(String::as_str),
        Some("1")
    );
    assert!(
        r.headers
            .get("x-ratelimit-reset")
            .unwrap()
            .ends_with(" UTC")
    );

    // The same event again within the window: 429 with Flux's headers and body.
    let r = request(&d.events, "POST", "/", &[], flux_event("first").as_bytes()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body_str(), "Too Many Requests\n");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    assert_eq!(r.headers["retry-after"], r.headers["x-ratelimit-reset"]);

    // Malformed JSON: 400 with a JSON body that says what is wrong.
    let r = request(&d.events, "POST", "/", &[], b"{\"involvedObject\": ").await;
    assert_eq!(r.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid event JSON: EOF while parsing"),
        "{body}"
    );
    let r = request(&d.events, "POST", "/", &[], br#"{"timestamp":"yesterday"}"#).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body_str().contains("invalid RFC 3339 timestamp"),
        "{}",
        r.body_str()
    );

    // Exactly 3 MiB is accepted, one byte more is 413.
    let base = flux_event("");
    let pad = 3 * 1024 * 1024 - base.len();
    let exact = flux_event(&"x".repeat(pad));
    assert_eq!(exact.len(), 3 * 1024 * 1024);
    assert_eq!(
        request(&d.events, "POST", "/", &[], exact.as_bytes())
            .await
            .status,
        202
    );
    let over = flux_event(&"y".repeat(pad + 1));
    let r = request(&d.events, "POST", "/", &[], over.as_bytes()).await;
    assert_eq!((r.status, r.body.len()), (413, 0));

    rec.wait_for(2, WAIT).await;
    assert_eq!(
        d.metric("herald_events_received_total{code=\"202\"}").await,
        Some(2.0)
    );
    assert_eq!(
        d.metric("herald_events_received_total{code=\"429\"}").await,
        Some(1.0)
    );
    assert_eq!(
        d.metric("herald_events_received_total{code=\"400\"}").await,
        Some(2.0)
    );
    assert_eq!(
        d.metric("herald_events_received_total{code=\"413\"}").await,
        Some(1.0)
    );
    assert_eq!(d.metric("herald_events_duplicate_total").await, Some(1.0));
    assert!(d.metric("gotk_event_http_request_duration_seconds_count{code=\"202\",method=\"PUT\",handler=\"/\"}").await == Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn matching_and_metadata_rules() {
    let rec = Recorder::start().await;
    let other = Recorder::start().await;
    let text = [
        provider("hook", "apps", "generic", &rec.url()),
        provider("other", "apps", "generic", &other.url()),
        // Matches by name, adds eventMetadata and a summary; annotation and controller keys win in RFC 0008 order.
        alert("by-name", "apps", "hook", "  eventSources: [{kind: Kustomization, name: webapp}]\n  eventMetadata: {env: prod, revision: from-alert}\n  summary: from-summary"),
        // Errors only, excluding messages about dependencies.
        alert("errors", "apps", "other", "  eventSeverity: error\n  eventSources: [{kind: Kustomization, name: '*'}]\n  exclusionList: ['^Dependencies']"),
        // Another kind: never matches these events.
        alert("buckets", "apps", "other", "  eventSources: [{kind: Bucket, name: '*'}]"),
        // Suspended.
        alert("suspended", "apps", "other", "  suspend: true\n  eventSources: [{kind: Kustomization, name: '*'}]"),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);
    let event = serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": "webapp", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "info", "timestamp": "2022-10-28T07:26:19Z", "message": "Reconciliation finished", "reason": "ReconciliationSucceeded",
        "metadata": {
            "kustomize.toolkit.fluxcd.io/revision": "main@sha1:abc",
            "kustomize.toolkit.fluxcd.io/token": "internal",
            "kustomize.toolkit.fluxcd.io/checksum": "dropped",
            "event.toolkit.fluxcd.io/summary": "annotation-summary",
            "event.toolkit.fluxcd.io/team": "blue",
            "helm.toolkit.fluxcd.io/revision": "other group, dropped",
            "plain": "dropped"
        },
        "reportingController": "kustomize-controller"
    });
    assert_eq!(
        request(&d.events, "POST", "/", &[], event.to_string().as_bytes())
            .await
            .status,
        202
    );
    let got = rec.wait_for(1, WAIT).await;
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body["metadata"],
        serde_json::json!({"env": "prod", "revision": "main@sha1:abc", "summary": "from-summary", "team": "blue"})
    );
    // info event: the errors-only alert does not fire.
    let err_event = flux_event("Dependencies do not meet ready condition");
    assert_eq!(
        request(&d.events, "POST", "/", &[], err_event.as_bytes())
            .await
            .status,
        202
    );
    let err_event = flux_event("health check failed");
    assert_eq!(
        request(&d.events, "POST", "/", &[], err_event.as_bytes())
            .await
            .status,
        202
    );
    let got = other.wait_for(1, WAIT).await;
    assert!(got[0].body_str().contains("health check failed"));
    rec.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        other.requests().len(),
        1,
        "exclusion, kind and suspend rules"
    );
    d.wait_log("metadata key conflicts detected", WAIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_namespace_refs_can_be_blocked() {
    let rec = Recorder::start().await;
    let text = [
        provider("hook", "flux-system", "generic", &rec.url()),
        alert("all", "flux-system", "hook", &all_kustomizations("")),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &["--no-cross-namespace-refs"]);
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("m").as_bytes())
            .await
            .status,
        202
    );
    d.wait_log("cross-namespace references have been blocked", WAIT)
        .await;
    assert!(rec.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_keyed_like_flux() {
    let rec = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "flux-system", "generic", &rec.url()),
            alert("all", "flux-system", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    let with_rev = |rev: &str, sev: &str| {
        serde_json::json!({"involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": "webapp", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
            "severity": sev, "message": "Health check passed", "reason": "Succeeded",
            "metadata": {"kustomize.toolkit.fluxcd.io/revision": rev}}).to_string()
    };
    let codes = [
        request(
            &d.events,
            "POST",
            "/",
            &[],
            with_rev("rev1", "info").as_bytes(),
        )
        .await
        .status,
        request(
            &d.events,
            "POST",
            "/",
            &[],
            with_rev("rev1", "error").as_bytes(),
        )
        .await
        .status,
        request(
            &d.events,
            "POST",
            "/",
            &[],
            with_rev("rev2", "info").as_bytes(),
        )
        .await
        .status,
    ];
    assert_eq!(
        codes,
        [202, 429, 202],
        "severity is not part of the key; revision is"
    );
    rec.wait_for(2, WAIT).await;

    // `0s` turns suppression off.
    let d2 = Daemon::start(dir.path(), &["--rate-limit-interval", "0s"]);
    for _ in 0..2 {
        let r = request(
            &d2.events,
            "POST",
            "/",
            &[],
            with_rev("rev1", "info").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 202);
        assert!(!r.headers.contains_key("x-ratelimit-limit"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_reload_takes_each_object_on_its_own() {
    let first = Recorder::start().await;
    let second = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "apps", "generic", &first.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("one").as_bytes())
            .await
            .status,
        202
    );
    first.wait_for(1, WAIT).await;

    // A good change is picked up by watching.
    let file = dir.path().join("manifests.yaml");
    std::fs::write(
        &file,
        [
            provider("hook", "apps", "generic", &second.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    )
    .unwrap();
    d.wait_log("manifests reloaded", WAIT).await;
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("two").as_bytes())
            .await
            .status,
        202
    );
    second.wait_for(1, WAIT).await;

    // A change that breaks the Provider makes it, and its Alert, not ready: events for them
    // are counted and logged once, not delivered, and not silently dropped.
    std::fs::write(
        &file,
        [
            provider("hook", "apps", "slak", &first.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    )
    .unwrap();
    d.wait_log("Provider apps/hook is not ready", WAIT).await;
    assert!(d.logs().contains("unknown provider type"));
    for message in ["three", "four"] {
        assert_eq!(
            request(&d.events, "POST", "/", &[], flux_event(message).as_bytes())
                .await
                .status,
            202
        );
    }
    d.wait_log("event not delivered: the Alert is not ready", WAIT)
        .await;
    assert_eq!(
        d.metric("herald_alert_events_dropped_total{namespace=\"apps\",name=\"all\"}")
            .await,
        Some(2.0)
    );
    assert_eq!(
        d.logs()
            .matches("event not delivered: the Alert is not ready")
            .count(),
        1,
        "logged once per Alert and reload"
    );
    assert_eq!(
        d.metric("herald_object_ready{kind=\"Provider\",namespace=\"apps\",name=\"hook\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(
        d.metric("herald_config_reloads_total{result=\"success\"}")
            .await,
        Some(2.0)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.requests().len(), 1);
    assert_eq!(second.requests().len(), 1);

    // SIGHUP reloads too.
    std::fs::write(
        &file,
        [
            provider("hook", "apps", "generic", &first.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    )
    .unwrap();
    d.signal("HUP");
    d.wait_log("SIGHUP", WAIT).await;
    d.wait_log("Provider apps/hook is ready", WAIT).await;
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("five").as_bytes())
            .await
            .status,
        202
    );
    let got = first.wait_for(2, WAIT).await;
    assert!(got[1].body_str().contains("five"));
    assert_eq!(
        d.metric("herald_object_ready{kind=\"Provider\",namespace=\"apps\",name=\"hook\"}")
            .await,
        Some(1.0)
    );
}

/// `--require-all-objects`: today's all-or-nothing for those who want it. A reload with a
/// broken object is rejected whole and the previous set keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn require_all_objects_keeps_the_last_good_set() {
    let rec = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "apps", "generic", &rec.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &["--require-all-objects"]);
    std::fs::write(
        dir.path().join("more.yaml"),
        provider("other", "apps", "slak", &rec.url()),
    )
    .unwrap();
    d.wait_log("--require-all-objects: new manifests rejected", WAIT)
        .await;
    assert!(d.logs().contains("unknown provider type"));
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("still").as_bytes())
            .await
            .status,
        202
    );
    rec.wait_for(1, WAIT).await;
    assert_eq!(
        d.metric("herald_config_reloads_total{result=\"failure\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_deliveries_in_flight() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(200).delay(Duration::from_millis(1500)));
    let dir = manifests(
        &[
            provider("hook", "apps", "generic", &rec.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let mut d = Daemon::start(dir.path(), &[]);
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("slow").as_bytes())
            .await
            .status,
        202
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.signal("TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < WAIT,
            "herald did not exit:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(
        rec.requests().len(),
        1,
        "the delivery in flight was finished"
    );
    assert!(
        d.logs().contains("all accepted deliveries finished"),
        "{}",
        d.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_health_and_metrics() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(400).body("nope"));
    let dir = manifests(
        &[
            provider("hook", "apps", "generic", &rec.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(
        request(&d.health, "GET", "/healthz", &[], b"").await.status,
        200
    );
    assert_eq!(
        request(&d.health, "GET", "/readyz", &[], b"").await.status,
        200
    );
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("a").as_bytes())
            .await
            .status,
        202
    );
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("b").as_bytes())
            .await
            .status,
        202
    );
    rec.wait_for(2, WAIT).await;
    let labels = "namespace=\"apps\",name=\"hook\",type=\"generic\"";
    let success = format!("herald_deliveries_total{{{labels},outcome=\"success\"}}");
    assert_eq!(d.wait_metric(&success, 1.0, WAIT).await, Some(1.0));
    let failure = format!("herald_deliveries_total{{{labels},outcome=\"failure\"}}");
    assert_eq!(d.wait_metric(&failure, 1.0, WAIT).await, Some(1.0));
    let durations = "herald_delivery_duration_seconds_count{type=\"generic\"}";
    assert_eq!(d.wait_metric(durations, 2.0, WAIT).await, Some(2.0));
    // An outcome is counted once known, and leaves the queue once it is committed.
    assert_eq!(
        d.wait_metric("herald_queue_depth", 0.0, WAIT).await,
        Some(0.0)
    );
    d.wait_log("failed to send notification", WAIT).await;
    assert!(d.logs().contains("HTTP 400 Bad Request: nope"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_floods_do_not_stop_good_events() {
    let rec = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "apps", "generic", &rec.url()),
            alert("all", "apps", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let addr = d.events.clone();
        tasks.push(tokio::spawn(async move {
            let junk: &[u8] = match i % 4 {
                0 => b"not json",
                1 => b"{\"involvedObject\": [1,2,3]}",
                2 => b"\xff\xfe\x00",
                _ => b"[[[[[[[[[[[[[[[[[[[[",
            };
            request(&addr, "POST", "/", &[], junk).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 400);
    }
    assert_eq!(
        request(&d.events, "POST", "/", &[], flux_event("good").as_bytes())
            .await
            .status,
        202
    );
    let got = rec.wait_for(1, WAIT).await;
    assert!(got[0].body_str().contains("good"));
}

/// Event bodies are decoded as Go's `encoding/json` decodes them into Flux's Event: only a JSON
/// object is an event (an array is refused with the reason), a repeated field takes its last
/// value, field names match case-insensitively, and `null` is the zero event.
#[tokio::test(flavor = "multi_thread")]
async fn event_bodies_decode_as_in_go() {
    let rec = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "flux-system", "generic", &rec.url()),
            alert("all", "flux-system", "hook", &all_kustomizations("")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &["--rate-limit-interval", "0s"]);

    let array = format!("[{}]", flux_event("in an array"));
    let r = request(&d.events, "POST", "/", &[], array.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["error"],
        "invalid event JSON: invalid type: sequence, expected a JSON object (a Flux event) at line 1 column 0"
    );

    let r = request(&d.events, "POST", "/", &[], b"null").await;
    assert_eq!((r.status, r.body.len()), (202, 0), "{}", r.body_str());

    let twice = flux_event("first").replacen(
        "\"message\"",
        "\"Message\":\"second\",\"message\":\"third\",\"message\"",
        1,
    );
    let twice = twice.replace("\"message\":\"first\"", "\"MESSAGE\":\"last\"");
    let r = request(&d.events, "POST", "/", &[], twice.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.body_str());
    let got = rec.wait_for(1, WAIT).await;
    let delivered: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(delivered["message"], "last", "{delivered}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rec.requests().len(), 1, "the array was not dispatched");
}
