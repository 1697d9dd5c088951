//! What goes on the wire: User-Agent, custom headers, title-case names, HTTP/1.1.

use std::time::Duration;

use herald_http::{HeaderName, HeaderValue, Method, Request, USER_AGENT, parse_header};
use herald_testkit::Recorder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{client, config};

#[tokio::test]
async fn user_agent_and_custom_headers_arrive() {
    let rec = Recorder::start().await;
    let cfg = config(&rec.url());
    let client = client(&cfg);
    let (name, value) = parse_header("X-Custom", " kept ").unwrap();
    let req = Request::post_json(format!("{}/hook?a=1&b=2", rec.url()), r#"{"k":"v"}"#)
        .header(name, value)
        .header(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer abc"),
        );
    client.send(req).await.unwrap();
    let got = rec.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/hook?a=1&b=2")
    );
    assert_eq!(USER_AGENT, concat!("herald/", env!("CARGO_PKG_VERSION")));
    assert_eq!(got.header("user-agent"), Some(USER_AGENT));
    assert_eq!(got.header("x-custom"), Some("kept"));
    assert_eq!(got.header("authorization"), Some("Bearer abc"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("content-length"), Some("9"));
    assert_eq!(
        got.header("host"),
        Some(rec.url().trim_start_matches("http://"))
    );
    assert_eq!(got.body_str(), r#"{"k":"v"}"#);

    // A request's own User-Agent wins; other methods work too.
    let req = Request::new(Method::PUT, rec.url()).header(
        HeaderName::from_static("user-agent"),
        HeaderValue::from_static("custom/1"),
    );
    client.send(req).await.unwrap();
    let got = rec.wait_for(2, Duration::from_secs(5)).await.remove(1);
    assert_eq!(got.method, "PUT");
    assert_eq!(got.header("user-agent"), Some("custom/1"));
    assert_eq!(
        got.headers
            .iter()
            .filter(|(n, _)| n == "user-agent")
            .count(),
        1
    );
}

/// Reads the raw request head a client sends, to see header names as written.
#[tokio::test]
async fn header_names_are_title_case_on_the_wire() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/raw", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(conn.read_u8().await.unwrap());
        }
        conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let cfg = config(&url);
    let req = Request::post_json(url.clone(), "").header(
        HeaderName::from_static("gotk-component"),
        HeaderValue::from_static("source-controller"),
    );
    let response = client(&cfg).send(req).await.unwrap();
    assert_eq!(response.status, 204);
    let head = server.await.unwrap();
    assert!(head.starts_with("POST /raw HTTP/1.1\r\n"), "{head}");
    for line in [
        "Content-Type: application/json\r\n",
        "Gotk-Component: source-controller\r\n",
        "User-Agent: herald/",
    ] {
        assert!(head.contains(line), "{line:?} missing in:\n{head}");
    }
}
