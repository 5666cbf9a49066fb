//! Shared pieces of podnet's benchmarks: statistics and report formatting. Each benchmark runs podnet
//! and the anchor it is measured against in the same run, interleaved, and prints ratios.

use std::time::Duration;

/// The value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Percentile of a sample (nearest rank), in the sample's unit.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "empty sample");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 and p95 of a sample.
pub fn p50_p95(mut sample: Vec<Duration>) -> (Duration, Duration) {
    sample.sort();
    (percentile(&sample, 50.0), percentile(&sample, 95.0))
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `ours / anchor`, and whether it meets `target` (a maximum ratio).
pub fn ratio_line(what: &str, ours: Duration, anchor: Duration, target: f64) -> String {
    let r = ours.as_secs_f64() / anchor.as_secs_f64();
    let verdict = if r <= target { "meets" } else { "MISSES" };
    format!(
        "{what:<28} podnet {:>10}  reference {:>10}  ratio {r:.3}  ({verdict} target <= {target})",
        ms(ours),
        ms(anchor)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&s, 95.0), Duration::from_millis(95));
        assert_eq!(percentile(&s[..1], 95.0), Duration::from_millis(1));
    }
}
