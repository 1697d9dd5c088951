//! Several replicas sharing one outbox in NATS JetStream (`herald serve --outbox`), through the
//! real binary, on a real 3-node `nats-server` cluster on loopback (herald-testkit's
//! `peers/nats.sh`, which installs Debian's nats-server): a flood spread over the replicas with
//! a flapping sink, while one replica and then one NATS server are killed; Flux's duplicate
//! window shared by the replicas; and the Provider counts, quotas and statuses of the whole
//! cluster.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_testkit::{Recorder, Reply};
use serde_json::Value;

use crate::outbox::{all_kustomizations, delivered, eventually, hook, post, wait_delivered};
use crate::support::{Daemon, alert, manifests, provider};

/// A NATS cluster of three servers with JetStream, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    facts: HashMap<String, String>,
}

impl Cluster {
    /// `None` (said loudly) when nats-server cannot be installed outside CI.
    fn start() -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let facts = herald_testkit::start_peer_with(
            "nats.sh",
            dir.path(),
            "auto",
            &[("NATS_CLUSTER", "3")],
        )?;
        Some(Cluster { dir, facts })
    }

    /// Every server's URL, comma-separated, for `--outbox`.
    fn url(&self) -> &str {
        &self.facts["URL"]
    }

    fn node(&self, command: &str, node: usize, kill: bool) {
        let node = node.to_string();
        let mut args = vec![command, &self.facts["PORT"], "--node", &node];
        if kill {
            args.push("--kill");
        }
        herald_testkit::run_peer("nats.sh", self.dir.path(), &args);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = herald_testkit::peer_command("nats.sh", self.dir.path())
            .args(["stop", "--all"])
            .output();
    }
}

/// A replica of herald on the shared outbox.
fn replica(manifests: &Path, cluster: &Cluster, name: &str, extra: &[&str]) -> Daemon {
    let mut args = vec!["--outbox", cluster.url(), "--replica-name", name];
    args.extend_from_slice(extra);
    Daemon::start(manifests, &args)
}

