//! Retries, backoff, `Retry-After` and the overall timeout.

use std::time::{Duration, Instant};

use herald_http::{HttpClient, RetryPolicy};
use herald_testkit::{Recorder, Reply};

use crate::{client, closed_port, config, post};

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(503).body("busy"));
    rec.push_reply(Reply::status(503).body("still busy"));
    rec.push_reply(Reply::status(200).body("ok"));
    let cfg = config(&format!("{}/hook", rec.url()));
    let response = post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], b"ok");
    let got = rec.requests();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|r| r.body_str() == "{}" && r.path == "/hook")
    );
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(429).header("Retry-After", "1"));
    let cfg = config(&rec.url());
    let started = Instant::now();
    post(&client(&cfg), &cfg).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(rec.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_http_date_is_honoured_for_503() {
    let rec = Recorder::start().await;
    // HTTP dates have a one-second resolution: two seconds ahead is at least one second away.
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    rec.push_reply(Reply::status(503).header("Retry-After", when));
    let cfg = config(&rec.url());
    let started = Instant::now();
    post(&client(&cfg), &cfg).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(rec.requests().len(), 2);
}

#[tokio::test]
async fn a_wait_past_the_timeout_gives_up_at_once() {
    let rec = Recorder::start().await;
    rec.push_reply(
        Reply::status(429)
            .header("Retry-After", "30")
            .body("slow down"),
    );
    let mut cfg = config(&rec.url());
    cfg.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}: giving up after 1 attempt: the next retry in 30s would pass \
             the 2s timeout; last error: HTTP 429 Too Many Requests: slow down",
            rec.url()
        )
    );
    assert!(err.is_retryable());
    assert_eq!(err.status(), Some(429));
    assert_eq!(rec.requests().len(), 1);

    // A Retry-After beyond what the clock can add is honoured up to an hour.
    rec.push_reply(Reply::status(503).header("Retry-After", "99999999999999999999999"));
    cfg.timeout = Duration::from_secs(1800);
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "giving up after 1 attempt: the next retry in 60m0s would pass the 30m0s timeout"
        ),
        "{err}"
    );
    assert_eq!(err.status(), Some(503));
    // The error says what the service asked; the policy decides how much of it to honour.
    assert_eq!(err.retry_after(), Some(Duration::from_secs(u64::MAX)));
}

#[tokio::test]
async fn the_timeout_bounds_a_slow_server() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(200).delay(Duration::from_secs(20)));
    let mut cfg = config(&rec.url());
    cfg.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}: timed out after 1s (1 attempt)",
            rec.url()
        )
    );
    assert!(err.is_retryable());
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn the_timeout_covers_retries_and_names_the_last_error() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(502).body("bad gateway"));
    rec.push_reply(Reply::status(200).delay(Duration::from_secs(20)));
    let mut cfg = config(&rec.url());
    cfg.timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().ends_with(
            ": timed out after 1.5s (2 attempts; last error: HTTP 502 Bad Gateway: bad gateway)"
        ),
        "{err}"
    );
    assert_eq!(err.status(), Some(502));
}

/// Flux's own schedule: with Flux's policy (2 s, 4 s, ...) and a 3 s timeout, the second wait
/// (4 s) would pass the timeout, so there are exactly 2 attempts, about 2 s apart.
#[tokio::test]
async fn flux_policy_follows_flux_timing() {
    let rec = Recorder::start().await;
    for _ in 0..5 {
        rec.push_reply(Reply::status(500));
    }
    let mut cfg = config(&rec.url());
    cfg.timeout = Duration::from_secs(3);
    let client = HttpClient::from_config(&cfg)
        .unwrap()
        .with_retry_policy(RetryPolicy::flux());
    let started = Instant::now();
    let err = post(&client, &cfg).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2900),
        "took {elapsed:?}"
    );
    assert!(
        err.to_string()
            .contains("giving up after 2 attempts: the next retry in 4s would pass the 3s timeout"),
        "{err}"
    );
    assert_eq!(rec.requests().len(), 2);
}

#[tokio::test]
async fn exhausted_retries_are_a_transient_error_with_the_status() {
    let rec = Recorder::start().await;
    for _ in 0..5 {
        rec.push_reply(Reply::status(503).body("down\nfor maintenance"));
    }
    let cfg = config(&rec.url());
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}: giving up after 5 attempts: HTTP 503 Service Unavailable: down for maintenance",
            rec.url()
        )
    );
    assert!(err.is_retryable());
    assert_eq!(err.status(), Some(503));
    assert_eq!(rec.requests().len(), 5);

    // max_retries 0: one attempt only, and the error as it is.
    rec.push_reply(Reply::status(500));
    let once = HttpClient::from_config(&cfg)
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_retries: 0,
            ..crate::quick()
        });
    let err = post(&once, &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}: HTTP 500 Internal Server Error",
            rec.url()
        )
    );
    assert_eq!(rec.requests().len(), 6);
}

/// Without a policy a client makes one attempt: whoever retries (herald's delivery engine,
/// `herald send`) gets the classification, the status and the service's `Retry-After`.
#[tokio::test]
async fn the_default_client_makes_one_attempt_and_reports_retry_after() {
    let rec = Recorder::start().await;
    rec.push_reply(
        Reply::status(429)
            .header("Retry-After", "7")
            .body("slow down"),
    );
    rec.push_reply(Reply::status(200));
    let cfg = config(&rec.url());
    let client = HttpClient::from_config(&cfg).unwrap();
    let err = post(&client, &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}: HTTP 429 Too Many Requests: slow down",
            rec.url()
        )
    );
    assert!(err.is_retryable() && err.is_rate_limited());
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(rec.requests().len(), 1);
    assert_eq!(post(&client, &cfg).await.unwrap().status, 200);

    rec.push_reply(Reply::status(404).body("no such hook"));
    let err = post(&client, &cfg).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn connection_refused_is_retried_then_transient() {
    let port = closed_port();
    let cfg = config(&format!("http://127.0.0.1:{port}/hook/x"));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    let text = err.to_string();
    let head =
        format!("provider test/hook: POST http://127.0.0.1:{port}/…: giving up after 5 attempts: ");
    assert!(text.starts_with(&head), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert!(err.is_retryable());
    assert_eq!(err.status(), None);
}
