//! CronJob schedules: the standard five-field cron syntax as kube-controller-manager parses it
//! (robfig/cron's `ParseStandard`: minute, hour, day of month, month, day of week; lists, ranges,
//! steps, month and weekday names, `*` and `?`; the `@yearly`, `@annually`, `@monthly`, `@weekly`,
//! `@daily`, `@midnight`, `@hourly` macros and `@every <duration>`), and the next fire time after
//! an instant in a time zone.
//!
//! As in robfig/cron: when both day fields are restricted (neither starts with `*`/`?`), a day
//! matches either of them; otherwise both must match. `*/2` is a restriction (it is not a star).
//! Wall-clock times skipped by a daylight-saving jump never fire; a repeated hour fires once (at its
//! first occurrence).

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Spec(Spec),
    /// `@every D`: fires every `D` seconds after the previous time.
    Every(i64),
}

/// Bit sets of the allowed values per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// Parses a schedule; the error reads as robfig/cron's (which kube-apiserver shows for an invalid
/// `spec.schedule`).
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if let Some(d) = spec.strip_prefix('@') {
        let expanded = match d {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            _ => {
                if let Some(dur) = d.strip_prefix("every ") {
                    let secs = go_duration_seconds(dur.trim()).map_err(|e| {
                        format!(
                            "failed to parse duration {spec}: time: {e} {:?}",
                            dur.trim()
                        )
                    })?;
                    return Ok(Schedule::Every(secs.max(1)));
                }
                return Err(format!("unrecognized descriptor: {spec}"));
            }
        };
        return parse(expanded);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (minute, _) = field(fields[0], &MINUTE)?;
    let (hour, _) = field(fields[1], &HOUR)?;
    let (dom, dom_star) = field(fields[2], &DOM)?;
    let (month, _) = field(fields[3], &MONTH)?;
    let (dow, dow_star) = field(fields[4], &DOW)?;
    Ok(Schedule::Spec(Spec {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    }))
}

/// A comma-separated list of ranges; the bool says whether it was a bare `*`/`?`.
fn field(f: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in f.split(',') {
        let (rbits, rstar) = range(part, b)?;
        bits |= rbits;
        star |= rstar;
    }
    Ok((bits, star))
}

fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let (range_part, step_part) = match expr.split_once('/') {
        Some((r, s)) if s.contains('/') => {
            let _ = r;
            return Err(format!("too many slashes: {expr}"));
        }
        Some((r, s)) => (r, Some(s)),
        None => (expr, None),
    };
    let (mut start, mut end, mut star, single) = if range_part == "*" || range_part == "?" {
        (b.min, b.max, true, false)
    } else {
        let bounds: Vec<&str> = range_part.split('-').collect();
        match bounds.as_slice() {
            [one] => {
                let v = value(one, b)?;
                (v, v, false, true)
            }
            [lo, hi] => (value(lo, b)?, value(hi, b)?, false, false),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match step_part {
        None => 1,
        Some(s) => {
            let st = number(s)?;
            if st == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
            // "N/step" means "N-max/step"
            if single {
                end = b.max;
            }
            if st > 1 {
                star = false;
            }
            st
        }
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    let mut bits = 0u64;
    while start <= end {
        bits |= 1 << start;
        start += step;
    }
    Ok((bits, star))
}

fn value(s: &str, b: &Bounds) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + b.min);
    }
    number(s)
}

fn number(s: &str) -> Result<u32, String> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {s}")),
        Ok(n) => u32::try_from(n)
            .map_err(|_| format!("failed to parse int from {s}: value out of range")),
        Err(_) => Err(format!(
            "failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax"
        )),
    }
}

/// Go's `time.ParseDuration`, in whole seconds (rounded down, as robfig rounds `@every`).
fn go_duration_seconds(s: &str) -> Result<i64, &'static str> {
    if s.is_empty() {
        return Err("invalid duration");
    }
    let mut rest = s;
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("missing unit in duration")?;
        if num_len == 0 {
            return Err("invalid duration");
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| "invalid duration")?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err("unknown unit in duration"),
        };
        nanos += n * scale;
        rest = &rest[unit_len..];
    }
    Ok((nanos / 1e9) as i64)
}

