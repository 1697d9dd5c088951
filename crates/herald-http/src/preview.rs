//! What a request would look like on the wire, with its secrets masked: the preview of
//! `herald render` ([`herald_core::Notifier::preview`]).
//!
//! The request is the one delivery would send, built by the same code; this module only
//! adds what [`crate::HttpClient`] adds ([`USER_AGENT`](crate::USER_AGENT) when the request
//! sets none), writes header names as the client does (title case), and masks:
//!
//! - the URL: its userinfo, and every value the masker knows in its path and query (the
//!   token segments of a Slack or Discord webhook, a Telegram bot token, a Google Chat
//!   `key=`); scheme, host and port stay readable;
//! - header values: every value the masker knows (where it stands: `sentry_key=*****`), and
//!   the whole of a value marked sensitive (`Authorization`, the Secret's `headers`, API keys)
//!   when nothing in it was masked, so that a sensitive value is never shown;
//! - the body, when it is UTF-8 text: every value the masker knows.
//!
//! What is not shown: `Host` and `Content-Length`, which the HTTP library writes from the URL
//! and body, and a proxy's `Proxy-Authorization`.

use herald_core::{Masker, Preview, REDACTED};
use http::HeaderName;

use crate::Request;

/// The preview of `request`, masked with `masker`.
pub fn of(request: &Request, masker: &Masker) -> Preview {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let masked = masker.mask(&text);
            let shown = if value.is_sensitive() && masked == text {
                REDACTED.to_owned()
            } else {
                masked
            };
            (title_case(name), shown)
        })
        .collect();
    if crate::client::needs_user_agent(&request.headers) {
        headers.push((
            title_case(&http::header::USER_AGENT),
            crate::USER_AGENT.into(),
        ));
    }
    Preview {
        method: request.method.to_string(),
        url: mask_url(&request.url, masker),
        headers,
        body: mask_body(&request.body, masker),
    }
}

/// `url` with its userinfo replaced by [`REDACTED`] and the masker's values masked in what
/// follows the authority.
pub fn mask_url(url: &str, masker: &Masker) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return masker.mask(url);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{REDACTED}@{host}"),
        None => authority.to_owned(),
    };
    format!(
        "{scheme}://{}{}",
        masker.mask(&authority),
        masker.mask(tail)
    )
}

/// A UTF-8 body with the masker's values masked; any other body as it is.
pub fn mask_body(body: &[u8], masker: &Masker) -> Vec<u8> {
    match std::str::from_utf8(body) {
        Ok(text) => masker.mask(text).into_bytes(),
        Err(_) => body.to_vec(),
    }
}

/// A header name as the client writes it (hyper's title case: `X-Github-Api-Version`).
pub fn title_case(name: &HeaderName) -> String {
    let mut out = String::with_capacity(name.as_str().len());
    let mut upper = true;
    for c in name.as_str().chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Method};

    use super::*;

    fn masker(values: &[&str]) -> Masker {
        let mut m = Masker::new();
        for v in values {
            m.add(v);
        }
        m
    }

    #[test]
    fn urls_keep_their_origin_and_lose_userinfo_and_known_parts() {
        let m = masker(&["B0456/xoxsecret1234", "bot-token-77", "k3y-value-99"]);
        for (url, want) in [
            (
                "https://hooks.slack.com/services/T0/B0456/xoxsecret1234",
                "https://hooks.slack.com/services/T0/*****",
            ),
            (
                "https://api.telegram.org/bot123:bot-token-77/sendMessage",
                "https://api.telegram.org/bot123:*****/sendMessage",
            ),
            (
                "https://chat.googleapis.com/v1/spaces/X/messages?key=k3y-value-99&token=x",
                "https://chat.googleapis.com/v1/spaces/X/messages?key=*****&token=x",
            ),
            ("http://user:pass@h:8080/hook", "http://*****@h:8080/hook"),
            ("http://tok@h", "http://*****@h"),
            ("https://h.example/plain", "https://h.example/plain"),
            ("not a url bot-token-77", "not a url *****"),
        ] {
            assert_eq!(mask_url(url, &m), want, "{url}");
        }
    }

    #[test]
    fn sensitive_headers_are_masked_whole_unless_their_secret_is_known() {
        let m = masker(&["tok-secret-1"]);
        let mut known = HeaderValue::from_static("Bearer tok-secret-1");
        known.set_sensitive(true);
        let mut unknown = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        unknown.set_sensitive(true);
        let request = Request::post_json("http://h/x", r#"{"t":"tok-secret-1"}"#)
            .header(http::header::AUTHORIZATION, known)
            .header(HeaderName::from_static("x-api-key"), unknown)
            .header(
                HeaderName::from_static("x-plain"),
                HeaderValue::from_static("says tok-secret-1"),
            );
        let p = of(&request, &m);
        assert_eq!(p.method, "POST");
        assert_eq!(
            p.headers,
            [
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer *****"),
                ("X-Api-Key", "*****"),
                ("X-Plain", "says *****"),
                ("User-Agent", crate::USER_AGENT),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(p.body, br#"{"t":"*****"}"#);
    }

    #[test]
    fn a_request_with_its_own_user_agent_keeps_it_and_binary_bodies_stay_whole() {
        let request = Request::new(Method::PUT, "http://h/x")
            .header(http::header::USER_AGENT, HeaderValue::from_static("mine"))
            .body(vec![0xff, 0x00, b'k']);
        let p = of(&request, &masker(&[]));
        assert_eq!(p.headers, [("User-Agent".to_owned(), "mine".to_owned())]);
        assert_eq!(p.body, [0xff, 0x00, b'k']);
        assert_eq!(p.method, "PUT");
    }
}
