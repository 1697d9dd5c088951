//! The filters every template has besides minijinja's built-in ones: one escaping filter per
//! kind of target, and `truncate` to a service's limit.
//!
//! | filter | escapes for | what it does |
//! | --- | --- | --- |
//! | `telegram` | Telegram MarkdownV2 | a backslash before each of `` \ . - _ [ ] ( ) ~ > ` # + = \| { } ! * `` |
//! | `slack` | Slack mrkdwn | `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;` |
//! | `html` | HTML text and attributes | `&`, `<`, `>`, `"`, `'` as entities |
//! | `json` | JSON | the value as JSON: a string quoted and escaped, a map as an object |
//! | `truncate(n, end="…")` | a length limit | at most `n` characters, ending in `end` when cut |

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};

/// The characters MarkdownV2 requires to be escaped.
const MARKDOWN_V2_SPECIAL: &str = "\\.-_[]()~>`#+=|{}!*";

/// Registers every filter of this module on `env`.
pub(crate) fn add_all(env: &mut Environment<'_>) {
    env.add_filter("telegram", |v: &Value| text(v).map(|s| telegram(&s)));
    env.add_filter("slack", |v: &Value| text(v).map(|s| slack(&s)));
    env.add_filter("html", |v: &Value| text(v).map(|s| html(&s)));
    env.add_filter("json", json);
    env.add_filter("truncate", truncate_filter);
}

/// The text of a filter's input: a string as it is, a number or boolean as printed; an
/// undefined value is an error that says so (strict mode).
fn text(value: &Value) -> Result<String, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "the value given to the filter is undefined",
        ));
    }
    Ok(value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned))
}

/// Escapes `s` for Telegram's MarkdownV2: a backslash before every special character.
pub fn telegram(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8 + 4);
    for c in s.chars() {
        if MARKDOWN_V2_SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes `s` for Slack's mrkdwn, which reads `&`, `<` and `>` as control characters.
pub fn slack(s: &str) -> String {
    replace_chars(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    })
}

/// Escapes `s` for HTML text and quoted attribute values.
pub fn html(s: &str) -> String {
    replace_chars(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&#34;"),
        '\'' => Some("&#39;"),
        _ => None,
    })
}

fn replace_chars(s: &str, replacement: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match replacement(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

/// The value as JSON: strings quoted and escaped, maps as objects, sequences as arrays.
fn json(value: &Value) -> Result<String, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "the value given to the filter is undefined",
        ));
    }
    serde_json::to_string(value).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot write the value as JSON: {e}"),
        )
    })
}

/// At most `length` characters of `s`; when cut, the last ones are `end` (default `…`).
pub fn truncate(s: &str, length: usize, end: &str) -> String {
    if s.chars().count() <= length {
        return s.to_owned();
    }
    let keep = length.saturating_sub(end.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(end);
    out
}

fn truncate_filter(value: &Value, length: usize, end: Option<&str>) -> Result<String, Error> {
    text(value).map(|s| truncate(&s, length, end.unwrap_or("…")))
}
