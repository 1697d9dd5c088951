//! Several replicas sharing one outbox in NATS JetStream (`herald serve --outbox`), through the
//! real binary, on a real 3-node `nats-server` cluster on loopback (herald-testkit's
//! `peers/nats.sh`, which installs Debian's nats-server): a flood spread over the replicas with
//! a flapping sink, while one replica and then one NATS server are killed; and Flux's
//! duplicate window shared by the replicas.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_testkit::{Recorder, Reply};
use serde_json::Value;

use crate::outbox::{delivered, hook, post, wait_delivered};
use crate::support::{Daemon, manifests};

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

/// How long a replica may take to serve again once JetStream has its quorum back: the servers'
/// own recovery (elections, catching up) takes most of it.
const RECOVERY: Duration = Duration::from_secs(60);

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

/// One cluster test at a time: each starts three NATS servers and three heralds.
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
                "{object}: delivered out of the order it was accepted in, from position {at}: accepted {:?}, delivered {:?}",
                &messages[window.clone()],
                got.get(window).unwrap_or_default()
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
