//! How URLs, bodies, durations, statuses and error chains are shown in messages.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use http::StatusCode;

/// How many bytes of a response body an error message quotes.
pub(crate) const SNIPPET_LEN: usize = 512;

/// A URL fit for messages: `scheme://host[:port]`, followed by `/…` when the URL has a path
/// or a query. Userinfo, path, query and fragment are never shown, since webhook URLs carry
/// their tokens there. Anything without `scheme://` is shown as `<invalid URL>`.
///
/// ```
/// use herald_http::redact_url;
/// assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/XXXX"), "https://hooks.slack.com/…");
/// assert_eq!(redact_url("http://user:pass@127.0.0.1:8080"), "http://127.0.0.1:8080");
/// assert_eq!(redact_url("hooks.slack.com/services/T0"), "<invalid URL>");
/// ```
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid URL>".to_owned();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return "<invalid URL>".to_owned();
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return "<invalid URL>".to_owned();
    }
    let mut out = format!("{}://{host}", scheme.to_ascii_lowercase());
    if !tail.is_empty() && tail != "/" {
        out.push_str("/…");
    }
    out
}

/// The first [`SNIPPET_LEN`] bytes of a body as text: lossy UTF-8, control characters (line
/// breaks included) replaced by spaces, trimmed.
pub(crate) fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(SNIPPET_LEN)];
    let text: String = String::from_utf8_lossy(head)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if body.len() > SNIPPET_LEN {
        format!("{text} …")
    } else {
        text.to_owned()
    }
}

/// `HTTP 503 Service Unavailable`, or `HTTP 599` for a code without a reason phrase.
pub(crate) fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// `15s`, `1.5s`, `250ms`, `2m30s` style durations.
pub(crate) fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return match d.subsec_micros() % 1000 {
            0 => format!("{}ms", d.as_millis()),
            _ => format!(
                "{}ms",
                format!("{:.3}", d.as_secs_f64() * 1000.0).trim_end_matches('0')
            ),
        };
    }
    let secs = d.as_secs();
    let (minutes, rest) = (secs / 60, secs % 60);
    let mut seconds = if d.subsec_nanos() == 0 {
        rest.to_string()
    } else {
        let frac = format!("{:.3}", f64::from(d.subsec_nanos()) / 1e9);
        let frac = frac
            .trim_start_matches('0')
            .trim_end_matches('0')
            .trim_end_matches('.');
        format!("{rest}{frac}")
    };
    seconds.push('s');
    if minutes > 0 {
        format!("{minutes}m{seconds}")
    } else {
        seconds
    }
}

/// "1 attempt", "3 attempts".
pub(crate) fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{n} attempts")
    }
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP date (a past date means
/// no wait). `None` when the value is neither.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate; the timeout bounds the wait anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Every error of a chain, outermost first. `std::io::Error` hides the error it wraps from
/// `source()`, so it is looked into with `get_ref()`.
pub(crate) fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => None,
            },
            None => e.source(),
        };
    }
    out
}

/// The messages of a chain joined with `: `, leaving out hyper-util's bare `client error
/// (Connect)` wrappers and messages that only repeat the next one.
pub(crate) fn describe(err: &(dyn StdError + 'static)) -> String {
    let links = chain(err);
    let mut parts: Vec<String> = Vec::new();
    for (i, e) in links.iter().enumerate() {
        let text = e.to_string();
        if e.is::<hyper_util::client::legacy::Error>() && i + 1 < links.len() {
            continue;
        }
        if links
            .get(i + 1)
            .is_some_and(|next| next.to_string() == text)
        {
            continue;
        }
        if text.is_empty() || parts.last().is_some_and(|p| p.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_shows_only_scheme_host_and_port() {
        for (url, want) in [
            (
                "https://hooks.slack.com/services/T/B/X",
                "https://hooks.slack.com/…",
            ),
            ("https://hooks.slack.com", "https://hooks.slack.com"),
            ("https://hooks.slack.com/", "https://hooks.slack.com"),
            (
                "https://hooks.slack.com?token=x",
                "https://hooks.slack.com/…",
            ),
            ("https://hooks.slack.com#frag", "https://hooks.slack.com/…"),
            ("HTTP://u:p@[::1]:8080/x", "http://[::1]:8080/…"),
            ("  http://tok@host:1/a b  ", "http://host:1/…"),
            ("http://user:pa@ss@host/", "http://host"),
            ("http:///path", "<invalid URL>"),
            ("://host", "<invalid URL>"),
            ("1http://host", "<invalid URL>"),
            ("host/path", "<invalid URL>"),
            ("", "<invalid URL>"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn snippet_is_bounded_single_line_text() {
        assert_eq!(snippet(b"  bad\r\nrequest\t!  "), "bad  request !");
        assert_eq!(snippet(b""), "");
        let long = vec![b'a'; 2000];
        let s = snippet(&long);
        assert_eq!(s.len(), SNIPPET_LEN + " …".len());
        assert_eq!(snippet(&[0xff, b'o', b'k']), "\u{fffd}ok");
    }

    #[test]
    fn durations_read_like_go() {
        let cases = [
            (Duration::from_secs(15), "15s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_secs(150), "2m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_millis(60_050), "1m0.05s"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want);
        }
        assert_eq!(attempts(1), "1 attempt");
        assert_eq!(attempts(5), "5 attempts");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(42)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("-1", now), None);
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("", now), None);
    }

    #[test]
    fn status_lines_have_reasons_when_known() {
        assert_eq!(
            status_line(StatusCode::SERVICE_UNAVAILABLE),
            "HTTP 503 Service Unavailable"
        );
        assert_eq!(status_line(StatusCode::from_u16(599).unwrap()), "HTTP 599");
    }

    #[test]
    fn describe_looks_inside_io_errors_and_drops_repeats() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&refused), "tcp connect error: connection refused");
        // The wrapped rustls error is found, and printed once.
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(chain(&tls).len(), 2);
        assert!(chain(&tls)[1].is::<rustls::Error>());
        assert_eq!(describe(&tls), "invalid peer certificate: UnknownIssuer");
    }
}