impl Spec {
    fn day_matches(&self, dt: DateTime) -> bool {
        let dom = self.dom & (1 << dt.day()) != 0;
        let dow = self.dow & (1 << dt.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

/// How many years ahead a schedule is searched before it is declared never to fire ("0 0 30 2 *").
const HORIZON_YEARS: i16 = 5;

impl Schedule {
    /// The first fire time strictly after `t`, in `tz`; `None` if it never fires.
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(secs) => Timestamp::from_second(t.as_second() + secs).ok(),
            Schedule::Spec(s) => next_spec(s, t, tz),
        }
    }
}

fn next_spec(s: &Spec, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let local = t.to_zoned(tz.clone()).datetime();
    let mut dt = local
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?
        .checked_add(1.minute())
        .ok()?;
    let last_year = dt.year().saturating_add(HORIZON_YEARS);
    loop {
        if dt.year() > last_year {
            return None;
        }
        if s.month & (1 << dt.month()) == 0 {
            dt = dt
                .first_of_month()
                .with()
                .hour(0)
                .minute(0)
                .build()
                .ok()?
                .checked_add(1.month())
                .ok()?;
            continue;
        }
        if !s.day_matches(dt) {
            dt = dt.start_of_day().checked_add(1.day()).ok()?;
            continue;
        }
        if s.hour & (1 << dt.hour()) == 0 {
            dt = dt
                .with()
                .minute(0)
                .build()
                .ok()?
                .checked_add(1.hour())
                .ok()?;
            continue;
        }
        if s.minute & (1 << dt.minute()) == 0 {
            dt = dt.checked_add(1.minute()).ok()?;
            continue;
        }
        match tz.to_ambiguous_zoned(dt).offset() {
            AmbiguousOffset::Unambiguous { offset }
            | AmbiguousOffset::Fold { before: offset, .. } => {
                if let Ok(ts) = offset.to_timestamp(dt)
                    && ts > t
                {
                    return Some(ts);
                }
            }
            // a wall-clock time the zone skips
            AmbiguousOffset::Gap { .. } => {}
        }
        dt = dt.checked_add(1.minute()).ok()?;
    }
}

/// Looks an IANA time zone up; the error reads as Go's `time.LoadLocation`.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    jiff::tz::db()
        .get(name)
        .map_err(|_| format!("unknown time zone {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, after: &str, tz: &str) -> String {
        let tz = time_zone(tz).unwrap();
        parse(spec)
            .unwrap()
            .next_after(ts(after), &tz)
            .map(|t| t.to_string())
            .unwrap_or_else(|| "never".into())
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next("*/1 * * * *", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-01T10:01:00Z"
        );
        assert_eq!(
            next("* * * * *", "2024-03-01T10:00:30Z", "UTC"),
            "2024-03-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-03-01T10:14:59Z", "UTC"),
            "2024-03-01T10:15:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2024-03-01T10:06:00Z", "UTC"),
            "2024-03-01T10:25:00Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-01T13:00:00Z"
        );
        assert_eq!(
            next("0,30 * * * *", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-01T10:30:00Z"
        );
    }