/// A Flux event about Kustomization `apps/<object>` with `message`.
fn event(object: &str, message: &str) -> String {
    serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": object,
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "info", "timestamp": "2026-12-03T10:00:00Z",
        "message": message, "reason": "Flood",
        "reportingController": "kustomize-controller"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_and_dead_letters_are_shared_by_the_replicas() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let rec = Recorder::start().await;
    let dir = manifests(&hook("hook", &rec.url()));
    let a = replica(dir.path(), &cluster, "a", &[]);
    let b = replica(dir.path(), &cluster, "b", &[]);
    // The same event on two replicas within the interval: one 202, one 429.
    let body = event("webapp", "one event, two replicas");
    assert_eq!(post(&a.events, &body).await, Some(202));
    assert_eq!(
        post(&b.events, &body).await,
        Some(429),
        "a duplicate within the interval on another replica"
    );
    let seen = wait_delivered(&rec, 1, Duration::from_secs(30)).await;
    assert_eq!(seen.get("one event, two replicas"), Some(&1));

    // A delivery the service refuses for good is dead on every replica; retried through the
    // other one once the service is fixed, it is delivered.
    rec.set_default_reply(Reply::status(400));
    assert_eq!(
        post(&a.events, &event("webapp", "refused")).await,
        Some(202)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let v = crate::outbox::api(&b, "/api/v1/deliveries?state=dead").await;
        if let Some(d) = v["deliveries"].as_array().and_then(|d| d.first()).cloned() {
            break d;
        }
        assert!(Instant::now() < deadline, "the refused delivery is dead");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead["dead_reason"], "permanent", "{dead}");
    rec.set_default_reply(Reply::status(200));
    let retried = crate::support::request(
        &b.api,
        "POST",
        "/api/v1/deliveries/retry?provider=flux-system%2Fhook",
        &[],
        b"",
    )
    .await;
    assert_eq!(retried.status, 200, "{}", retried.body_str());
    let seen = wait_delivered(&rec, 2, Duration::from_secs(30)).await;
    assert_eq!(seen.get("refused"), Some(&1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(delivered(&rec.requests()), seen, "nothing delivered twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_jetstream_quorum_a_replica_refuses_events_and_serves_again_once_it_is_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let rec = Recorder::start().await;
    let dir = manifests(&hook("hook", &rec.url()));
    let a = replica(dir.path(), &cluster, "a", &["--rate-limit-interval", "0s"]);
    let ready = |d: &Daemon| {
        let health = d.health.clone();
        async move {
            crate::support::request(&health, "GET", "/readyz", &[], b"")
                .await
                .status
        }
    };
    assert_eq!(ready(&a).await, 200);
    // Two of three servers down: JetStream has no quorum, though a server still answers.
    for node in 2..=3 {
        cluster.node("down", node, true);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(&a).await != 503 {
        assert!(Instant::now() < deadline, "/readyz fails without JetStream");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        post(&a.events, &event("webapp", "while away")).await,
        Some(503),
        "an event that cannot be stored is refused, so that the emitter retries"
    );
    assert!(delivered(&rec.requests()).is_empty());

    // The servers come back: the replica is ready again by itself, and what it accepts then is
    // delivered.
    for node in 2..=3 {
        cluster.node("up", node, false);
    }
    let back = Instant::now();
    while ready(&a).await != 200 {
        assert!(
            back.elapsed() < RECOVERY,
            "/readyz is 200 again once JetStream has its quorum"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready_after = back.elapsed();
    while post(&a.events, &event("webapp", "after the outage")).await != Some(202) {
        assert!(back.elapsed() < RECOVERY, "events are accepted again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let accepted_after = back.elapsed();
    let seen = wait_delivered(&rec, 1, RECOVERY).await;
    assert_eq!(
        seen.get("after the outage"),
        Some(&1),
        "ready after {ready_after:?}, accepting after {accepted_after:?}, but not delivered within {RECOVERY:?}\n{}",
        a.logs()
    );
    eprintln!(
        "after the quorum came back: ready in {ready_after:?}, accepting in {accepted_after:?}, delivered in {:?}",
        back.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_started_before_jetstream_has_a_quorum_waits_for_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start() else {
        return;
    };
    // One server of three: JetStream cannot make its streams, and asking times out.
    for node in 2..=3 {
        cluster.node("down", node, true);
    }
    let rec = Recorder::start().await;
    let dir = manifests(&hook("hook", &rec.url()));
    let starting = {
        let (dir, url) = (dir.path().to_owned(), cluster.url().to_owned());
        tokio::task::spawn_blocking(move || {
            let args = ["--outbox", &url, "--replica-name", "early"];
            Daemon::start_within(&dir, &args, RECOVERY)
        })
    };
    // Longer than a JetStream request may take: its first attempts time out.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for node in 2..=3 {
        cluster.node("up", node, false);
    }
    // It waits for JetStream instead of exiting, and then serves.
    let early = starting.await.unwrap();
    assert_eq!(
        post(&early.events, &event("webapp", "after the wait")).await,
        Some(202)
    );
    let seen = wait_delivered(&rec, 1, RECOVERY).await;
    assert_eq!(seen.get("after the wait"), Some(&1), "{}", early.logs());
}

/// How long a replica may take to serve again once JetStream has its quorum back: the servers'
/// own recovery (elections, catching up) takes most of it.
const RECOVERY: Duration = Duration::from_secs(90);

/// `flux-system/<name>`'s entry of `/api/v1/providers` on `d`, and the answer's scope.
async fn counts_of(d: &Daemon, name: &str) -> (Value, Value) {
    let v = crate::outbox::api(d, "/api/v1/providers").await;
    let entry = v["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["provider"] == format!("flux-system/{name}"))
        .cloned()
        .unwrap_or(Value::Null);
    (
        entry,
        serde_json::json!({"scope": v["scope"], "replica": v["replica"]}),
    )
}

/// Waits until every replica reports `want` waiting (all of them in flight) and `dead` dead
/// for `flux-system/hole`, each live replica's share the same on every one; returns the shares.
async fn cluster_agrees(replicas: &[Daemon], want: u64, dead: u64) -> Value {
    let names: Vec<String> = (1..=replicas.len()).map(|i| format!("r{i}")).collect();
    let shares = Arc::new(Mutex::new(Value::Null));
    let what = format!("every replica counts {want} waiting and {dead} dead for the cluster");
    eventually(&what, Duration::from_secs(20), || {
        let (names, shares) = (names.clone(), shares.clone());
        async move {
            let mut seen = Vec::new();
            for (d, name) in replicas.iter().zip(&names) {
                let (hole, scope) = counts_of(d, "hole").await;
                let expected_scope = serde_json::json!({"scope": "cluster", "replica": name});
                if scope != expected_scope {
                    return Err(format!("{name}: {scope}"));
                }
                let sums = ["pending", "in_flight"].map(|f| {
                    hole["replicas"]
                        .as_object()
                        .into_iter()
                        .flat_map(|r| r.values())
                        .filter_map(|c| c[f].as_u64())
                        .sum::<u64>()
                });
                let live = hole["replicas"].as_object().map(|r| r.len());
                let counts = (hole["pending"].as_u64(), hole["in_flight"].as_u64());
                if counts != (Some(want), Some(want))
                    || sums != [want, want]
                    || hole["dead"].as_u64() != Some(dead)
                    || live != Some(replicas.len())
                {
                    return Err(format!("{name}: {hole}"));
                }
                seen.push(hole["replicas"].clone());
            }
            if seen.iter().any(|s| *s != seen[0]) {
                return Err(format!("the shares differ: {seen:?}"));
            }
            *shares.lock().unwrap() = seen[0].clone();
            Ok(())
        }
    })
    .await;
    shares.lock().unwrap().clone()
}

/// Three replicas, a healthy Provider and a blackholed one (it takes connections and never
/// answers, so each of its deliveries stays in flight): every replica reports the cluster's
/// counts, and the blackholed Provider's quota holds for the cluster, whichever replica an
/// event comes to.
#[tokio::test(flavor = "multi_thread")]
async fn every_replica_reports_the_cluster_counts_and_the_quota_holds_for_the_cluster() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let rec = Recorder::start().await;
    let (hole, _hole) = crate::engine::black_hole();
    let yaml = [
        hook("hook", &rec.url()),
        provider("hole", "flux-system", "generic", &format!("http://{hole}")),
        "  timeout: 10m\n".to_owned(),
        alert("to-hole", "flux-system", "hole", &all_kustomizations()),
    ]
    .concat();
    let dir = manifests(&yaml);
    const QUOTA: u64 = 6;
    let quota = QUOTA.to_string();
    let extra = ["--provider-max-pending", quota.as_str()];
    let replicas: Vec<Daemon> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| replica(dir.path(), &cluster, n, &extra))
        .collect();
    // One event at a time, round the replicas, each about its own object (so that every
    // delivery to the hole is in flight at once); each waits until all replicas count it.
    for i in 0..QUOTA as usize {
        let to = &replicas[i % replicas.len()];
        let body = event(&format!("obj-{i}"), &format!("within the quota {i}"));
        assert_eq!(post(&to.events, &body).await, Some(202), "event {i}");
        cluster_agrees(&replicas, i as u64 + 1, 0).await;
    }
    // Per process, as Prometheus counts: the replicas' gauges add up to the cluster's count.
    let labels = "{namespace=\"flux-system\",name=\"hole\"}";
    let mut gauges = 0.0;
    for d in &replicas {
        let pending = format!("herald_provider_pending{labels}");
        gauges += d.metric(&pending).await.unwrap_or(0.0);
    }
    assert_eq!(gauges, QUOTA as f64, "the gauges are each replica's share");
    // The quota is full for the cluster: each replica refuses the hole's next delivery (dead,
    // reason quota), though it holds less than the quota itself; the event's other delivery
    // is accepted.
    for (i, d) in replicas.iter().enumerate() {
        let body = event(&format!("over-{i}"), &format!("over the quota {i}"));
        assert_eq!(post(&d.events, &body).await, Some(202), "over {i}");
    }
    let shares = cluster_agrees(&replicas, QUOTA, 3).await;
    let v = crate::outbox::api(
        &replicas[0],
        "/api/v1/deliveries?state=dead&provider=flux-system%2Fhole",
    )
    .await;
    let dead = v["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(dead.len(), 3, "{v}");
    for r in &dead {
        assert_eq!(r["dead_reason"], "quota", "{r}");
        let error = r["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("already has 6 deliveries waiting in the cluster"),
            "{r}"
        );
    }
    let seen = wait_delivered(&rec, QUOTA as usize + 3, Duration::from_secs(30)).await;
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    // Delivered: within a heartbeat or two every replica counts none waiting.
    for d in &replicas {
        eventually(
            "the healthy Provider has none waiting",
            Duration::from_secs(10),
            || async {
                let (hook, _) = counts_of(d, "hook").await;
                match (hook["pending"].as_u64(), hook["dead"].as_u64()) {
                    (Some(0), Some(0)) => Ok(()),
                    _ => Err(hook.to_string()),
                }
            },
        )
        .await;
    }
    eprintln!("the hole's deliveries per replica: {shares}");
}

/// An RFC 3339 time of the API (UTC) in a form that orders as time does: its seconds, then
/// its fraction.
fn instant(t: &Value) -> Option<(String, f64)> {
    let t = t.as_str()?.strip_suffix('Z')?;
    let (seconds, fraction) = t.split_once('.').unwrap_or((t, "0"));
    Some((seconds.to_owned(), format!("0.{fraction}").parse().ok()?))
}

/// Waits until `check` holds for `flux-system/hook` on every replica, and `field` is the same
/// on all; returns that entry as the first replica sees it.
async fn hook_status_agrees(
    replicas: &[Daemon],
    what: &str,
    field: &str,
    check: fn(&Value, &str) -> Result<(), String>,
) -> Value {
    let last = Arc::new(Mutex::new(Value::Null));
    eventually(what, Duration::from_secs(30), || {
        let last = last.clone();
        async move {
            let mut seen = Vec::new();
            for d in replicas {
                let (hook, _) = counts_of(d, "hook").await;
                let readyz = crate::support::request(&d.health, "GET", "/readyz", &[], b"").await;
                check(&hook, readyz.body_str().as_ref())?;
                seen.push(hook);
            }
            if seen.iter().any(|h| h[field] != seen[0][field]) {
                let fields: Vec<&Value> = seen.iter().map(|h| &h[field]).collect();
                return Err(format!("the replicas' {field} differ: {fields:?}"));
            }
            *last.lock().unwrap() = seen[0].clone();
            Ok(())
        }
    })
    .await;
    last.lock().unwrap().clone()
}

/// Three replicas, one Provider whose service fails and then recovers: whichever replicas make
/// its deliveries, every replica's `/api/v1/providers` and `/readyz` say the cluster's status
/// (failing since the same moment, degraded; then recovered, at the same last success).
#[tokio::test(flavor = "multi_thread")]
async fn every_replica_reports_the_cluster_status_of_a_provider() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let rec = Recorder::start().await;
    rec.set_default_reply(Reply::status(500));
    let dir = manifests(&hook("hook", &rec.url()));
    let extra = ["--retry-backoff-max", "1s", "--degraded-after", "2s"];
    let replicas: Vec<Daemon> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| replica(dir.path(), &cluster, n, &extra))
        .collect();
    // A few objects, so a few partitions: one replica or more makes the deliveries, and the
    // others make none.
    for i in 0..4 {
        let body = event(&format!("obj-{i}"), &format!("status {i}"));
        assert_eq!(
            post(&replicas[0].events, &body).await,
            Some(202),
            "event {i}"
        );
    }
    let failing = hook_status_agrees(
        &replicas,
        "every replica says the hook fails, since the same moment, degraded",
        "failing_since",
        |hook, readyz| {
            let failing = hook["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("500"))
                && hook["consecutive_failures"].as_u64() > Some(0)
                && hook["failing_since"].is_string()
                && hook["degraded"] == true;
            if !failing || !readyz.contains("degraded: 1 provider(s) failing") {
                return Err(format!("{hook}; /readyz: {readyz}"));
            }
            Ok(())
        },
    )
    .await;
    rec.set_default_reply(Reply::status(200));
    let recovered = hook_status_agrees(
        &replicas,
        "every replica says the hook delivers again, at the same last success",
        "last_success",
        |hook, readyz| {
            let recovered = hook["consecutive_failures"] == 0
                && hook["failing_since"].is_null()
                && hook["degraded"] == false
                && hook["last_error"].is_string()
                && instant(&hook["last_success"]) > instant(&hook["last_error_time"]);
            if !recovered || readyz != "ok\n" {
                return Err(format!("{hook}; /readyz: {readyz}"));
            }
            Ok(())
        },
    )
    .await;
    let seen = wait_delivered(&rec, 4, Duration::from_secs(30)).await;
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    eprintln!("failing: {failing}\nrecovered: {recovered}");
}

/// The first delivery of each message, per object, in the order the sink got them.
fn first_seen_per_object(rec: &Recorder) -> HashMap<String, Vec<String>> {
    let mut seen = HashSet::new();
    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    for r in rec.requests().iter().filter(|r| r.answered == 200) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let message = v["message"].as_str().unwrap().to_owned();
        let object = v["involvedObject"]["name"].as_str().unwrap().to_owned();
        if seen.insert(message.clone()) {
            order.entry(object).or_default().push(message);
        }
    }
    order
}

/// What dies during the flood.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9` of one of the three replicas (not restarted).
    Replica,
    /// `kill -9` of one of the three NATS servers, started again 6 s later.
    NatsServer,
    /// Both at the same moment.
    Both,
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_lose_nothing_when_one_replica_is_killed_mid_flood() {
    eprintln!("{}", flood_with(Fault::Replica).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_lose_nothing_when_one_nats_server_is_killed_mid_flood() {
    eprintln!("{}", flood_with(Fault::NatsServer).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_lose_nothing_when_a_replica_and_a_nats_server_die_together() {
    eprintln!("{}", flood_with(Fault::Both).await);
}

/// One cluster test at a time: each starts three NATS servers and three heralds (under
/// nextest, where each test is a process of its own, the `nats-cluster` test group does it).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A flood of distinct events spread over three replicas, with a flapping sink, while `fault`
/// happens: every event answered 202 is delivered, in order per object.
async fn flood_with(fault: Fault) -> String {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cluster) = Cluster::start() else {
        return "skipped: nats-server cannot be installed".to_owned();
    };
    let rec = Arc::new(Recorder::start().await);
    let dir = manifests(&hook("hook", &rec.url()));
    let extra = ["--retry-backoff-max", "1s", "--rate-limit-interval", "0s"];
    let replicas: Vec<Daemon> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| replica(dir.path(), &cluster, n, &extra))
        .collect();
    let addrs: Vec<String> = replicas.iter().map(|d| d.events.clone()).collect();
    let alive = Arc::new(Mutex::new(vec![true; 3]));
    let flood_for = Duration::from_secs(20);
    let started = Instant::now();
    // Each client owns four objects and posts their events one after another (each waits
    // for its 202), round the live replicas: the order per object is the order of posting.
    let posted: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let retried = Arc::new(Mutex::new(HashSet::new()));
    let mut clients = Vec::new();
    for c in 0..4usize {
        let (addrs, alive, posted, retried) = (
            addrs.clone(),
            alive.clone(),
            posted.clone(),
            retried.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut i = 0usize;
            while started.elapsed() < flood_for {
                let object = format!("obj-{}", c * 4 + i % 4);
                let message = format!("client {c} event {i}");
                let body = event(&object, &message);
                let mut tries = 0usize;
                // Like Flux's emitters: what is not answered 202 is sent again.
                loop {
                    let live: Vec<usize> = {
                        let alive = alive.lock().unwrap();
                        (0..3).filter(|r| alive[*r]).collect()
                    };
                    let to = live[(i + tries) % live.len()];
                    tries += 1;
                    match post(&addrs[to], &body).await {
                        Some(202) => break,
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                if tries > 1 {
                    retried.lock().unwrap().insert(message.clone());
                }
                posted
                    .lock()
                    .unwrap()
                    .entry(object)
                    .or_default()
                    .push(message);
                i += 1;
            }
        }));
    }
    // The sink flaps until the last fault.
    let flapping = Arc::new(AtomicBool::new(true));
    let flapper = {
        let (rec, flapping) = (rec.clone(), flapping.clone());
        tokio::spawn(async move {
            let mut up = true;
            while flapping.load(Ordering::SeqCst) {
                up = !up;
                rec.set_default_reply(Reply::status(if up { 200 } else { 503 }));
                tokio::time::sleep(Duration::from_millis(if up { 900 } else { 400 })).await;
            }
            rec.set_default_reply(Reply::status(200));
        })
    };
    let mut replicas = replicas;
    tokio::time::sleep(Duration::from_secs(6)).await;
    if fault != Fault::NatsServer {
        alive.lock().unwrap()[1] = false;
        Command::new("kill")
            .args(["-9", &replicas[1].child.id().to_string()])
            .status()
            .unwrap();
        let _ = replicas[1].child.wait();
    }
    if fault == Fault::Replica {
        tokio::time::sleep(Duration::from_secs(12)).await;
    } else {
        cluster.node("down", 2, true);
        tokio::time::sleep(Duration::from_secs(6)).await;
        cluster.node("up", 2, false);
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    flapping.store(false, Ordering::SeqCst);
    flapper.await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let posted = posted.lock().unwrap().clone();
    let accepted: usize = posted.values().map(Vec::len).sum();
    assert!(accepted > 100, "only {accepted} events were accepted");
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered(&rec.requests()).len() < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = delivered(&rec.requests());
    if got.len() < accepted {
        panic!(
            "{} of {accepted} events delivered within 120 s\n{}",
            got.len(),
            diagnosis(&cluster, &replicas, fault, &posted, &got).await
        );
    }
    let seen = got;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = delivered(&rec.requests());
    let mut repeats = 0;
    for messages in posted.values() {
        for m in messages {
            let n = counts.get(m).copied().unwrap_or(0);
            assert!(n >= 1, "{m:?} was answered 202 and never delivered");
            repeats += n - 1;
        }
    }
    assert_eq!(
        seen.len(),
        counts.len(),
        "nothing new after the queue emptied"
    );
    let order = first_seen_per_object(&rec);
    for (object, messages) in &posted {
        let got = order.get(object).cloned().unwrap_or_default();
        if let Some(at) = (0..messages.len()).find(|&i| got.get(i) != messages.get(i)) {
            let window = at.saturating_sub(2)..(at + 3).min(messages.len());
            panic!(
                "{object}: delivered out of the order it was accepted in, from position {at}: accepted {:?}, delivered {:?}\n{}",
                &messages[window.clone()],
                got.get(window).unwrap_or_default(),
                diagnosis(&cluster, &replicas, fault, &posted, &counts).await
            );
        }
    }
    let summary = format!(
        "3 replicas, {} killed during a 20 s flood with a flapping sink: {accepted} events accepted ({} sent again by the emitter), all delivered in order per object; {repeats} repeated deliveries",
        match fault {
            Fault::Replica => "one replica",
            Fault::NatsServer => "one of 3 NATS servers",
            Fault::Both => "one replica and one of 3 NATS servers",
        },
        retried.lock().unwrap().len()
    );
    drop(replicas);
    summary
}

/// What the servers and the replicas say about a flood whose events were not all delivered:
/// the missing events, each NATS server's streams and consumers, the records not delivered,
/// each replica's warnings and partition moves, and its Provider status.
async fn diagnosis(
    cluster: &Cluster,
    replicas: &[Daemon],
    fault: Fault,
    posted: &HashMap<String, Vec<String>>,
    got: &HashMap<String, usize>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let missing: Vec<&String> = posted
        .values()
        .flatten()
        .filter(|m| !got.contains_key(*m))
        .collect();
    let _ = writeln!(out, "missing: {missing:?}");
    for node in 1..=3 {
        let url = format!(
            "{}/jsz?consumers=true",
            cluster.facts[&format!("NODE{node}_MONITOR_URL")]
        );
        if let Ok(jsz) = Command::new("curl").args(["-s", &url]).output() {
            let _ = writeln!(
                out,
                "server {node}: {}",
                String::from_utf8_lossy(&jsz.stdout).replace('\n', " ")
            );
        }
    }
    for (i, d) in replicas.iter().enumerate() {
        if fault != Fault::NatsServer && i == 1 {
            continue;
        }
        let v = crate::outbox::api(d, "/api/v1/deliveries?limit=100000").await;
        for x in v["deliveries"].as_array().into_iter().flatten() {
            if x["state"] != "delivered" {
                let _ = writeln!(out, "r{} holds {x}", i + 1);
            }
        }
        for line in d.logs().lines().filter(|l| {
            l.contains("WARN")
                || l.contains("ERROR")
                || l.contains("partition")
                || l.contains("claimed")
        }) {
            let _ = writeln!(out, "r{} log {line}", i + 1);
        }
        let providers = crate::outbox::api(d, "/api/v1/providers").await;
        let _ = writeln!(out, "r{} providers {providers}", i + 1);
    }
    out
}
