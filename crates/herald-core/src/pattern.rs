//! The regular expressions of an Alert's `inclusionList` and `exclusionList`, with the meaning
//! Go's RE2 syntax gives them (Flux compiles them with Go's `regexp`).
//!
//! A [`Pattern`] is written in Go's syntax and compiled by a Rust engine after one rewrite: the
//! Perl classes and word boundaries are ASCII in Go (`\d` is `[0-9]`, `\w` `[0-9A-Za-z_]`,
//! `\s` `[\t\n\f\r ]`, `\b` between `\w` and `\W`), so they are spelled out before the engine
//! sees them, whatever that engine's own meaning of them is.
//!
//! The engine is the `regex` crate with the cargo feature `unicode-regex`: Unicode classes
//! (`\pL`, `\p{Greek}`) and Unicode case folding under `(?i)`, as in Go. Without it the engine
//! is `regex-lite`, about 0.65 MB less binary, which has neither; a pattern that would need
//! them (a `\p` class, or `(?i)` with a non-ASCII letter) is refused with a message naming the
//! feature, never compiled to mean something else. The one difference left: under `(?i)`, Go
//! (and `unicode-regex`) also match the two non-ASCII letters that fold to ASCII ones, the
//! Kelvin sign `K` and the long `ſ`; `regex-lite` does not.
//!
//! Not Go's, in either engine (as before this module): `\Q...\E` is refused, and `[` inside a
//! class opens a nested class.

use std::fmt;

/// Whether this build has the Unicode engine (the cargo feature `unicode-regex`).
pub const UNICODE_BUILT_IN: bool = cfg!(feature = "unicode-regex");

#[cfg(feature = "unicode-regex")]
type Engine = regex::Regex;
#[cfg(not(feature = "unicode-regex"))]
type Engine = regex_lite::Regex;

/// One compiled inclusion or exclusion pattern.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    engine: Engine,
}

impl Pattern {
    /// Compiles `source`, written in Go's syntax; the error says why it cannot be.
    pub fn new(source: &str) -> Result<Pattern, String> {
        let rewritten = rewrite(source, UNICODE_BUILT_IN)?;
        let engine = Engine::new(&rewritten).map_err(|e| e.to_string())?;
        Ok(Pattern {
            source: source.to_owned(),
            engine,
        })
    }

    /// Whether the pattern matches anywhere in `text` (an unanchored search, as Go's
    /// `MatchString`).
    pub fn is_match(&self, text: &str) -> bool {
        self.engine.is_match(text)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

const WITHOUT_UNICODE: &str = "needs herald built with the cargo feature `unicode-regex`";

/// Go's pattern `source` in the syntax of the engine (`unicode`: the `regex` crate, else
/// `regex-lite`), or why this engine cannot mean what Go does.
fn rewrite(source: &str, unicode: bool) -> Result<String, String> {
    if !unicode && folds_beyond_ascii(source) {
        return Err(format!(
            "case-insensitive matching of non-ASCII letters {WITHOUT_UNICODE}"
        ));
    }
    let mut out = String::with_capacity(source.len() + 16);
    let mut class = Class::default();
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            class.step(c);
            out.push(c);
            continue;
        }
        let Some(escaped) = chars.next() else {
            out.push(c);
            break;
        };
        class.escaped();
        match (escaped, perl_class(escaped, class.depth > 0, unicode)) {
            (_, Some(spelled)) => out.push_str(&spelled),
            ('b' | 'B', _) if unicode && class.depth == 0 => {
                out.push_str(if escaped == 'b' {
                    r"(?-u:\b)"
                } else {
                    r"(?-u:\B)"
                });
            }
            ('p' | 'P', _) if !unicode => {
                return Err(format!("the Unicode class `\\{escaped}` {WITHOUT_UNICODE}"));
            }
            _ => {
                out.push(c);
                out.push(escaped);
            }
        }
    }
    Ok(out)
}

/// Go's Perl class `\letter`, spelled out: as a class of its own, or (`inside` a class, for
/// `regex-lite`, whose classes do not nest) as the ranges to add to that class.
fn perl_class(letter: char, inside: bool, unicode: bool) -> Option<String> {
    let (set, complement) = match letter.to_ascii_lowercase() {
        'd' => ("0-9", r"\x00-\x2F\x3A-\x{10FFFF}"),
        'w' => (
            "0-9A-Za-z_",
            r"\x00-\x2F\x3A-\x40\x5B-\x5E\x60\x7B-\x{10FFFF}",
        ),
        's' => (r"\t\n\f\r ", r"\x00-\x08\x0B\x0E-\x1F\x21-\x{10FFFF}"),
        _ => return None,
    };
    let negated = letter.is_ascii_uppercase();
    Some(match (inside && !unicode, negated) {
        (true, false) => set.to_owned(),
        // Under `(?i)` the two differ only by Unicode case folding, which regex-lite lacks.
        (true, true) => complement.to_owned(),
        (false, false) => format!("[{set}]"),
        // A negated class, not the complement's ranges: under `(?i)` it is negated after
        // folding, as Go negates `\W` (so that it excludes the Kelvin sign, which folds to `k`).
        (false, true) => format!("[^{set}]"),
    })
}

