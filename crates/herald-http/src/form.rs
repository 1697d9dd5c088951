//! `application/x-www-form-urlencoded` bodies and queries, byte for byte as Go's
//! `url.Values.Encode` writes them (what Flux sends to Zulip, and the query it gives Zoom).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What Go's `url.QueryEscape` leaves as it is: letters, digits, `-`, `_`, `.` and `~`.
/// Everything else is percent-encoded with upper-case hex, except the space, which becomes `+`.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as Go's `url.QueryEscape` escapes it.
pub fn query_escape(s: &str) -> String {
    // A space is encoded `%20` first, then becomes `+`: a literal `%` is itself encoded
    // (`%25`), so no `%20` of the output comes from anything but a space.
    utf8_percent_encode(s, QUERY_COMPONENT)
        .to_string()
        .replace("%20", "+")
}

/// `key=value` pairs joined by `&`, sorted by key (pairs of one key keep their order), each
/// part escaped with [`query_escape`]: Go's `url.Values.Encode`.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_by_key(|(k, _)| *k);
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a query (`a=1&b=x+y`) into its pairs, decoded, in order, as Go's `url.ParseQuery`
/// does: pairs whose key or value is not valid escaping, or whose key holds a `;`, are left
/// out.
pub fn decode(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .filter_map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if k.contains(';') {
                return None;
            }
            Some((unescape(k)?, unescape(v)?))
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; `None` for a bad escape or bytes
/// that are not UTF-8 (kept by Go, but never produced by Go's own encoding).
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_go_query_escape() {
        // Go: url.QueryEscape("a b+c/d?e=f&g~h*i'j!k(l)m;n:o@p$q,r_s.t-u%v\"ü✓")
        assert_eq!(
            query_escape("a b+c/d?e=f&g~h*i'j!k(l)m;n:o@p$q,r_s.t-u%v\"ü✓"),
            "a+b%2Bc%2Fd%3Fe%3Df%26g~h%2Ai%27j%21k%28l%29m%3Bn%3Ao%40p%24q%2Cr_s.t-u%25v%22%C3%BC%E2%9C%93"
        );
        assert_eq!(query_escape("%20 "), "%2520+");
        assert_eq!(query_escape("line\nbreak`"), "line%0Abreak%60");
    }

    #[test]
    fn encodes_sorted_as_go_values_encode() {
        assert_eq!(
            encode([("to", "general"), ("content", "## a b"), ("type", "stream")]),
            "content=%23%23+a+b&to=general&type=stream"
        );
        assert_eq!(encode([("b", "2"), ("a", "1"), ("b", "1")]), "a=1&b=2&b=1");
        assert_eq!(encode([]), "");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let pairs = [("k y", "v+a/l%ü"), ("e", "")];
        let got = decode(&encode(pairs));
        assert_eq!(
            got,
            [
                ("e".to_owned(), String::new()),
                ("k y".to_owned(), "v+a/l%ü".to_owned())
            ]
        );
        assert_eq!(
            decode("a&b=%zz&c=1"),
            [
                ("a".to_owned(), String::new()),
                ("c".to_owned(), "1".to_owned())
            ]
        );
    }
}
