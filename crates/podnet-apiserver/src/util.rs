//! Small helpers: time, names, uids.

use rand::Rng;

/// Now, as Kubernetes writes `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now plus `secs` seconds.
pub fn rfc3339_in(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now with microseconds (`metav1.MicroTime`).
pub fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

pub fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no confusable characters).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` random characters for generated names.
pub fn random_suffix(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
        .collect()
}

/// FNV-1a, 32 bits: the pod-template-hash and similar stable short hashes.
pub fn fnv32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// A hash rendered like Kubernetes' `rand.SafeEncodeString` of its decimal form.
pub fn safe_hash(data: &[u8]) -> String {
    let digits = fnv32(data).to_string();
    digits
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Constant-time comparison of secrets.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a Go duration (`30s`, `1m30s`, `500ms`, `2h`) into milliseconds.
pub fn parse_go_duration_ms(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let n_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if n_len == 0 {
            return None;
        }
        let n: f64 = rest[..n_len].parse().ok()?;
        rest = &rest[n_len..];
        let u_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_len] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        rest = &rest[u_len..];
        total = total.checked_add((n * unit) as u64)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration_ms("3s"), Some(3000));
        assert_eq!(parse_go_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_go_duration_ms("250ms"), Some(250));
        assert_eq!(parse_go_duration_ms("x"), None);
        assert_eq!(parse_go_duration_ms("5"), None);
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let h = safe_hash(b"template");
        assert_eq!(h, safe_hash(b"template"));
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)));
        assert!(
            secret_eq(b"abc", b"abc") && !secret_eq(b"abc", b"abd") && !secret_eq(b"ab", b"abc")
        );
    }
}
