//! The delivery engine's promises under faults, through the real binary: clients that vanish
//! mid-request, a Provider whose quota is full, Providers that hang, retries by hand,
//! `kill -9` during a flood, and hostile input that must not grow memory.
//!
//! No assertion here is a timing measurement that a loaded machine could break: each waits
//! for a condition with a generous deadline (speed is `cargo xtask bench`'s business), except
//! the hung-providers test, whose bound is the issue's own (a second) with a wide margin.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herald_testkit::{Recorder, Reply};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::outbox::{
    all_kustomizations, api, delivered, eventually, hook, post, provider_status, wait_delivered,
};
use crate::support::{Daemon, alert, herald, manifests, provider, request};

/// A Flux event about Kustomization `apps/<object>`, with `message` and `reason`.
fn event(object: &str, message: &str, reason: &str) -> String {
    serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": object,
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "info", "timestamp": "2026-11-28T10:00:00Z",
        "message": message, "reason": reason,
        "reportingController": "kustomize-controller"
    })
    .to_string()
}

/// Every delivery in the outbox (through the API), oldest first.
async fn deliveries(d: &Daemon, provider: &str) -> Vec<Value> {
    let v = api(
        d,
        &format!("/api/v1/deliveries?limit=10000&provider=flux-system%2F{provider}"),
    )
    .await;
    let mut list = v["deliveries"].as_array().cloned().unwrap_or_default();
    list.reverse();
    list
}

/// Posts `body` and closes the connection right after sending, without waiting for an answer:
/// half-closed (write side shut) or dropped outright.
async fn post_and_vanish(addr: &str, body: &str, half_close: bool) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    if half_close {
        let _ = stream.shutdown().await;
    }
    drop(stream);
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_close_right_after_sending_get_every_accepted_event_delivered_in_order() {
    let rec = Recorder::start().await;
    let dir = manifests(&hook("hook", &rec.url()));
    let d = Arc::new(Daemon::start(dir.path(), &["--rate-limit-interval", "0s"]));
    const N: usize = 200;
    let objects = ["a", "b", "c", "d"];
    // Concurrent clients, each closing its connection right after the request is out. The
    // sequence number rides in the reason, which the outbox keeps in its records.
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (d, next) = (d.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= N {
                    return;
                }
                let object = objects[i % objects.len()];
                let body = event(object, &format!("vanish {i}"), &format!("Seq{i}"));
                post_and_vanish(&d.events, &body, i % 2 == 0).await;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }

    // Whatever was committed is delivered, without a restart: the outbox has no delivery left
    // that is not delivered, and the sink got each once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let list = deliveries(&d, "hook").await;
        let seen = delivered(&rec.requests());
        let done = list.iter().filter(|r| r["state"] == "delivered").count();
        if !list.is_empty() && done == list.len() && seen.len() == done {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} committed deliveries delivered within 60s, sink saw {}",
            list.len(),
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let committed = last.len();
    assert!(committed > 0, "no event was committed at all");
    eprintln!("{committed} of {N} vanishing posts were committed; all delivered");
    let seen = delivered(&rec.requests());
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert_eq!(
        provider_status(&d, "hook").await["pending"],
        0,
        "no delivery stranded"
    );

    // In order per object: the sink received each object's events in commit (id) order.
    let mut committed_order: HashMap<String, Vec<String>> = HashMap::new();
    for r in &last {
        let object = r["object"].as_str().unwrap().to_owned();
        committed_order
            .entry(object)
            .or_default()
            .push(r["reason"].as_str().unwrap().to_owned());
    }
    let mut received_order: HashMap<String, Vec<String>> = HashMap::new();
    for r in rec.requests().iter().filter(|r| r.answered == 200) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let object = format!(
            "Kustomization/apps/{}",
            v["involvedObject"]["name"].as_str().unwrap()
        );
        received_order
            .entry(object)
            .or_default()
            .push(v["reason"].as_str().unwrap().to_owned());
    }
    assert_eq!(received_order, committed_order);
}