/// Where the scan is in bracketed classes: `]` first in a class (after `[` or `[^`) is a
/// literal, `[:name:]` is an ASCII class, any other `[` inside one nests.
#[derive(Default)]
struct Class {
    depth: usize,
    /// Just after `[` or `[^`.
    opened: bool,
    /// Inside `[:name:]`.
    named: bool,
    previous: char,
}

impl Class {
    fn step(&mut self, c: char) {
        let opened = std::mem::take(&mut self.opened);
        match c {
            _ if self.named => self.named = !(c == ']' && self.previous == ':'),
            '[' => {
                self.depth += 1;
                self.opened = true;
            }
            ':' if self.depth > 1 && self.previous == '[' && opened => {
                // `[[:alpha:]]`: the inner `[` was no nested class.
                self.depth -= 1;
                self.named = true;
            }
            '^' if opened && self.previous == '[' => self.opened = true,
            ']' if self.depth > 0 && !opened => self.depth -= 1,
            _ => {}
        }
        self.previous = c;
    }

    fn escaped(&mut self) {
        self.opened = false;
        self.previous = '\\';
    }
}

/// Whether `source` turns case-insensitive matching on (`(?i)`, `(?si:...)`) and names a
/// letter outside ASCII that has another case, which only Unicode case folding matches as Go
/// does.
fn folds_beyond_ascii(source: &str) -> bool {
    let insensitive = source.match_indices("(?").any(|(at, _)| {
        source[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .any(|c| c == 'i')
    });
    insensitive
        && written_chars(source).any(|c| !c.is_ascii() && (c.is_lowercase() || c.is_uppercase()))
}

/// The characters `source` names, literally or as `\x` escapes.
fn written_chars(source: &str) -> impl Iterator<Item = char> + '_ {
    let escapes = source.match_indices(r"\x").filter_map(|(at, _)| {
        let rest = &source[at + 2..];
        let hex = match rest.strip_prefix('{') {
            Some(braced) => braced.split('}').next()?,
            None => rest.get(..2)?,
        };
        char::from_u32(u32::from_str_radix(hex, 16).ok()?)
    });
    source.chars().chain(escapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_perl_classes_are_spelled_out_for_both_engines() {
        let cases = [
            (r"\d+", "[0-9]+"),
            (r"\D", "[^0-9]"),
            (r"\w\W", "[0-9A-Za-z_][^0-9A-Za-z_]"),
            (r"\s\S", r"[\t\n\f\r ][^\t\n\f\r ]"),
            (r"\\d", r"\\d"),
            (r"\.\*", r"\.\*"),
            (r"\x{41}\pL", r"\x{41}\pL"),
            ("plain", "plain"),
            ("trailing\\", "trailing\\"),
        ];
        for (go, spelled) in cases {
            assert_eq!(rewrite(go, true).as_deref(), Ok(spelled), "{go}");
            if !go.contains(r"\p") {
                assert_eq!(rewrite(go, false).as_deref(), Ok(spelled), "{go}");
            }
        }
        // Inside a class: nested for `regex`, ranges for `regex-lite`.
        let inside = [
            (r"[\d.]", "[[0-9].]", "[0-9.]"),
            (r"[^\s]", r"[^[\t\n\f\r ]]", r"[^\t\n\f\r ]"),
            (r"[\D]", "[[^0-9]]", r"[\x00-\x2F\x3A-\x{10FFFF}]"),
        ];
        for (go, unicode, lite) in inside {
            assert_eq!(rewrite(go, true).as_deref(), Ok(unicode), "{go}");
            assert_eq!(rewrite(go, false).as_deref(), Ok(lite), "{go}");
        }
    }

    /// Go's Perl classes (`regexp/syntax`'s `perl_groups.go`) and how `(?i)` folds them: a
    /// class is folded, a negated one folded and then negated.
    fn go_perl_class(letter: char, folded: bool, c: char) -> bool {
        let plain = |c: char| match letter.to_ascii_lowercase() {
            'd' => c.is_ascii_digit(),
            'w' => c.is_ascii_alphanumeric() || c == '_',
            _ => matches!(c, '\t' | '\n' | '\x0C' | '\r' | ' '),
        };
        // The two non-ASCII letters that Unicode simple case folding takes to ASCII ones.
        let fold = |c: char| match c {
            '\u{212A}' => 'k',
            '\u{17F}' => 's',
            c => c,
        };
        let positive = plain(c) || (folded && UNICODE_BUILT_IN && plain(fold(c)));
        positive != letter.is_ascii_uppercase()
    }

    #[test]
    fn every_perl_class_matches_what_go_matches_inside_and_outside_classes() {
        let probes = (0..0x300u32)
            .chain([
                0x660, 0x663, 0xA0, 0x2028, 0x3000, 0x212A, 0x17F, 0xFF10, 0x10FFFF,
            ])
            .filter_map(char::from_u32);
        let probes: Vec<char> = probes.collect();
        for letter in ['d', 'D', 'w', 'W', 's', 'S'] {
            for flags in ["", "(?i)"] {
                for form in [r"^\X$", r"^[\X]$", r"^[\X~]$", r"^[^\X]$"] {
                    let go = format!("{flags}{}", form.replace('X', &letter.to_string()));
                    let p = Pattern::new(&go).unwrap();
                    for &c in &probes {
                        let mut want = go_perl_class(letter, !flags.is_empty(), c);
                        if form.contains('~') {
                            want |= c == '~';
                        }
                        if form.contains('^') && form.contains("[^") {
                            want = !want;
                        }
                        assert_eq!(
                            p.is_match(&c.to_string()),
                            want,
                            "{go} on U+{:04X}",
                            c as u32
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn word_boundaries_are_ascii_outside_classes_in_the_unicode_engine() {
        let cases = [
            (r"\bfoo\B", r"(?-u:\b)foo(?-u:\B)"),
            (r"[\b]", r"[\b]"),
            (r"[]\b]\b", r"[]\b](?-u:\b)"),
            (r"[^]a]\b", r"[^]a](?-u:\b)"),
            (r"[[:alpha:]]\b", r"[[:alpha:]](?-u:\b)"),
            (r"[a[bc]]\b", r"[a[bc]](?-u:\b)"),
            (r"[\]]\b", r"[\]](?-u:\b)"),
        ];
        for (go, spelled) in cases {
            assert_eq!(rewrite(go, true).as_deref(), Ok(spelled), "{go}");
        }
        // regex-lite's word boundary is ASCII already.
        assert_eq!(rewrite(r"\bfoo\B", false).as_deref(), Ok(r"\bfoo\B"));
    }

    #[test]
    fn without_unicode_what_it_cannot_mean_is_refused_naming_the_feature() {
        let refused = [
            r"\pL",
            r"\p{Greek}",
            r"x\PN",
            r"[\p{Lu}]",
            "(?i)é",
            "(?i)Straße",
            r"(?i)\x{C9}",
            r"(?mi:\xe9)",
        ];
        for go in refused {
            let err = rewrite(go, false).unwrap_err();
            assert!(err.contains("`unicode-regex`"), "{go}: {err}");
            assert!(rewrite(go, true).is_ok(), "{go}");
        }
        let kept = ["é", "(?i)fehler", "(?-i)é", "(?s)é.", r"(?i)\x41", "(?i)→"];
        for go in kept {
            assert!(rewrite(go, false).is_ok(), "{go}");
        }
    }

    /// What Go's `regexp.MatchString` answers for these (checked with Go 1.19).
    #[test]
    fn patterns_match_as_in_go() {
        let cases: &[(&str, &str, bool)] = &[
            (r"\d", "٣", false),
            (r"\d", "3", true),
            (r"^\w+$", "café", false),
            (r"^\w+$", "cafe_1", true),
            (r"\s", "\u{a0}", false),
            (r"\s", "\u{b}", false),
            (r"\s", "\t", true),
            (r"\bcaf\b", "café", true),
            (r"o\Bo", "foo", true),
            (r"o\Bo", "oéo", false),
            (r"[^\d]", "٣", true),
            (r"(?i)fehler", "FEHLER beim Abgleich", true),
            (
                "^Dependencies",
                "Dependencies do not meet ready condition",
                true,
            ),
            (".*error.*", "an error", true),
            ("é", "café", true),
            ("(?i)É", "café", UNICODE_BUILT_IN),
            (r"\p{Greek}", "λ", UNICODE_BUILT_IN),
        ];
        for &(go, text, matches) in cases {
            let refused = !UNICODE_BUILT_IN && (go.contains(r"\p") || go == "(?i)É");
            match Pattern::new(go) {
                Ok(p) => assert_eq!(p.is_match(text), matches, "{go} on {text:?}"),
                Err(e) => assert!(refused, "{go}: {e}"),
            }
        }
    }

    #[test]
    fn an_invalid_pattern_says_why_and_keeps_its_source() {
        // regex: "unclosed group"; regex-lite: "found open group without closing ')'".
        let err = Pattern::new("(unclosed").unwrap_err();
        assert!(err.contains("group"), "{err}");
        let p = Pattern::new(r"\d+ready").unwrap();
        assert_eq!(p.as_str(), r"\d+ready");
        assert_eq!(format!("{p:?}"), r#"Pattern("\\d+ready")"#);
    }
}
