//! Restart back-off as kubelet does it: a crashed container is restarted at once the first time, then
//! CrashLoopBackOff waits 10 s, doubling up to 5 min per container; a container that ran for 10
//! minutes starts over. Image pulls back off from 10 s the same way (ImagePullBackOff). Time is
//! passed in, so this is pure.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// Running this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    not_before: Instant,
}

/// Back-off per key (a pod UID and container name).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// Records a failure (a container exit or a failed pull) at `now`, after a run of `ran` (zero for a
    /// pull), and returns how long to wait before the next try.
    pub fn failed(&mut self, key: &str, ran: Duration, now: Instant) -> Duration {
        let delay = match self.entries.get(key) {
            Some(e) if ran < RESET_AFTER => (e.delay * 2).min(MAX),
            _ => INITIAL,
        };
        self.set(key, delay, now)
    }

    /// Records a container's exit at `now` after a run of `ran`, as kubelet's doBackOff does: the first
    /// exit (or the first after a run of 10 minutes) restarts at once, the next ones wait 10 s, 20 s,
    /// ... up to 5 min. Returns how long to wait before the restart.
    pub fn exited(&mut self, key: &str, ran: Duration, now: Instant) -> Duration {
        let delay = match self.entries.get(key) {
            Some(e) if ran < RESET_AFTER && e.delay.is_zero() => INITIAL,
            Some(e) if ran < RESET_AFTER => (e.delay * 2).min(MAX),
            _ => Duration::ZERO,
        };
        self.set(key, delay, now)
    }

    fn set(&mut self, key: &str, delay: Duration, now: Instant) -> Duration {
        let not_before = now + delay;
        self.entries
            .insert(key.to_string(), Entry { delay, not_before });
        delay
    }

    /// How long until `key` may be tried again (zero when it may now).
    pub fn remaining(&self, key: &str, now: Instant) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| {
            e.not_before.saturating_duration_since(now)
        })
    }

    /// The current back-off period of `key` (what kubelet's "back-off 20s" message names).
    pub fn period(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// Forgets a key (the pod is gone, or the pull succeeded).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops every key `keep` rejects (pods no longer on the node).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes_and_resets_after_a_long_run() {
        let mut b = Backoff::default();
        let t = Instant::now();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..7)
            .map(|_| b.failed("p/c", short, t).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.remaining("p/c", t), MAX);
        assert_eq!(b.remaining("p/c", t + MAX), Duration::ZERO);
        assert_eq!(b.failed("p/c", RESET_AFTER, t), INITIAL);
        b.forget("p/c");
        assert_eq!(b.remaining("p/c", t), Duration::ZERO);
    }

    #[test]
    fn a_crashed_container_restarts_at_once_the_first_time() {
        let mut b = Backoff::default();
        let t = Instant::now();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8)
            .map(|_| b.exited("p/c", short, t).as_secs())
            .collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.remaining("p/c", t), MAX);
        // A long run starts over: restarted at once, then 10 s.
        assert_eq!(b.exited("p/c", RESET_AFTER, t), Duration::ZERO);
        assert_eq!(b.remaining("p/c", t), Duration::ZERO);
        assert_eq!(b.exited("p/c", short, t), INITIAL);
    }
}