/// A listener that accepts connections and never answers: a blackholed or hung service.
pub(crate) fn black_hole() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => return,
            }
        }
    });
    (addr, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_whose_quota_is_full_refuses_only_its_own_deliveries() {
    let healthy = Recorder::start().await;
    let (hole, _hole) = black_hole();
    let dir = manifests(
        &[
            hook("healthy", &healthy.url()),
            hook("blackhole", &format!("http://{hole}")),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &["--provider-max-pending", "50"]);
    const N: usize = 300;
    for i in 0..N {
        let status = post(&d.events, &event("web", &format!("quota {i}"), "Quota")).await;
        assert_eq!(status, Some(202), "event {i}: every event is accepted");
    }
    // The healthy Provider gets every event.
    let seen = wait_delivered(&healthy, N, Duration::from_secs(60)).await;
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let ok = provider_status(&d, "healthy").await;
    assert_eq!(
        (ok["pending"].as_u64(), ok["dead"].as_u64()),
        (Some(0), Some(0)),
        "{ok}"
    );

    // The blackholed one holds its quota; the rest is dead with reason `quota`.
    let full = provider_status(&d, "blackhole").await;
    assert_eq!(full["pending"], 50, "{full}");
    assert_eq!(full["dead"], (N - 50) as u64, "{full}");
    let list = deliveries(&d, "blackhole").await;
    let dead: Vec<&Value> = list.iter().filter(|r| r["state"] == "dead").collect();
    assert_eq!(dead.len(), N - 50);
    for r in &dead {
        assert_eq!(r["dead_reason"], "quota", "{r}");
        assert_eq!(r["attempts"], 0, "{r}");
        assert!(
            r["last_error"]
                .as_str()
                .unwrap()
                .contains("already has 50 deliveries waiting (--provider-max-pending)"),
            "{r}"
        );
    }
    // The oldest 50 are the ones kept.
    let kept: Vec<u64> = list
        .iter()
        .filter(|r| r["state"] != "dead")
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    let refused_min = dead
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .min()
        .unwrap();
    assert!(kept.iter().all(|&id| id < refused_min), "{kept:?}");
    assert_eq!(
        d.metric("herald_deliveries_refused_quota_total").await,
        Some((N - 50) as f64)
    );
    // Retriable: one refused delivery goes back to the queue (it may be refused a turn there,
    // but is no longer dead).
    let id = dead[0]["id"].as_u64().unwrap();
    let r = request(
        &d.api,
        "POST",
        &format!("/api/v1/deliveries/{id}/retry"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["retried"][0],
        id
    );
    let after = provider_status(&d, "blackhole").await;
    assert_eq!(
        (after["pending"].as_u64(), after["dead"].as_u64()),
        (Some(51), Some((N - 51) as u64)),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seventy_hung_providers_do_not_hold_up_a_healthy_one() {
    let healthy = Recorder::start().await;
    let (hole, _hole) = black_hole();
    const HUNG: usize = 70;
    let mut yaml: Vec<String> = (0..HUNG)
        .map(|i| hook(&format!("hung-{i}"), &format!("http://{hole}/{i}")))
        .collect();
    yaml.push(hook("healthy", &healthy.url()));
    let dir = manifests(&yaml.concat());
    let d = Daemon::start(dir.path(), &[]);
    // Fill every hung Provider's window: 20 events, 70 x 20 deliveries that hang.
    for i in 0..20 {
        assert_eq!(
            post(
                &d.events,
                &event(&format!("load-{i}"), &format!("load {i}"), "Load")
            )
            .await,
            Some(202)
        );
    }
    wait_delivered(&healthy, 20, Duration::from_secs(30)).await;
    eventually(
        "every hung provider has deliveries in flight",
        Duration::from_secs(30),
        || async {
            let v = api(&d, "/api/v1/providers").await;
            let stuck = v["providers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| {
                    p["provider"].as_str().unwrap().contains("hung-")
                        && p["in_flight"].as_u64() > Some(0)
                })
                .count();
            if stuck == HUNG {
                Ok(())
            } else {
                Err(format!("{stuck} of {HUNG} hung providers busy"))
            }
        },
    )
    .await;

    // Now each new event's delivery to the healthy Provider arrives at once.
    let mut waits = Vec::new();
    for i in 0..10 {
        let before = healthy.requests().len();
        let posted = Instant::now();
        assert_eq!(
            post(
                &d.events,
                &event(&format!("probe-{i}"), &format!("probe {i}"), "Probe")
            )
            .await,
            Some(202)
        );
        healthy.wait_for(before + 1, Duration::from_secs(30)).await;
        waits.push(posted.elapsed());
    }
    waits.sort();
    eprintln!("healthy deliveries beside {HUNG} hung providers arrived after {waits:?}");
    assert!(
        waits[waits.len() / 2] < Duration::from_secs(1),
        "the healthy provider is held up: {waits:?}"
    );
    assert!(
        waits.iter().all(|w| *w < Duration::from_secs(5)),
        "{waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_by_hand_gets_a_fresh_age_and_delivers_all_five() {
    let rec = Recorder::start().await;
    rec.set_default_reply(Reply::status(503));
    let dir = manifests(&hook("hook", &rec.url()));
    let d = Daemon::start(
        dir.path(),
        &["--delivery-max-age", "3s", "--retry-backoff-max", "1s"],
    );
    // Five deliveries of one object: one ordering key, behind one another.
    for i in 0..5 {
        assert_eq!(
            post(&d.events, &event("web", &format!("five {i}"), "Five")).await,
            Some(202)
        );
    }
    eventually("five dead letters", Duration::from_secs(60), || async {
        let s = provider_status(&d, "hook").await;
        if s["dead"] == 5 && s["pending"] == 0 {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    for r in deliveries(&d, "hook").await {
        assert_eq!(r["dead_reason"], "max-age", "{r}");
    }
    // The sink is back, but fails once more: with the age clock restarted by the retry, that
    // one failure is retried, and gives up nothing behind it.
    rec.set_default_reply(Reply::status(200));
    rec.push_reply(Reply::status(503));
    let (ok, out, err) = crate::outbox::outbox_cmd(&["--api", &d.api, "retry", "--all-dead"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("5 delivery(ies) queued again"), "{out}");
    let seen = wait_delivered(&rec, 5, Duration::from_secs(30)).await;
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    eventually("all five delivered", Duration::from_secs(30), || async {
        let list = deliveries(&d, "hook").await;
        let states: Vec<&str> = list.iter().map(|r| r["state"].as_str().unwrap()).collect();
        if states == ["delivered"; 5] {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    })
    .await;
    // In order, the first of them after its extra failure.
    let order: Vec<String> = rec
        .requests()
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(order, ["five 0", "five 1", "five 2", "five 3", "five 4"]);
}

/// A small pseudo-random sequence (the seed is printed, so that a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_five_times_during_a_flood_loses_nothing_accepted() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill -9 flood seed {seed}");
    let mut rng = Lcg(seed);
    let rec = Recorder::start().await;
    let dir = manifests(&hook("hook", &rec.url()));
    let data = tempfile::tempdir().unwrap();
    let args = ["--retry-backoff-max", "1s", "--rate-limit-interval", "0s"];
    let start = || Daemon::start_in(herald(), dir.path(), data.path(), &args);
    let mut daemon = start();
    // The flood follows the daemon's address across restarts.
    let current = Arc::new(std::sync::Mutex::new(daemon.events.clone()));
    let flood_for = Duration::from_secs(30);
    let started = Instant::now();
    let sent_once = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let sent_again = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (current, next, sent_once, sent_again) = (
            current.clone(),
            next.clone(),
            sent_once.clone(),
            sent_again.clone(),
        );
        clients.push(tokio::spawn(async move {
            while started.elapsed() < flood_for {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let body = event(&format!("obj-{}", i % 16), &format!("flood {i}"), "Flood");
                let mut tries = 0;
                // Like Flux's emitters: what is not answered 202 is sent again.
                loop {
                    tries += 1;
                    let addr = current.lock().unwrap().clone();
                    match post(&addr, &body).await {
                        Some(202) => break,
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                if tries == 1 {
                    sent_once.lock().unwrap().insert(i);
                } else {
                    sent_again.lock().unwrap().insert(i);
                }
            }
        }));
    }
    // The sink flaps (up and down by turns) while the daemon is killed five times.
    let mut kills: Vec<u64> = (0..5).map(|k| 2000 + k * 5000 + rng.next(3000)).collect();
    kills.sort_unstable();
    let mut up = true;
    let mut next_flap = Instant::now() + Duration::from_millis(700);
    for at in kills {
        while started.elapsed() < Duration::from_millis(at) {
            if Instant::now() >= next_flap {
                up = !up;
                rec.set_default_reply(Reply::status(if up { 200 } else { 503 }));
                next_flap = Instant::now() + Duration::from_millis(300 + rng.next(900));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Command::new("kill")
            .args(["-9", &daemon.child.id().to_string()])
            .status()
            .unwrap();
        let _ = daemon.child.wait();
        daemon = start();
        *current.lock().unwrap() = daemon.events.clone();
    }
    // The flaps stop with the last kill. Left down, the sink would let the queue fill to its
    // bound while the flood goes on; the emitters would then be answered 503 for ever.
    rec.set_default_reply(Reply::status(200));
    for c in clients {
        c.await.unwrap();
    }
    let once = sent_once.lock().unwrap().clone();
    let again = sent_again.lock().unwrap().clone();
    let all: HashSet<usize> = once.union(&again).copied().collect();
    let accepted = all.len();
    assert!(accepted > 100, "only {accepted} events were accepted");
    let seen = wait_delivered(&rec, accepted, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen_later = delivered(&rec.requests());
    assert_eq!(seen.len(), seen_later.len());
    let mut crash_repeats = 0;
    let mut emitter_repeats = 0;
    for i in &all {
        let n = seen_later.get(&format!("flood {i}")).copied().unwrap_or(0);
        assert!(n >= 1, "flood {i} was answered 202 and never delivered");
        if once.contains(i) {
            crash_repeats += n - 1;
        } else {
            emitter_repeats += n - 1;
        }
    }
    eprintln!(
        "kill -9 x5 during a 30 s flood: {accepted} events accepted ({} sent again by the emitter), all delivered; {crash_repeats} repeats of events sent once, {emitter_repeats} of events sent again",
        again.len()
    );
    // At most one delivery per ordering key (16 objects) repeats per crash.
    assert!(
        crash_repeats <= 5 * 16,
        "{crash_repeats} repeats after 5 crashes"
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_methods_and_unmatched_events_stay_bounded() {
    let rec = Recorder::start().await;
    let dir = manifests(&hook("hook", &rec.url()));
    let d = Daemon::start(dir.path(), &[]);
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    // Warm up (allocator arenas, first connections), then measure.
    for i in 0..50 {
        let _ = post(&d.events, &event(&format!("warm-{i}"), "warm", "Warm")).await;
    }
    let before = rss();
    let mut rng = Lcg(7);
    for i in 0..2000 {
        let method: String = (0..4096)
            .map(|_| (b'A' + rng.next(26) as u8) as char)
            .collect();
        // Unmatched: the Alert covers namespace apps only.
        let body = serde_json::json!({
            "involvedObject": {"kind": "Kustomization", "namespace": format!("other-{i}"), "name": format!("n-{i}")},
            "severity": "info", "message": format!("unmatched {i} {}", rng.next(1 << 30)), "reason": "R",
            "reportingController": "c"
        })
        .to_string();
        let m = if i % 2 == 0 { method.as_str() } else { "POST" };
        let r = request(&d.events, m, "/", &[], body.as_bytes()).await;
        assert!(r.status < 500, "{}", r.status);
    }
    let after = rss();
    let metrics = request(&d.metrics, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    eprintln!(
        "after 2,000 hostile requests: /metrics {} bytes, RSS {before} KiB -> {after} KiB",
        metrics.body.len()
    );
    assert!(
        metrics.body.len() < 100 * 1024,
        "/metrics is {} bytes",
        metrics.body.len()
    );
    assert!(
        !metrics.body_str().contains("AAAA"),
        "a method became a label"
    );
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(
        rec.requests().len() >= 50 && rec.requests().len() < 60,
        "unmatched events are not delivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_logging_has_no_line_per_event_and_no_colour() {
    let rec = Recorder::start().await;
    let dir = manifests(
        &[
            provider("hook", "flux-system", "generic", &rec.url()),
            alert("to-hook", "flux-system", "hook", &all_kustomizations()),
        ]
        .concat(),
    );
    let data = tempfile::tempdir().unwrap();
    let mut child = herald()
        .args(["serve", "--manifests"])
        .arg(dir.path())
        .args(crate::support::LOOPBACK_PORTS)
        .arg("--data-dir")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let events = loop {
        let found = lines.lock().unwrap().iter().find_map(|l| {
            l.contains("herald is ready").then(|| {
                l.split("events=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_owned)
            })?
        });
        if let Some(addr) = found {
            break addr;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let before = lines.lock().unwrap().len();
    for i in 0..100 {
        assert_eq!(
            post(&events, &event("web", &format!("quiet {i}"), "Quiet")).await,
            Some(202)
        );
    }
    wait_delivered(&rec, 100, Duration::from_secs(30)).await;
    let _ = child.kill();
    let _ = child.wait();
    let logs = lines.lock().unwrap().clone();
    let during = &logs[before..];
    assert!(
        during.len() < 5,
        "{} log lines for 100 events:\n{}",
        during.len(),
        during.join("\n")
    );
    assert!(
        !logs.iter().any(|l| l.contains('\u{1b}')),
        "colour codes in logs written to a pipe"
    );
}
