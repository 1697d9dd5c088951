//! What the test and feature steps read from the tools' machine-readable output: nextest's
//! JUnit report, cargo's JSON messages, and (for doctests, which only libtest runs and which
//! has no stable machine-readable format) libtest's summary line.

use anyhow::{Context, Result};
use serde::Deserialize;

/// The totals of one nextest run, from its JUnit report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TestRun {
    pub(crate) tests: u64,
    pub(crate) failed: u64,
    /// Tests that failed a try and passed a retry.
    pub(crate) flaky: u64,
    /// `crate::test` of every test whose output has a `SKIPPED` line (a peer that could not
    /// be installed).
    pub(crate) skipped_a_peer: Vec<String>,
}

impl TestRun {
    pub(crate) fn passed(&self) -> u64 {
        self.tests.saturating_sub(self.failed)
    }
}

/// Reads nextest's JUnit report (`<testsuites tests= failures= errors=>`, one `<testcase>` per
/// test with its output).
pub(crate) fn junit(xml: &str) -> Result<TestRun> {
    let root = tag(xml, "<testsuites").context("the JUnit report has no <testsuites> element")?;
    let number = |name: &str| -> Result<u64> {
        attribute(root, name)
            .with_context(|| format!("<testsuites> has no {name}="))?
            .parse()
            .with_context(|| format!("<testsuites {name}=> is not a number"))
    };
    let mut run = TestRun {
        tests: number("tests")?,
        failed: number("failures")? + number("errors")?,
        ..TestRun::default()
    };
    for case in xml.split("<testcase ").skip(1) {
        let body = case.split("</testcase>").next().unwrap_or(case);
        if body.contains("<flakyFailure") {
            run.flaky += 1;
        }
        if body.lines().any(|l| l.trim_start().starts_with("SKIPPED")) {
            // The split took the space before the first attribute.
            let head = format!(" {}", &body[..body.find('>').unwrap_or(body.len())]);
            let name = |a| attribute(&head, a).unwrap_or_default();
            run.skipped_a_peer
                .push(format!("{} {}", name("classname"), name("name")));
        }
    }
    Ok(run)
}

/// The start tag beginning with `open` (`<name`), without its `>`.
fn tag<'a>(xml: &'a str, open: &str) -> Option<&'a str> {
    let start = xml.find(&format!("{open} "))?;
    let rest = &xml[start..];
    Some(&rest[..rest.find('>')?])
}

/// The value of `name="..."` in a start tag, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(
        value
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// (passed, failed) summed over libtest's `test result:` lines (a doctest run prints one per
/// crate). Only lines at the start count: nothing else libtest prints starts so.
pub(crate) fn libtest_totals(output: &str) -> (u64, u64) {
    let number_before = |line: &str, word: &str| -> u64 {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|w| !w.is_empty())
            .collect();
        words
            .windows(2)
            .find(|w| w[1] == word)
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0)
    };
    output
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .fold((0, 0), |(p, f), l| {
            (
                p + number_before(l, "passed"),
                f + number_before(l, "failed"),
            )
        })
}

/// One line of `cargo --message-format=json`: only compiler messages matter here.
#[derive(Debug, Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    message: Option<Diagnostic>,
}

#[derive(Debug, Deserialize)]
struct Diagnostic {
    level: String,
    #[serde(default)]
    rendered: Option<String>,
}

/// The compiler's diagnostics in cargo's JSON messages, as (level, rendered text). Cargo
/// replays the diagnostics of crates it did not rebuild, and caps the lints of crates outside
/// the workspace, so these are exactly the workspace's.
pub(crate) fn diagnostics(json_lines: &str) -> Vec<(String, String)> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<CargoMessage>(l).ok())
        .filter(|m| m.reason == "compiler-message")
        .filter_map(|m| m.message)
        .map(|d| (d.level, d.rendered.unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="4" skipped="0" failures="1" errors="0" uuid="u" time="2.0">
    <testsuite name="herald-chat::it" tests="4" skipped="0" errors="0" failures="1">
        <testcase name="matrix::real_synapse_stores_the_message_once" classname="herald-chat::it" time="0.1">
            <system-err>SKIPPED: peer matrix-synapse.sh could not be installed (under CI=true this fails):
SKIPPED real_synapse_stores_the_message_once: the check did NOT run
</system-err>
        </testcase>
        <testcase name="a &amp; b" classname="herald-chat::it" time="0.1">
            <flakyFailure message="first try" type="test failure"/>
            <system-out>test result: ok. 1 passed; 0 failed</system-out>
        </testcase>
        <testcase name="fails" classname="herald-chat::it" time="0.1">
            <failure type="test failure"/>
            <system-err>  log: not SKIPPED here, the word is mid-line</system-err>
        </testcase>
        <testcase name="plain" classname="herald-chat::it" time="0.1"></testcase>
    </testsuite>
</testsuites>
"#;

    #[test]
    fn junit_reports_are_counted() {
        let run = junit(REPORT).unwrap();
        assert_eq!(run.tests, 4);
        assert_eq!(run.failed, 1);
        assert_eq!(run.passed(), 3);
        assert_eq!(run.flaky, 1);
        assert_eq!(
            run.skipped_a_peer,
            ["herald-chat::it matrix::real_synapse_stores_the_message_once"]
        );
        assert!(junit("<html>").is_err());
        assert_eq!(
            attribute(r#"<t name="a &amp; b""#, "name").unwrap(),
            "a & b"
        );
    }

    #[test]
    fn doctest_totals_come_from_libtest_summaries() {
        let out = "running 3 tests\ntest src/lib.rs - (line 10) ... ok\n\n\
                   test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
                   test result: FAILED. 1 passed; 2 failed; 0 ignored\n\
                   \x20   test result: ok. 9 passed; 0 failed (indented: captured output)\n";
        assert_eq!(libtest_totals(out), (4, 2));
    }

    #[test]
    fn warnings_are_read_from_cargo_json() {
        let lines = concat!(
            r#"{"reason":"compiler-artifact","package_id":"x"}"#,
            "\n",
            r#"{"reason":"compiler-message","message":{"level":"warning","rendered":"warning: unused import\n"}}"#,
            "\n",
            "not json\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            diagnostics(lines),
            [("warning".to_owned(), "warning: unused import\n".to_owned())]
        );
    }
}
