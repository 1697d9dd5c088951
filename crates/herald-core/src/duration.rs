//! Go-style durations (`15s`, `1m30s`, `500ms`, `1.5h`), as Flux manifests and flags use them.

use std::time::Duration;

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers, each with an
/// optional fraction and a unit `ns`, `us` (`µs`), `ms`, `s`, `m` or `h`; `0` alone is zero.
/// Negative durations are rejected.
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {s:?}: {why}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad("expected a number"));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad("missing unit (use ms, s, m or h)")),
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        let value: f64 = num.parse().map_err(|_| bad("expected a number"))?;
        total += value * nanos_per_unit;
        rest = tail;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad("out of range"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Parses a Provider `spec.timeout`: the CRD allows only `ms`, `s` and `m` units
/// (`^([0-9]+(\.[0-9]+)?(ms|s|m))+$`).
pub fn parse_provider_timeout(s: &str) -> Result<Duration, String> {
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty timeout".to_owned());
    }
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if int_len == 0 {
            return Err(format!(
                "invalid timeout {s:?}: expected a form like 30s, 1m or 500ms"
            ));
        }
        rest = &rest[int_len..];
        if let Some(frac) = rest.strip_prefix('.') {
            let frac_len = frac
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            if frac_len == 0 {
                return Err(format!("invalid timeout {s:?}: expected digits after '.'"));
            }
            rest = &frac[frac_len..];
        }
        rest = if let Some(r) = rest.strip_prefix("ms") {
            r
        } else if let Some(r) = rest.strip_prefix('s') {
            r
        } else if let Some(r) = rest.strip_prefix('m') {
            r
        } else {
            return Err(format!("invalid timeout {s:?}: units must be ms, s or m"));
        };
    }
    parse(s)
}

/// Formats a duration the way Go prints it (`1m30s`, `500ms`, `0s`).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else {
            format!("{}µs", nanos as f64 / 1e3)
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sub = d.subsec_nanos();
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sub == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let frac = format!("{:09}", sub);
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (s, ms) in [
            ("0", 0),
            ("0s", 0),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("500ms", 500),
            ("2h45m", 9_900_000),
            ("1000us", 1),
            ("1000µs", 1),
            ("+5m", 300_000),
        ] {
            assert_eq!(parse(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        for s in ["", "5", "-5s", "5d", "s", "1.2.3s", ".s"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn provider_timeout_follows_the_crd_pattern() {
        assert_eq!(
            parse_provider_timeout("30s").unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_provider_timeout("1m0.5s").unwrap(),
            Duration::from_millis(60_500)
        );
        let e = parse_provider_timeout("1h").unwrap_err();
        assert!(e.contains("units must be ms, s or m"), "{e}");
        assert!(parse_provider_timeout("s").is_err());
        assert!(parse_provider_timeout("1.s").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(300)), "5m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(86400)), "24h0m0s");
    }
}