    #[test]
    fn macros_names_and_day_rules() {
        assert_eq!(
            next("@hourly", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-01T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-02T00:00:00Z"
        );
        assert_eq!(
            next("@midnight", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-02T00:00:00Z"
        );
        // 2024-03-01 is a Friday; @weekly is Sunday midnight
        assert_eq!(
            next("@weekly", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-03T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2024-03-01T10:00:00Z", "UTC"),
            "2024-04-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-03-01T10:00:00Z", "UTC"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@annually", "2024-03-01T10:00:00Z", "UTC"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * JAN,jul mon", "2024-03-01T10:00:00Z", "UTC"),
            "2024-07-01T00:00:00Z"
        );
        // both day fields restricted: either matches (the 15th, or a Monday)
        assert_eq!(
            next("0 0 15 * 1", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-04T00:00:00Z"
        );
        // a star day-of-month: only Mondays
        assert_eq!(
            next("0 0 * * 1", "2024-03-05T10:00:00Z", "UTC"),
            "2024-03-11T00:00:00Z"
        );
        // a stepped day-of-month is a restriction: odd days OR Mondays
        assert_eq!(
            next("0 0 */2 * 1", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-03T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T10:00:00Z", "UTC"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(next("0 0 30 2 *", "2024-03-01T10:00:00Z", "UTC"), "never");
        assert_eq!(
            next("@every 90s", "2024-03-01T10:00:00Z", "UTC"),
            "2024-03-01T10:01:30Z"
        );
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        // 09:00 in New York is 14:00 UTC in winter, 13:00 in summer
        assert_eq!(
            next("0 9 * * *", "2024-03-01T00:00:00Z", "America/New_York"),
            "2024-03-01T14:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "2024-07-01T00:00:00Z", "America/New_York"),
            "2024-07-01T13:00:00Z"
        );
        // 02:30 does not exist on 2024-03-10 in New York: that day is skipped
        assert_eq!(
            next("30 2 * * *", "2024-03-10T05:00:00Z", "America/New_York"),
            "2024-03-11T06:30:00Z"
        );
        // 01:30 happens twice on 2024-11-03: it fires once, at the first (EDT, UTC-4)
        assert_eq!(
            next("30 1 * * *", "2024-11-03T04:00:00Z", "America/New_York"),
            "2024-11-03T05:30:00Z"
        );
        assert_eq!(
            next("30 1 * * *", "2024-11-03T05:30:00Z", "America/New_York"),
            "2024-11-04T06:30:00Z"
        );
        assert_eq!(
            time_zone("Mars/Olympus").unwrap_err(),
            "unknown time zone Mars/Olympus"
        );
    }

    #[test]
    fn errors_read_as_robfig_cron() {
        assert_eq!(
            parse("* * * *").unwrap_err(),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            parse("60 * * * *").unwrap_err(),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            parse("* * 0 * *").unwrap_err(),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            parse("5-1 * * * *").unwrap_err(),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            parse("*/0 * * * *").unwrap_err(),
            "step of range should be a positive number: */0"
        );
        assert_eq!(
            parse("1-2-3 * * * *").unwrap_err(),
            "too many hyphens: 1-2-3"
        );
        assert_eq!(
            parse("@fortnightly").unwrap_err(),
            "unrecognized descriptor: @fortnightly"
        );
        assert!(
            parse("x * * * *")
                .unwrap_err()
                .starts_with("failed to parse int from x")
        );
        assert!(parse("* * * * 7").is_err());
        assert!(parse("").is_err());
    }

    /// A brute-force reference: the first minute after `t` (UTC) whose fields match.
    fn brute(spec: &Spec, t: Timestamp) -> Option<Timestamp> {
        let mut m = t.as_second().div_euclid(60) * 60 + 60;
        for _ in 0..(60 * 24 * 400) {
            let ts = Timestamp::from_second(m).unwrap();
            let dt = ts.to_zoned(TimeZone::UTC).datetime();
            if spec.minute & (1 << dt.minute()) != 0
                && spec.hour & (1 << dt.hour()) != 0
                && spec.month & (1 << dt.month()) != 0
                && spec.day_matches(dt)
            {
                return Some(ts);
            }
            m += 60;
        }
        None
    }

    use proptest::prelude::*;

    fn field_text(min: u32, max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (min..=max).prop_map(|v| v.to_string()),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1u32..=max.max(1)).prop_map(|s| format!("*/{s}")),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn next_is_the_first_matching_minute(
            mi in field_text(0, 59), h in field_text(0, 23), d in field_text(1, 28),
            mo in field_text(1, 12), w in field_text(0, 6),
            start in 1_600_000_000i64..1_800_000_000,
        ) {
            let text = format!("{mi} {h} {d} {mo} {w}");
            let Schedule::Spec(spec) = parse(&text).unwrap() else { unreachable!() };
            let t = Timestamp::from_second(start).unwrap();
            let got = next_spec(&spec, t, &TimeZone::UTC);
            let want = brute(&spec, t);
            // the brute force only looks 400 days ahead
            if want.is_some() {
                prop_assert_eq!(got, want, "{}", text);
            }
            if let Some(g) = got {
                prop_assert!(g > t);
            }
        }
    }
}
