//! Time formats of the Kubernetes API. Pure: callers pass "now" in.

/// RFC 3339 in UTC as Kubernetes writes `metav1.Time` (`2024-05-01T10:00:00Z`); with microseconds when
/// `nanos` is not zero (`metav1.MicroTime`). `None` if out of range.
pub fn format_unix(seconds: i64, nanos: i64) -> Option<String> {
    let ts = jiff::Timestamp::new(seconds, i32::try_from(nanos).ok()?).ok()?;
    if nanos == 0 {
        Some(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    } else {
        Some(ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string())
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp, or `None` if it does not parse.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Formats nanoseconds as Go's `time.Duration.String()` does: `1h2m3s`, `1.5s`, `250ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let n = nanos.unsigned_abs();
    let mut out = String::new();
    if n < 1_000_000_000 {
        // sub-second: the largest unit that keeps the integer part non-zero
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(n, div));
        out.push_str(unit);
    } else {
        let h = n / 3_600_000_000_000;
        let m = (n / 60_000_000_000) % 60;
        let s_nanos = n % 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fraction(s_nanos, 1_000_000_000));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

fn fraction(n: u64, div: u64) -> String {
    let int = n / div;
    let frac = n % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// kubectl's human-readable age (`HumanDuration` of apimachinery's duration package): `45s`, `5m3s`,
/// `3h10m`, `4d2h`, `2y30d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an object created at `created` (RFC 3339) as kubectl prints it, `<unknown>` if unset.
pub fn age(created: Option<&str>, now_unix: i64) -> String {
    match created.and_then(parse_rfc3339) {
        Some(t) => human_duration(now_unix - t),
        None => "<unknown>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(format_unix(0, 0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_unix(1_700_000_000, 0).unwrap(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            format_unix(1_700_000_000, 123_456_000).unwrap(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("nope"), None);
    }

    #[test]
    fn formats_go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(61_000_000_000), "1m1s");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 600), "3h10m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(4 * 86400 + 2 * 3600), "4d2h");
        assert_eq!(human_duration(30 * 86400), "30d");
        assert_eq!(human_duration(3 * 365 * 86400 + 5 * 86400), "3y5d");
        assert_eq!(human_duration(-5), "<invalid>");
        assert_eq!(human_duration(-1), "0s");
    }
}
