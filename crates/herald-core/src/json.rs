//! JSON encoding byte-compatible with Go's `encoding/json`, as Flux produces it.
//!
//! Compact output, struct fields in declaration order, map keys sorted (use `BTreeMap`), and
//! Go's HTML-safe escaping: `<`, `>` and `&` become `\u003c`, `\u003e` and `\u0026`, and
//! U+2028/U+2029 become `\u2028`/`\u2029`. Bytes that are signed or hashed (the `generic-hmac`
//! signature, the Matrix transaction id) are therefore the bytes Flux would have produced.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, Serializer};

/// Serializes `value` the way Go's `json.Marshal` would.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // About what a Flux event takes as JSON: one allocation for most.
    let mut out = Vec::with_capacity(1024);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Serializes `value` into `writer` the way Go's `json.Marshal` would.
pub fn to_writer<W: io::Write, T: Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> Result<(), serde_json::Error> {
    let mut ser = Serializer::with_formatter(writer, GoFormatter);
    value.serialize(&mut ser)
}

/// A compact formatter that adds Go's HTML-safe escapes.
#[derive(Clone, Copy, Debug, Default)]
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc: &[u8] = match c {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            writer.write_all(&bytes[start..i])?;
            writer.write_all(esc)?;
            start = i + c.len_utf8();
        }
        writer.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        CompactFormatter.write_char_escape(writer, char_escape)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn escapes_like_go() {
        let m: BTreeMap<&str, &str> = [
            ("b", "<a href=\"x\">&</a>\u{2028}\u{2029}\n\t\u{1}é"),
            ("a", ""),
        ]
        .into();
        let got = String::from_utf8(super::to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            got,
            r#"{"a":"","b":"\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e\u2028\u2029\n\t\u0001é"}"#
        );
    }
}
